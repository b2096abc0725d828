package liverecall

import (
	"encoding/json"
	"strconv"
	"strings"
	"time"
)

// Device is the class of device a request comes from: a closed set.
// The zero value means the caller did not say; features treat it, and
// any class not listed, as DeviceOther.
type Device string

// The device classes.
const (
	DeviceMobile  Device = "mobile"
	DeviceTablet  Device = "tablet"
	DeviceDesktop Device = "desktop"
	DeviceTV      Device = "tv"
	DeviceOther   Device = "other"
)

// Devices lists the device classes in a stable order.
var Devices = []Device{DeviceMobile, DeviceTablet, DeviceDesktop, DeviceTV, DeviceOther}

// ParseDevice returns the class named s (case-insensitive); ok is false,
// and the class DeviceOther, when s names none of Devices.
func ParseDevice(s string) (Device, bool) {
	d := Device(strings.ToLower(strings.TrimSpace(s)))
	for _, k := range Devices {
		if d == k {
			return k, true
		}
	}
	return DeviceOther, false
}

// RequestContext is what a request says about the moment and the client
// it comes from, typed. Every field may be unknown (its zero value); an
// unknown field is not an error and gives the features of "unknown"
// (docs: README, "Request context").
type RequestContext struct {
	// LocalTime is true when Hour and Weekday are known: the user's local
	// hour (0-23) and day of the week when the request was made.
	LocalTime bool
	Hour      int
	Weekday   time.Weekday
	Device    Device // "" when not given
	// Language is the locale's primary language subtag, lower-case
	// (ISO 639, "pt"), and Country its region, upper-case (ISO 3166-1
	// alpha-2 "BR" or a UN M.49 area code "419"); "" when unknown.
	Language string
	Country  string
}

// Known reports whether c holds anything.
func (c RequestContext) Known() bool {
	return c.LocalTime || c.Device != "" || c.Language != "" || c.Country != ""
}

// Locale returns c's language and country as a BCP 47 tag ("pt-BR", "pt"),
// "" when the language is unknown.
func (c RequestContext) Locale() string {
	if c.Language == "" {
		return ""
	}
	if c.Country == "" {
		return c.Language
	}
	return c.Language + "-" + c.Country
}

// AtLocalTime returns c with its local hour and weekday those of t (which
// carries the user's zone or offset).
func (c RequestContext) AtLocalTime(t time.Time) RequestContext {
	c.LocalTime, c.Hour, c.Weekday = true, t.Hour(), t.Weekday()
	return c
}

// ParseLocale reads a BCP 47 language tag ("pt-BR", "en", "zh-Hant-TW",
// "es-419"; an underscore, as in POSIX locales "pt_BR", is taken for a
// hyphen, and case does not matter) and returns its primary language
// subtag in lower case and its region in upper case ("" when the tag has
// none). ok is false when s does not start with a 2- or 3-letter language
// subtag or a subtag is not 1-8 letters or digits; then both are "".
// Subtags other than language and region (script, variants, extensions)
// are read past and ignored.
func ParseLocale(s string) (lang, country string, ok bool) {
	if s == "" || len(s) > 64 {
		return "", "", false
	}
	parts := strings.FieldsFunc(s, func(r rune) bool { return r == '-' || r == '_' })
	if len(parts) == 0 || strings.Count(s, "-")+strings.Count(s, "_") != len(parts)-1 {
		return "", "", false // empty subtags ("pt--BR", "-pt")
	}
	for _, p := range parts {
		if len(p) > 8 {
			return "", "", false
		}
		for i := 0; i < len(p); i++ {
			if c := p[i]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
				return "", "", false
			}
		}
	}
	l := parts[0]
	if len(l) < 2 || len(l) > 3 || !letters(l) {
		return "", "", false
	}
	lang = strings.ToLower(l)
	// The region is the first subtag after the language (and an optional
	// 4-letter script) that is 2 letters or 3 digits; a singleton starts
	// the extensions, where no region is looked for.
	for _, p := range parts[1:] {
		if len(p) == 1 {
			break
		}
		if len(p) == 2 && letters(p) {
			country = strings.ToUpper(p)
			break
		}
		if len(p) == 3 && digits(p) {
			country = p
			break
		}
	}
	return lang, country, true
}

