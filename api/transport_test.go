package api_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/liverecall/liverecall/api"
)

// ioGuard bounds a raw exchange so that a broken server fails the test
// instead of hanging it; it is not a wait for anything to happen.
const ioGuard = 2 * time.Minute

// serveRaw serves h as the service does (an http.Server with a header
// limit, through api.JSONTransportErrors) and returns its address.
func serveRaw(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: h, MaxHeaderBytes: 1024, ReadHeaderTimeout: ioGuard}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(api.JSONTransportErrors(hs, ln)) }()
	t.Cleanup(func() {
		hs.Close()
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("serve: %v", err)
		}
	})
	return ln.Addr().String()
}

// exchange sends raw bytes on a new connection and reads the responses
// to them, n of them, in order.
func exchange(t *testing.T, addr, raw string, n int) []*http.Response {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(ioGuard))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	var out []*http.Response
	for range n {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("reading response %d to %q: %v", len(out)+1, raw[:min(len(raw), 60)], err)
		}
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body = io.NopCloser(strings.NewReader(string(b)))
		out = append(out, resp)
	}
	return out
}

// Requests that net/http refuses before any handler runs get JSON errors,
// read with a raw TCP client, like every other error.
func TestTransportErrorsAreJSON(t *testing.T) {
	f := newFixture(t)
	addr := serveRaw(t, f.srv.Config.Handler)
	big := strings.Repeat("a", 8<<10)
	cases := []struct {
		name, raw string
		status    int
		want      string
	}{
		{"malformed request line", "GARBAGE\r\n\r\n", 400, "malformed request line or header"},
		{"malformed header", "GET /healthz HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n", 400, "malformed request"},
		{"missing Host", "GET /healthz HTTP/1.1\r\n\r\n", 400, "malformed request: missing required Host header"},
		{"invalid header value", "GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\x01b\r\n\r\n", 400, "malformed request"},
		{"headers too large", "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + big + "\r\n\r\n", 431, "request header fields larger than 1024 bytes"},
		{"HTTP/2.0 request line", "GET /healthz HTTP/2.0\r\nHost: x\r\n\r\n", 505, "HTTP version not supported"},
		{"HTTP/0.9 request line", "GET /healthz HTTP/0.9\r\nHost: x\r\n\r\n", 505, "HTTP version not supported"},
		{"unknown transfer coding", "POST /v1/recall HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: gzip\r\n\r\n", 501, "transfer encoding not supported"},
		{"unknown expectation", "GET /healthz HTTP/1.1\r\nHost: x\r\nExpect: 200-ok\r\n\r\n", 417, "Expect header not supported"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp := exchange(t, addr, c.raw, 1)[0]
			checkJSONError(t, resp, c.status, c.want)
		})
	}
	// On a kept-alive connection: a request served by a handler, then one
	// net/http refuses.
	t.Run("after a served request", func(t *testing.T) {
		rs := exchange(t, addr, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/7.0\r\nHost: x\r\n\r\n", 2)
		if b, _ := io.ReadAll(rs[0].Body); rs[0].StatusCode != 200 || !strings.Contains(string(b), `"ok"`) {
			t.Fatalf("first response %d %s", rs[0].StatusCode, b)
		}
		checkJSONError(t, rs[1], 505, "HTTP version not supported")
	})
}

func checkJSONError(t *testing.T, resp *http.Response, status int, want string) {
	t.Helper()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != status || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("status %d, content type %q, body %q; want %d, application/json", resp.StatusCode, resp.Header.Get("Content-Type"), b, status)
	}
	var e api.ErrorBody
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatalf("body %q is not JSON: %v", b, err)
	}
	if e.Error.Code != "invalid" || !strings.Contains(e.Error.Message, want) {
		t.Fatalf("error %+v; want code invalid (refused for what the client sent) and a message containing %q", e.Error, want)
	}
}

// A handler's response goes out unchanged, even a body that looks like one
// of net/http's own responses and reaches the connection in a write of its
// own.
func TestTransportErrorsLeaveHandlerResponsesAlone(t *testing.T) {
	const mimic = "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n400 Bad Request"
	filler := strings.Repeat("f", 8<<10) // more than net/http's write buffer
	addr := serveRaw(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(filler)+len(mimic)))
		_, _ = io.WriteString(w, filler)
		w.(http.Flusher).Flush()
		_, _ = io.WriteString(w, mimic)
	}))
	for _, resp := range exchange(t, addr, "GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", 2) {
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || string(b) != filler+mimic {
			t.Fatalf("status %d, body of %d bytes ending %q; want 200 and the handler's body", resp.StatusCode, len(b), b[max(0, len(b)-40):])
		}
	}
}
