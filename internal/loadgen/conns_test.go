package loadgen

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// Conns counts what OpenLoop counts with net/http's client: every answer
// that is not 2xx is an error, 5xx apart as well, with what the server
// said; it reads chunked answers and answers with a length alike, keeps
// its connections for the next requests, and dials again when the server
// closes one.
func TestConnsPostsAndReusesConnections(t *testing.T) {
	var n, opened atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/recall" || r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "bad request line or headers: "+r.Method+" "+r.URL.String(), http.StatusBadRequest)
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil || string(body) != `{"user_id":1}` {
			http.Error(w, "body "+string(body), http.StatusBadRequest)
			return
		}
		switch n.Add(1) % 10 {
		case 3:
			http.Error(w, `{"error":"k out of range"}`, http.StatusBadRequest)
		case 5:
			w.Header().Set("Connection", "close")
			w.Write([]byte(`{}`))
		case 7:
			http.Error(w, `{"error":"internal"}`, http.StatusInternalServerError)
		case 8:
			// Larger than the server's buffer, with no length: chunked.
			w.Write([]byte(strings.Repeat(" ", 64<<10) + `{}`))
		default:
			w.Write([]byte(`{}`))
		}
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			opened.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	p := NewConns(addr, 5*time.Second)
	defer p.Close()
	r := OpenLoopWith(context.Background(), p, srv.URL+"/v1/recall", 200, time.Second, func(int) []byte { return []byte(`{"user_id":1}`) })
	if r.Sent != 200 || r.Errors != 40 || r.Status5x != 20 || len(r.Lat) != 160 {
		t.Fatalf("sent %d, errors %d, 5xx %d, latencies %d; want 200, 40, 20, 160 (failures %q)", r.Sent, r.Errors, r.Status5x, len(r.Lat), r.Failures)
	}
	joined := strings.Join(r.Failures, "\n")
	for _, want := range []string{"400 Bad Request: {\"error\":\"k out of range\"}", "500 Internal Server Error: {\"error\":\"internal\"}"} {
		if !strings.Contains(joined, want) {
			t.Fatalf("failures %q lack %q", r.Failures, want)
		}
	}
	if len(r.Failures) != 2 {
		t.Fatalf("failures %q, want the two distinct ones", r.Failures)
	}
	// 20 answers closed their connection; the others were kept: at 200
	// requests a second (5 ms apart) against a local server, about one
	// connection per close, not one per request.
	if got := opened.Load(); got < 20 || got > 60 {
		t.Errorf("%d connections for 200 requests, 20 of them answered with Connection: close; want about 21", got)
	}
	p.mu.Lock()
	dials := p.dials
	p.mu.Unlock()
	if int64(dials) != opened.Load() {
		t.Errorf("dialled %d, the server saw %d", dials, opened.Load())
	}
}

// Conns refuses a URL of another server, names a transport failure, and
// ends a request whose context ends.
func TestConnsFailures(t *testing.T) {
	hold := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-hold
	}))
	defer srv.Close()
	defer close(hold)
	addr := strings.TrimPrefix(srv.URL, "http://")
	p := NewConns(addr, 5*time.Second)
	if f, _ := p.Post(context.Background(), "http://127.0.0.1:1/v1/recall", nil); !strings.Contains(f, "only to its own server") {
		t.Errorf("another server: %q", f)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if f, _ := p.Post(ctx, srv.URL+"/v1/recall", []byte(`{}`)); f == "" {
		t.Error("a request whose context ended while the server held it succeeded")
	}
	if f, _ := NewConns("127.0.0.1:1", time.Second).Post(context.Background(), "http://127.0.0.1:1/", nil); !strings.Contains(f, "connect") {
		t.Errorf("no server: %q", f)
	}
}