func letters(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i] | 0x20; c < 'a' || c > 'z' {
			return false
		}
	}
	return true
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// LanguageOf returns the primary language subtag of the BCP 47 tag s in
// lower case, "" when s is not a tag ParseLocale reads.
func LanguageOf(s string) string {
	l, _, _ := ParseLocale(s)
	return l
}

// MarshalJSON writes c as an impression records it: the known fields of
// {"hour","weekday","device","language","country"}, weekday 0 (Sunday)
// to 6.
func (c RequestContext) MarshalJSON() ([]byte, error) {
	return c.AppendJSON(nil), nil
}

// AppendJSON appends c's JSON object (see MarshalJSON) to dst.
func (c RequestContext) AppendJSON(dst []byte) []byte {
	dst = append(dst, '{')
	sep := func() {
		if dst[len(dst)-1] != '{' {
			dst = append(dst, ',')
		}
	}
	if c.LocalTime {
		dst = append(dst, `"hour":`...)
		dst = strconv.AppendInt(dst, int64(c.Hour), 10)
		dst = append(dst, `,"weekday":`...)
		dst = strconv.AppendInt(dst, int64(c.Weekday), 10)
	}
	for _, f := range [...]struct{ k, v string }{{"device", string(c.Device)}, {"language", c.Language}, {"country", c.Country}} {
		if f.v != "" {
			sep()
			dst = append(dst, '"')
			dst = append(dst, f.k...)
			dst = append(dst, `":`...)
			dst = strconv.AppendQuote(dst, f.v)
		}
	}
	return append(dst, '}')
}

// Clean returns c without the fields that are out of their range or set
// (an hour outside 0-23 or weekday outside 0-6 drops both, a device not
// in Devices becomes DeviceOther, a language or country that is not a
// subtag of the form ParseLocale returns is dropped): what an impression
// records and a reader accepts.
func (c RequestContext) Clean() RequestContext {
	if c.LocalTime && (c.Hour < 0 || c.Hour > 23 || c.Weekday < time.Sunday || c.Weekday > time.Saturday) {
		c.LocalTime = false
	}
	if !c.LocalTime {
		c.Hour, c.Weekday = 0, 0
	}
	if c.Device != "" {
		c.Device, _ = ParseDevice(string(c.Device))
	}
	if !ValidLanguage(c.Language) {
		c.Language = ""
	}
	if !ValidCountry(c.Country) {
		c.Country = ""
	}
	return c
}

// ValidLanguage reports whether s is a language as ParseLocale returns
// one: 2 or 3 lower-case ASCII letters.
func ValidLanguage(s string) bool {
	return (len(s) == 2 || len(s) == 3) && letters(s) && strings.ToLower(s) == s
}

// ValidCountry reports whether s is a region as ParseLocale returns one:
// 2 upper-case ASCII letters or 3 digits.
func ValidCountry(s string) bool {
	return len(s) == 2 && letters(s) && strings.ToUpper(s) == s || len(s) == 3 && digits(s)
}

// UnmarshalJSON reads what MarshalJSON writes (hour and weekday both or
// neither). It does not check ranges: see Clean.
func (c *RequestContext) UnmarshalJSON(b []byte) error {
	var w struct {
		Hour     *int    `json:"hour"`
		Weekday  *int    `json:"weekday"`
		Device   *string `json:"device"`
		Language *string `json:"language"`
		Country  *string `json:"country"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*c = RequestContext{}
	if w.Hour != nil && w.Weekday != nil {
		c.LocalTime, c.Hour, c.Weekday = true, *w.Hour, time.Weekday(*w.Weekday)
	}
	if w.Device != nil {
		c.Device = Device(*w.Device)
	}
	if w.Language != nil {
		c.Language = *w.Language
	}
	if w.Country != nil {
		c.Country = *w.Country
	}
	return nil
}
