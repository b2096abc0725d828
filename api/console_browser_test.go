package api_test

import (
	"net/http"
	"regexp"
	"strings"
	"testing"
)

// element returns the first element of the DOM whose start tag matches
// attrs (a regexp within the tag), through its matching end tag, or "".
func element(dom, tag, attrs string) string {
	loc := regexp.MustCompile(`<` + tag + `\b[^>]*` + attrs + `[^>]*>`).FindStringIndex(dom)
	if loc == nil {
		return ""
	}
	open, end := regexp.MustCompile(`<`+tag+`\b`), "</"+tag+">"
	depth, i := 1, loc[1]
	for depth > 0 {
		j := strings.Index(dom[i:], end)
		if j < 0 {
			return ""
		}
		depth += len(open.FindAllStringIndex(dom[i:i+j], -1)) - 1
		if depth > 0 {
			// an inner element opened before this end tag: look past it
			i += j + len(end)
			continue
		}
		return dom[loc[0] : i+j+len(end)]
	}
	return ""
}

// consoleLines gives the page's console messages in Chromium's log but
// those matching allowed.
func consoleLines(log string, allowed *regexp.Regexp) []string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, ":CONSOLE") && (allowed == nil || !allowed.MatchString(l)) {
			out = append(out, l)
		}
	}
	return out
}

// pathsWithPoints counts the drawn series of a chart whose path has n
// points.
func pathsWithPoints(svg string, n string) int {
	return len(regexp.MustCompile(`<path d="M[0-9.]+,[0-9.]+[^"]*"[^>]*data-points="`+n+`"`).FindAllString(svg, -1))
}

