package api_test

import (
	"context"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The debug page, served from the binary, renders neighbours in a real
// browser: headless Chromium loads it, the page's script calls the
// neighbours endpoint with the token, and the DOM it leaves holds the rows.
func TestDebugPageRendersNeighboursInChromium(t *testing.T) {
	f := newFixture(t)
	dump := func(fragment string) string { dom, _ := chromiumDOM(t, f.srv.URL+"/debug#"+fragment); return dom }
	dom := dump("user_id=7&model=mf&live=only&k=3&token=" + token)
	rows := regexp.MustCompile(`<tr data-streamer="(\d+)">`).FindAllStringSubmatch(dom, -1)
	var got []string
	for _, r := range rows {
		got = append(got, r[1])
	}
	if strings.Join(got, ",") != "3,2,1" {
		t.Fatalf("rendered rows %v, want 3,2,1 (exact search over live streamers); DOM:\n%s", got, dom)
	}
	// Streamer 3's row shows its live features: started an hour before
	// the fixture's now, in category c0.
	if !regexp.MustCompile(`<tr data-streamer="3">.*?<td>60</td><td>c0</td></tr>`).MatchString(dom) {
		t.Fatalf("streamer 3's row lacks its age in minutes (60) and category (c0); DOM:\n%s", dom)
	}
	if !strings.Contains(dom, "3 neighbours of user 7 under mf mf-1 (live only)") {
		t.Fatalf("status line missing; DOM:\n%s", dom)
	}
	// The user's vectors: the nightly one (no fold-in here), searched.
	if !strings.Contains(dom, "nightly vector (norm") || !strings.Contains(dom, "Neighbours of the nightly vector.") {
		t.Fatalf("the user's vectors are not shown; DOM:\n%s", dom)
	}
	// A wrong token shows the API's error message, not a table.
	dom = dump("user_id=7&token=wrong")
	if !strings.Contains(dom, "wrong bearer token") || strings.Contains(dom, `data-streamer=`) {
		t.Fatalf("wrong token not reported; DOM:\n%s", dom)
	}
}

// chromiumDOM loads url in headless Chromium and returns the DOM once the
// page's script has run (virtual time: its timers and fetches complete
// without waiting in real time), and what the browser logged, which
// includes the page's console messages.
func chromiumDOM(t *testing.T, url string) (dom, log string) {
	t.Helper()
	bin, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium not found: install Debian's chromium package (make tools does)")
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
		"--enable-logging=stderr", "--v=0",
		"--user-data-dir="+dir, "--virtual-time-budget=5000", "--dump-dom", url)
	cmd.Env = append(os.Environ(), "HOME="+dir)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium: %v\n%s", err, stderr.String())
	}
	return string(out), stderr.String()
}
