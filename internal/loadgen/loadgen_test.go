package loadgen

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// OpenLoop counts every request that did not get a 2xx as an error, 5xx
// apart as well, and keeps the first few distinct failures with what the
// server said; successful requests have their latencies.
func TestOpenLoopCountsAndKeepsFailures(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch n.Add(1) % 10 {
		case 3:
			http.Error(w, `{"error":"k out of range"}`, http.StatusBadRequest)
		case 7:
			http.Error(w, `{"error":"internal"}`, http.StatusInternalServerError)
		default:
			w.Write([]byte(`{}`))
		}
	}))
	defer srv.Close()
	r := OpenLoop(context.Background(), NewClient(), srv.URL, 200, time.Second, func(int) []byte { return []byte(`{}`) })
	if r.Sent != 200 || r.Errors != 40 || r.Status5x != 20 || len(r.Lat) != 160 {
		t.Fatalf("sent %d, errors %d, 5xx %d, latencies %d; want 200, 40, 20, 160", r.Sent, r.Errors, r.Status5x, len(r.Lat))
	}
	if len(r.Failures) != 2 {
		t.Fatalf("failures %q, want the two distinct ones", r.Failures)
	}
	joined := strings.Join(r.Failures, "\n")
	for _, want := range []string{"400 Bad Request: {\"error\":\"k out of range\"}", "500 Internal Server Error: {\"error\":\"internal\"}"} {
		if !strings.Contains(joined, want) {
			t.Fatalf("failures %q lack %q", r.Failures, want)
		}
	}
	if r.Start.IsZero() || r.Elapsed < 900*time.Millisecond {
		t.Fatalf("start %v, elapsed %v", r.Start, r.Elapsed)
	}

	// A transport failure names the error.
	srv.Close()
	r = OpenLoop(context.Background(), NewClient(), srv.URL, 50, 100*time.Millisecond, func(int) []byte { return []byte(`{}`) })
	if r.Errors != r.Sent || r.Sent == 0 || len(r.Failures) == 0 || !strings.Contains(r.Failures[0], "connect") {
		t.Fatalf("against a closed server: sent %d, errors %d, failures %q", r.Sent, r.Errors, r.Failures)
	}
}
