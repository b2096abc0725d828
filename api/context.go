package api

import (
	"bytes"
	"encoding/json"
	"strconv"
	"sync"
	"time"
	_ "time/tzdata" // IANA zones for the context's time_zone when the machine has no zoneinfo

	lr "github.com/liverecall/liverecall"
)

// RecallContext is the part of a recall request's "context" object the
// service reads; every key is optional and any other key is accepted and
// ignored. A known key with a value of the wrong JSON type is a 400
// naming it ("context.device"); a value of the right type that the service
// does not understand (an unknown device class, a locale that is not a
// BCP 47 tag, an unknown time zone, an offset out of range) is ignored,
// listed in the debug response and counted in
// liverecall_context_ignored_total{field}.
type RecallContext struct {
	// TimeZone is the user's IANA time zone ("America/Sao_Paulo"); it
	// wins over UTCOffsetMinutes. The local hour and weekday are those
	// of the time the request is received, in that zone.
	TimeZone *string `json:"time_zone,omitempty"`
	// UTCOffsetMinutes is the user's offset from UTC now, -720 to +840
	// (what a browser's or phone's clock gives: -180 for Brasília).
	UTCOffsetMinutes *int `json:"utc_offset_minutes,omitempty"`
	// Device is the device class: mobile, tablet, desktop, tv or other
	// (case-insensitive); any other value is read as other.
	Device *string `json:"device,omitempty"`
	// Locale is the user's BCP 47 language tag ("pt-BR"; "pt_BR" too),
	// giving the language and the country.
	Locale *string `json:"locale,omitempty"`
}

// RecallFilter holds a recall request's optional filters.
type RecallFilter struct {
	// SameLanguage keeps the streams whose language is the context
	// locale's, and those of unknown language; when fewer than k are
	// left, streams of other languages fill the rest of the page after
	// them (the filter alone never empties a page). Without a locale
	// language it does nothing.
	SameLanguage bool `json:"same_language,omitempty"`
}

// ContextDebug is how the service read a request's context (debug
// responses only).
type ContextDebug struct {
	Read    ContextRead `json:"read"`
	Ignored []string    `json:"ignored,omitempty"` // keys whose values were not understood
}

// ContextRead is lr.RequestContext in wire form, as impressions record
// it: the known fields only.
type ContextRead struct {
	Hour     *int   `json:"hour,omitempty"`    // local hour, 0-23
	Weekday  *int   `json:"weekday,omitempty"` // local day of the week, 0 (Sunday) to 6
	Device   string `json:"device,omitempty"`
	Language string `json:"language,omitempty"`
	Country  string `json:"country,omitempty"`
}

// contextRead is rc in wire form.
func contextRead(rc lr.RequestContext) ContextRead {
	out := ContextRead{Device: string(rc.Device), Language: rc.Language, Country: rc.Country}
	if rc.LocalTime {
		h, wd := rc.Hour, int(rc.Weekday)
		out.Hour, out.Weekday = &h, &wd
	}
	return out
}

// Offsets a clock can have (UTC-12:00 to UTC+14:00).
const (
	minUTCOffsetMinutes = -12 * 60
	maxUTCOffsetMinutes = 14 * 60
)

// parseContext reads the typed fields of a request's context (raw: a JSON
// object or null, as Validate has checked) as of now. It returns the
// context and the keys whose values it ignored, or an EINVALID error for a
// known key of the wrong JSON type.
func parseContext(raw json.RawMessage, now time.Time) (lr.RequestContext, []string, error) {
	var rc lr.RequestContext
	if t := bytes.TrimSpace(raw); len(t) == 0 || string(t) == "null" {
		return rc, nil, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return rc, nil, lr.Errorf(lr.EINVALID, "field \"context\": must be an object")
	}
	var ignored []string
	str := func(key string) (string, bool, error) {
		v, ok := m[key]
		if !ok || string(v) == "null" {
			return "", false, nil
		}
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return "", false, lr.Errorf(lr.EINVALID, "field \"context.%s\": want a string, got %s", key, jsonKind(v))
		}
		return s, true, nil
	}
	if s, ok, err := str("device"); err != nil {
		return rc, nil, err
	} else if ok {
		d, known := lr.ParseDevice(s)
		if !known {
			ignored = append(ignored, "device")
		}
		rc.Device = d
	}
	if s, ok, err := str("locale"); err != nil {
		return rc, nil, err
	} else if ok {
		if lang, country, valid := lr.ParseLocale(s); valid {
			rc.Language, rc.Country = lang, country
		} else {
			ignored = append(ignored, "locale")
		}
	}
	var loc *time.Location
	if s, ok, err := str("time_zone"); err != nil {
		return rc, nil, err
	} else if ok {
		if loc = zone(s); loc == nil {
			ignored = append(ignored, "time_zone")
		}
	}
	if v, ok := m["utc_offset_minutes"]; ok && string(v) != "null" {
		f, err := strconv.ParseFloat(string(v), 64)
		if v[0] == '"' || v[0] == '{' || v[0] == '[' || v[0] == 't' || v[0] == 'f' || err != nil || f != float64(int64(f)) {
			return rc, nil, lr.Errorf(lr.EINVALID, "field \"context.utc_offset_minutes\": want an integer, got %s", jsonKind(v))
		}
		switch {
		case f < minUTCOffsetMinutes || f > maxUTCOffsetMinutes:
			ignored = append(ignored, "utc_offset_minutes")
		case loc == nil:
			loc = time.FixedZone("", int(f)*60)
		}
	}
	if loc != nil {
		rc = rc.AtLocalTime(now.In(loc))
	}
	return rc, ignored, nil
}

// jsonKind names the JSON type of the value v.
func jsonKind(v json.RawMessage) string {
	switch v = bytes.TrimSpace(v); {
	case len(v) == 0:
		return "nothing"
	case v[0] == '"':
		return "string"
	case v[0] == '{':
		return "object"
	case v[0] == '[':
		return "array"
	case v[0] == 't' || v[0] == 'f':
		return "boolean"
	case v[0] == 'n':
		return "null"
	}
	return "number"
}

// zones caches time.LoadLocation's answers (it reads the zone database on
// every call), at most maxZones of them, unknown names included.
var (
	zonesMu sync.Mutex
	zones   = map[string]*time.Location{}
)

const maxZones = 1024

// zone returns the IANA time zone name, nil when there is no such zone
// (or name is "Local" or empty: the server's own zone is no user's).
func zone(name string) *time.Location {
	if name == "" || name == "Local" || len(name) > 64 {
		return nil
	}
	zonesMu.Lock()
	loc, ok := zones[name]
	zonesMu.Unlock()
	if ok {
		return loc
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		loc = nil
	}
	zonesMu.Lock()
	if len(zones) < maxZones {
		zones[name] = loc
	}
	zonesMu.Unlock()
	return loc
}
