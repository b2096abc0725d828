package liverecall_test

import (
	"encoding/json"
	"testing"
	"time"

	lr "github.com/liverecall/liverecall"
)

func TestParseLocale(t *testing.T) {
	for _, tc := range []struct {
		in, lang, country string
		ok                bool
	}{
		{"pt-BR", "pt", "BR", true}, {"pt_br", "pt", "BR", true}, {"EN", "en", "", true}, {"zh-Hant-TW", "zh", "TW", true},
		{"es-419", "es", "419", true}, {"yue-HK", "yue", "HK", true}, {"en-x-us", "en", "", true}, {"sr-Latn", "sr", "", true},
		{"", "", "", false}, {"p", "", "", false}, {"port", "", "", false}, {"pt-", "", "", false}, {"pt--BR", "", "", false},
		{"-pt", "", "", false}, {"pt BR", "", "", false}, {"pt-abcdefghi", "", "", false}, {"português", "", "", false}, {"1t-BR", "", "", false},
	} {
		lang, country, ok := lr.ParseLocale(tc.in)
		if lang != tc.lang || country != tc.country || ok != tc.ok {
			t.Errorf("ParseLocale(%q) = %q, %q, %v; want %q, %q, %v", tc.in, lang, country, ok, tc.lang, tc.country, tc.ok)
		}
	}
}

func TestParseDevice(t *testing.T) {
	for in, want := range map[string]lr.Device{"mobile": lr.DeviceMobile, " TV ": lr.DeviceTV, "Desktop": lr.DeviceDesktop, "tablet": lr.DeviceTablet,
		"other": lr.DeviceOther, "watch": lr.DeviceOther, "": lr.DeviceOther} {
		got, ok := lr.ParseDevice(in)
		if got != want || ok != (in != "watch" && in != "") {
			t.Errorf("ParseDevice(%q) = %q, %v", in, got, ok)
		}
	}
}

// Clean drops what is out of range; JSON keeps the known fields only and
// reads back the same.
func TestRequestContextCleanAndJSON(t *testing.T) {
	bad := lr.RequestContext{LocalTime: true, Hour: 24, Weekday: 3, Device: "Phone", Language: "PT", Country: "bra"}
	if got := bad.Clean(); got != (lr.RequestContext{Device: lr.DeviceOther}) {
		t.Errorf("Clean: %+v", got)
	}
	for _, tc := range []struct {
		c    lr.RequestContext
		json string
	}{
		{lr.RequestContext{}, `{}`},
		{lr.RequestContext{LocalTime: true, Hour: 0, Weekday: time.Sunday}, `{"hour":0,"weekday":0}`},
		{lr.RequestContext{LocalTime: true, Hour: 23, Weekday: time.Saturday, Device: lr.DeviceTV, Language: "pt", Country: "BR"},
			`{"hour":23,"weekday":6,"device":"tv","language":"pt","country":"BR"}`},
		{lr.RequestContext{Language: "es", Country: "419"}, `{"language":"es","country":"419"}`},
	} {
		b, err := json.Marshal(tc.c)
		if err != nil || string(b) != tc.json {
			t.Errorf("%+v: %s %v, want %s", tc.c, b, err, tc.json)
		}
		var back lr.RequestContext
		if err := json.Unmarshal(b, &back); err != nil || back != tc.c {
			t.Errorf("%s reads back as %+v, %v", b, back, err)
		}
		if tc.c.Clean() != tc.c {
			t.Errorf("Clean changed %+v", tc.c)
		}
	}
	if l := (lr.RequestContext{Language: "pt", Country: "BR"}).Locale(); l != "pt-BR" {
		t.Errorf("Locale %q", l)
	}
}
