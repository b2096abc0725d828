package history

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// parseID reads a non-negative integer id.
func parseID(field, s string) (int64, error) {
	if s == "" {
		return 0, fmt.Errorf("%s is empty", field)
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		if f, ferr := strconv.ParseFloat(s, 64); ferr == nil && f == math.Trunc(f) && math.Abs(f) < 1<<53 {
			v, err = int64(f), nil // 42.0, as some exporters write integers
		}
	}
	if err != nil || v < 0 {
		return 0, fmt.Errorf("%s %q is not a non-negative integer", field, s)
	}
	return v, nil
}

// maxUnixSeconds is the largest Unix time accepted in seconds (the year
// 5138): a larger one is most likely milliseconds.
const maxUnixSeconds = 1e11

// parseTime reads a time: RFC 3339 (a space for the T accepted; fractions
// of a second kept to the microsecond, as PostgreSQL stores them) or Unix
// seconds, possibly with a fraction. Times without a zone are refused.
func parseTime(field, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, fmt.Errorf("%s is empty", field)
	}
	if isNumber(s) {
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || math.Abs(f) >= maxUnixSeconds {
			return time.Time{}, fmt.Errorf("%s %s is not Unix seconds (milliseconds? want seconds, or RFC 3339)", field, s)
		}
		whole, frac, _ := strings.Cut(s, ".")
		sec, _ := strconv.ParseInt(whole, 10, 64)
		var nanos int64
		if frac != "" {
			frac = (frac + "000000000")[:9]
			nanos, _ = strconv.ParseInt(frac, 10, 64)
			if strings.HasPrefix(whole, "-") {
				nanos = -nanos
			}
		}
		return time.Unix(sec, nanos).UTC().Truncate(time.Microsecond), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil && len(s) > 10 && s[10] == ' ' {
		t, err = time.Parse(time.RFC3339Nano, s[:10]+"T"+s[11:])
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("%s %q is not a time (want RFC 3339 with a zone, e.g. 2026-03-01T20:00:00Z, or Unix seconds)", field, s)
	}
	return t.UTC().Truncate(time.Microsecond), nil
}

func isNumber(s string) bool {
	digits := 0
	for i, c := range s {
		switch {
		case c >= '0' && c <= '9':
			digits++
		case c == '-' && i == 0, c == '.':
		default:
			return false
		}
	}
	return digits > 0
}

// parseSeconds reads a non-negative number of seconds.
func parseSeconds(field, s string) (float64, error) {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("%s %q is not a number of seconds", field, s)
	}
	if v < 0 {
		return 0, fmt.Errorf("negative %s %s", field, s)
	}
	return v, nil
}

// parseAmount reads a gift amount: a finite number above zero.
func parseAmount(s string) (float64, error) {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("amount %q is not a number", s)
	}
	if v <= 0 {
		return 0, fmt.Errorf("amount %s is not above zero", s)
	}
	return v, nil
}

// parseBool reads true/false, t/f, 1/0, yes/no.
func parseBool(field, s string) (bool, error) {
	switch strings.ToLower(s) {
	case "true", "t", "1", "yes", "y":
		return true, nil
	case "false", "f", "0", "no", "n":
		return false, nil
	}
	return false, fmt.Errorf("%s %q is not a boolean (want true or false)", field, s)
}

// fmtTime is how times appear in messages and reports.
func fmtTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }
