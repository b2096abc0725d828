package main

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// promqlKeywords are the identifiers of PromQL that are not metric names
// when not followed by '(': aggregation operators (which may take their
// grouping clause before the parentheses), binary and set operators,
// grouping modifiers and literals.
var promqlKeywords = map[string]bool{
	"sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true, "stdvar": true, "count": true,
	"count_values": true, "bottomk": true, "topk": true, "quantile": true, "limitk": true, "limit_ratio": true,
	"and": true, "or": true, "unless": true, "atan2": true, "bool": true,
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
	"offset": true, "start": true, "end": true, "inf": true, "nan": true,
}

// labelListKeywords are followed by a parenthesised list of label names.
var labelListKeywords = map[string]bool{"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true}

// promqlMetricNames returns the metric names an expression selects, in
// order of first appearance: identifiers that are not keywords, not
// followed by '(' (functions and aggregations), not label names (inside
// {...} matchers or a by/without/on/ignoring/group_left/group_right list),
// not in strings, range or subquery brackets, or numbers and durations.
// Grafana's $__interval-style variables are skipped. A malformed
// expression (an unclosed bracket or string) is reported as an error.
func promqlMetricNames(expr string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	isStart := func(c byte) bool { return c == '_' || c == ':' || (c|0x20 >= 'a' && c|0x20 <= 'z') }
	isPart := func(c byte) bool { return isStart(c) || (c >= '0' && c <= '9') }
	// skipTo returns the index after the bracket closing the one at i,
	// skipping strings inside.
	skipTo := func(i int, open, close byte) (int, error) {
		depth := 0
		for j := i; j < len(expr); j++ {
			switch c := expr[j]; c {
			case '"', '\'', '`':
				k := strings.IndexByte(expr[j+1:], c)
				for c != '`' && k > 0 && expr[j+k] == '\\' { // an escaped quote
					k2 := strings.IndexByte(expr[j+k+2:], c)
					if k2 < 0 {
						k = -1
						break
					}
					k += 1 + k2
				}
				if k < 0 {
					return 0, errf("unclosed string at %d in %q", j, expr)
				}
				j += k + 1
			case open:
				depth++
			case close:
				if depth--; depth == 0 {
					return j + 1, nil
				}
			}
		}
		return 0, errf("unclosed %c at %d in %q", open, i, expr)
	}
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == '{':
			j, err := skipTo(i, '{', '}')
			if err != nil {
				return nil, err
			}
			i = j
		case c == '[':
			j, err := skipTo(i, '[', ']')
			if err != nil {
				return nil, err
			}
			i = j
		case c == '"' || c == '\'' || c == '`':
			k := strings.IndexByte(expr[i+1:], c)
			if k < 0 {
				return nil, errf("unclosed string at %d in %q", i, expr)
			}
			i += k + 2
		case c == '$': // a Grafana variable
			i++
			for i < len(expr) && (isPart(expr[i]) || expr[i] == '{' || expr[i] == '}') {
				i++
			}
		case (c >= '0' && c <= '9') || (c == '.' && i+1 < len(expr) && expr[i+1] >= '0' && expr[i+1] <= '9'):
			// A number (1, 0.99, 1e-3, 0x1f) or a duration (5m, 1h30m).
			i++
			for i < len(expr) && (isPart(expr[i]) || expr[i] == '.' ||
				((expr[i] == '-' || expr[i] == '+') && (expr[i-1] == 'e' || expr[i-1] == 'E'))) {
				i++
			}
		case isStart(c):
			j := i
			for j < len(expr) && isPart(expr[j]) {
				j++
			}
			word := expr[i:j]
			k := j
			for k < len(expr) && (expr[k] == ' ' || expr[k] == '\t' || expr[k] == '\n' || expr[k] == '\r') {
				k++
			}
			lower := strings.ToLower(word)
			switch {
			case labelListKeywords[lower] && k < len(expr) && expr[k] == '(':
				end, err := skipTo(k, '(', ')')
				if err != nil {
					return nil, err
				}
				j = end
			case promqlKeywords[lower]:
			case k < len(expr) && expr[k] == '(': // a function
			default:
				if !seen[word] {
					seen[word] = true
					out = append(out, word)
				}
			}
			i = j
		default:
			i++
		}
	}
	return out, nil
}

type promqlError string

func (e promqlError) Error() string { return string(e) }

func errf(format string, a ...any) error {
	return promqlError(fmt.Sprintf(format, a...))
}

func TestPromQLMetricNames(t *testing.T) {
	for _, tc := range []struct {
		expr string
		want []string
	}{
		{`up`, []string{"up"}},
		{`liverecall_ready == 0`, []string{"liverecall_ready"}},
		{`histogram_quantile(0.99, sum by (le) (rate(http_seconds_bucket{route="/v1/recall", code=~"5.."}[5m]))) > 0.010`, []string{"http_seconds_bucket"}},
		{`sum by (channel) (rate(a_total{status=~"timeout|late"}[5m])) / sum by (channel) (rate(a_total{status!="skipped"}[5m])) > 0.05`, []string{"a_total"}},
		{`sum without(instance, job)(b) / ignoring(kind) group_left(pod) c`, []string{"b", "c"}},
		{`time() - last_ts > 36 * 3600`, []string{"last_ts"}},
		{`increase(x_total[30m]) > 0 and on (pod) y offset 1h`, []string{"x_total", "y"}},
		{`rate(x[$__rate_interval]) * 1e-3 + count(z) by (le)`, []string{"x", "z"}},
		{"sum(rate(q[5m:1m])) or vector(0)\n  unless bool w", []string{"q", "w"}},
		{`m{label="has } brace and by (x) words", other='it\'s'}`, []string{"m"}},
		{`topk(5, metric_with:colon) > Inf`, []string{"metric_with:colon"}},
		{`count by (version, commit, go_version) (liverecall_build_info)`, []string{"liverecall_build_info"}},
		{`label_replace(up, "dst", "$1", "src", "(.*)")`, []string{"up"}},
	} {
		got, err := promqlMetricNames(tc.expr)
		if err != nil {
			t.Errorf("%q: %v", tc.expr, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q: names %q, want %q", tc.expr, got, tc.want)
		}
	}
	for _, bad := range []string{`rate(x[5m)`, `x{a="b}`, `sum by (le x`} {
		if _, err := promqlMetricNames(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}