// The console, served from the binary, draws its charts in a real
// browser from a running server: traffic sent through the real
// recommendation pipeline and sampled from the server's metrics, the
// replica's model versions from the status route, and experiment reports
// (from a fake source here: the real one reads PostgreSQL); the page logs
// no error and nothing is blocked by its content security policy.
func TestConsoleRendersChartsInChromium(t *testing.T) {
	f := newFixture(t)
	f.reports.set(sampleReports(), nil)
	f.traffic.Sample()
	for range 4 { // four intervals, three requests each
		for range 3 {
			recallResp(t, f, `{"user_id":7,"k":3}`)
		}
		f.traffic.Sample()
	}
	// The page's policy allows its own inline script and style by hash
	// and nothing else (the browser below would refuse a wrong hash).
	resp, err := http.Get(f.srv.URL + "/debug")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	csp := resp.Header.Get("Content-Security-Policy")
	if !regexp.MustCompile(`^default-src 'none'; script-src 'sha256-[A-Za-z0-9+/]{43}='; style-src 'sha256-[A-Za-z0-9+/]{43}='; connect-src 'self';`).MatchString(csp) ||
		strings.Contains(csp, "unsafe") {
		t.Errorf("Content-Security-Policy %q", csp)
	}
	dom, log := chromiumDOM(t, f.srv.URL+"/debug#token="+token)
	// Chromium logs the page's console (errors, CSP refusals, failed
	// requests) as CONSOLE lines: there must be none.
	if lines := consoleLines(log, nil); len(lines) > 0 {
		t.Errorf("the page's console:\n%s", strings.Join(lines, "\n"))
	}
	if errs := element(dom, "pre", `id="errors"`); errs != `<pre id="errors"></pre>` || !strings.Contains(dom, `<section id="page-errors" aria-labelledby="h-errors" hidden="">`) {
		t.Errorf("the page reports errors: %s", errs)
	}

	// Traffic: requests/s and 5xx/s over the four intervals, p99 and p50,
	// each a path through four points with a dot (and tooltip) per point.
	rps := element(dom, "svg", `id="chart-rps"`)
	if !strings.Contains(rps, `aria-labelledby="chart-rps-title"`) || !strings.Contains(rps, `<title id="chart-rps-title">Requests per second</title>`) {
		t.Errorf("the requests chart has no accessible title: %s", rps)
	}
	if n := pathsWithPoints(rps, "4"); n != 2 || strings.Count(rps, `class="pt"`) != 8 {
		t.Errorf("requests chart: %d series of 4 points, %d dots; want 2 and 8:\n%s", n, strings.Count(rps, `class="pt"`), rps)
	}
	lat := element(dom, "svg", `id="chart-latency"`)
	if pathsWithPoints(lat, "4") != 2 || !strings.Contains(lat, `<g data-series="p99">`) || !regexp.MustCompile(`<title>p99 at \d\d:\d\d:\d\d: [0-9.]+ ms</title>`).MatchString(lat) {
		t.Errorf("latency chart lacks its p99 and p50 series of 4 points:\n%s", lat)
	}
	// Channel outcomes: the twelve requests' MF channel answered ok.
	chans := element(dom, "svg", `id="chart-channels"`)
	if !regexp.MustCompile(`<rect [^>]*class="seg" data-channel="mf" data-status="ok" data-count="12">`).MatchString(chans) {
		t.Errorf("channel chart lacks mf ok 12:\n%s", chans)
	}
	if !strings.Contains(dom, "requests/s ") || !strings.Contains(dom, "4 intervals of 5 s") {
		t.Errorf("traffic figures missing:\n%s", element(dom, "section", `id="traffic"`))
	}

	// Models: the status's serving versions.
	if !strings.Contains(dom, `<tr data-kind="mf" data-version="mf-1" data-role="active"><td>mf</td><td>mf-1</td><td>active</td>`) ||
		!strings.Contains(dom, `<tr data-kind="rerank" data-version="default" data-role="active">`) ||
		!strings.Contains(dom, `<tr data-kind="mf" data-version="mf-2" data-role="experiment">`) ||
		!strings.Contains(dom, `<tr data-kind="mf" data-version="mf-3" data-role="failed">`) ||
		!strings.Contains(dom, `<tr data-kind="rerank" data-version="r2" data-role="failed">`) {
		t.Errorf("models table:\n%s", element(dom, "section", `id="models"`))
	}

	// Experiments: the A/B test's arms with the treatment's difference,
	// its sample-ratio warning, and a chart per metric with a path per arm
	// through its six buckets; the interleaving test's wins and charts.
	ab := element(dom, "div", `data-experiment="ranker-v2"`)
	if !strings.Contains(ab, `class="warn srm"`) || !strings.Contains(ab, "+0.0300 (+15.0%) [0.0100, 0.0500] p 0.004") ||
		!strings.Contains(ab, `<tr data-arm="control"><td>control (control)</td>`) {
		t.Errorf("A/B report:\n%s", ab)
	}
	wtr := element(ab, "svg", `data-metric="watch_through_rate"`)
	if pathsWithPoints(wtr, "6") != 2 || !strings.Contains(wtr, `<g data-series="treatment">`) || !strings.Contains(wtr, "ranker-v2: watch_through_rate</title>") {
		t.Errorf("watch-through chart of ranker-v2:\n%s", wtr)
	}
	if n := strings.Count(ab, `<svg class="chart"`); n != 4 {
		t.Errorf("ranker-v2 has %d charts, want one per metric (4)", n)
	}
	il := element(dom, "div", `data-experiment="ncf-interleave"`)
	if !strings.Contains(il, "Interleaving wins: a 40 (40.0%), b 60 (60.0%); ties 5; sign test p 0.057") || strings.Contains(il, "srm") ||
		pathsWithPoints(element(il, "svg", `data-metric="watch_through_rate"`), "4") != 2 {
		t.Errorf("interleaving report:\n%s", il)
	}

	// Without the token the sections say what is missing; the page still
	// works (no script error).
	dom, log = chromiumDOM(t, f.srv.URL+"/debug")
	if lines := consoleLines(log, regexp.MustCompile(`Failed to load resource: the server responded with a status of 401`)); len(lines) > 0 {
		t.Errorf("the page's console without a token (only the refused requests expected):\n%s", strings.Join(lines, "\n"))
	}
	if !strings.Contains(dom, "/v1/admin/traffic: missing bearer token") || !strings.Contains(dom, "/v1/admin/experiments: missing bearer token") ||
		element(dom, "pre", `id="errors"`) != `<pre id="errors"></pre>` {
		t.Errorf("page without a token:\n%s", dom)
	}
}
