package api

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
)

// JSONTransportErrors makes the error responses that net/http writes itself
// JSON, like every other error of the API, and returns the listener to
// serve hs from. It sets hs's Handler, ConnContext and ConnState to wrapped
// versions (keeping what they did); call it after configuring hs and before
// serving.
//
// net/http answers some requests before any handler runs, writing a fixed
// plain-text response straight to the connection and then closing it: a
// request line or header it cannot parse (400), headers larger than
// MaxHeaderBytes (431), an HTTP version other than 1.x (505), a transfer
// coding it does not implement (501), an Expect header other than
// 100-continue (417). Nothing in net/http lets a program change them, so
// the connections returned by the listener do: a connection is busy from
// the moment a handler starts until net/http reports it idle again
// (http.StateIdle, after the response is flushed), and every write made
// while it is not busy is one of those responses. A write that is a whole
// response of status 400 or more is replaced by a JSON one with the same
// status (code invalid, as codeOfStatus gives for all of these, and a
// message naming the problem); anything else is written unchanged, so a
// future net/http that words or writes them differently still answers, in
// plain text. Only plain HTTP/1.x
// connections are affected (TLS would wrap these connections, not the other
// way round).
func JSONTransportErrors(hs *http.Server, ln net.Listener) net.Listener {
	maxHeader := hs.MaxHeaderBytes
	if maxHeader <= 0 {
		maxHeader = http.DefaultMaxHeaderBytes
	}
	next := hs.Handler
	if next == nil {
		next = http.DefaultServeMux
	}
	hs.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c, ok := r.Context().Value(transportConnKey{}).(*transportConn); ok {
			c.busy.Store(true)
		}
		next.ServeHTTP(w, r)
	})
	connContext := hs.ConnContext
	hs.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		if connContext != nil {
			ctx = connContext(ctx, c)
		}
		if tc, ok := c.(*transportConn); ok {
			ctx = context.WithValue(ctx, transportConnKey{}, tc)
		}
		return ctx
	}
	connState := hs.ConnState
	hs.ConnState = func(c net.Conn, st http.ConnState) {
		if tc, ok := c.(*transportConn); ok && st == http.StateIdle {
			tc.busy.Store(false)
		}
		if connState != nil {
			connState(c, st)
		}
	}
	return &transportListener{Listener: ln, maxHeader: maxHeader}
}

type transportConnKey struct{}

type transportListener struct {
	net.Listener
	maxHeader int
}

func (l *transportListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &transportConn{Conn: c, maxHeader: l.maxHeader}, nil
}

// transportConn is a connection whose writes outside handlers (net/http's
// own responses) are made JSON.
type transportConn struct {
	net.Conn
	maxHeader int
	busy      atomic.Bool // a handler's response is being written
}

func (c *transportConn) Write(p []byte) (int, error) {
	if c.busy.Load() {
		return c.Conn.Write(p)
	}
	status, detail, ok := parseOwnResponse(p)
	if !ok {
		return c.Conn.Write(p)
	}
	var body ErrorBody
	body.Error.Code = codeOfStatus(status)
	body.Error.Message = transportMessage(status, detail, c.maxHeader)
	b, _ := json.Marshal(body)
	resp := "HTTP/1.1 " + strconv.Itoa(status) + " " + http.StatusText(status) + "\r\n" +
		"Content-Type: application/json\r\nConnection: close\r\nContent-Length: " + strconv.Itoa(len(b)) + "\r\n\r\n" + string(b)
	if _, err := c.Conn.Write([]byte(resp)); err != nil {
		return 0, err
	}
	return len(p), nil
}

// CloseWrite lets net/http half-close the connection after a 431 (so that
// the client reads the response instead of a reset) as it would a bare TCP
// connection.
func (c *transportConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// parseOwnResponse recognises a whole HTTP/1.1 error response in p (status
// line, headers, the end of the headers) and returns its status and the
// detail net/http puts after the reason phrase ("Bad Request: missing
// required Host header").
func parseOwnResponse(p []byte) (status int, detail string, ok bool) {
	rest, ok := bytes.CutPrefix(p, []byte("HTTP/1.1 "))
	if !ok || len(rest) < 4 || rest[3] != ' ' || !bytes.Contains(rest, []byte("\r\n\r\n")) {
		return 0, "", false
	}
	status, err := strconv.Atoi(string(rest[:3]))
	if err != nil || status < 400 || status > 599 {
		return 0, "", false
	}
	line, _, _ := bytes.Cut(rest[4:], []byte("\r\n"))
	if _, d, found := bytes.Cut(line, []byte(": ")); found {
		detail = string(d)
	}
	return status, detail, true
}

// transportMessage words a response net/http makes itself for the client.
func transportMessage(status int, detail string, maxHeader int) string {
	switch status {
	case http.StatusBadRequest:
		if detail != "" {
			return "malformed request: " + detail
		}
		return "malformed request line or header"
	case http.StatusRequestHeaderFieldsTooLarge:
		return "request header fields larger than " + strconv.Itoa(maxHeader) + " bytes"
	case http.StatusHTTPVersionNotSupported:
		return "HTTP version not supported: use HTTP/1.1 (or 1.0)"
	case http.StatusNotImplemented:
		return "transfer encoding not supported: use chunked or none"
	case http.StatusExpectationFailed:
		return "Expect header not supported: only 100-continue is"
	}
	if detail != "" {
		return detail
	}
	return http.StatusText(status)
}
