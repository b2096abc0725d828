package loadgen

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"
)

// Poster sends one request of an open loop: a POST of a JSON body to url.
// It returns "" when the server answered 2xx (the answer read to its end),
// else the failure: a transport error, or the status line with the start
// of the body; status5x says the server answered 5xx.
type Poster interface {
	Post(ctx context.Context, url string, body []byte) (failure string, status5x bool)
}

// HTTPClient is a Poster over a net/http client (NewClient).
type HTTPClient struct{ *http.Client }

// Post implements Poster.
func (c HTTPClient) Post(ctx context.Context, url string, body []byte) (string, bool) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err.Error(), false
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return err.Error(), false
	}
	defer resp.Body.Close()
	failure, status5x, _ := drain(resp)
	return failure, status5x
}

// drain reads resp's body to its end and says how the request went, as
// Poster.Post does; read says the body was read to its end.
func drain(resp *http.Response) (failure string, status5x, read bool) {
	if resp.StatusCode >= 300 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
		failure = resp.Status + ": " + string(b)
	}
	_, err := io.Copy(io.Discard, resp.Body)
	if err != nil && failure == "" {
		failure = err.Error()
	}
	return failure, resp.StatusCode >= 500, err == nil
}

// Conns is a Poster to one server over HTTP/1.1 keep-alive connections of
// its own: the calling goroutine takes an idle connection (or dials one),
// writes the request and reads the answer itself (net/http.ReadResponse
// parses it), so a request costs the load generator one wake-up, its
// answer arriving. net/http's Transport hands each request to its
// connection's writer goroutine and the answer back from its reader
// goroutine, three more: on a machine the load generator shares with the
// server it measures, those take CPU from the server and add their
// scheduling delays to every latency measured. Safe for concurrent use;
// each connection carries one request at a time (no pipelining).
type Conns struct {
	addr    string // host:port of every URL posted to
	timeout time.Duration
	mu      sync.Mutex
	idle    []*hconn
	dials   int // connections dialled, for tests
}

type hconn struct {
	nc  net.Conn
	br  *bufio.Reader
	buf []byte // the request being written
}

// NewConns returns a Conns to the server at addr (host:port); each request
// must be answered within timeout.
func NewConns(addr string, timeout time.Duration) *Conns {
	return &Conns{addr: addr, timeout: timeout}
}

// Close closes the idle connections.
func (p *Conns) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.idle {
		c.nc.Close()
	}
	p.idle = nil
}

func (p *Conns) get(ctx context.Context) (*hconn, error) {
	p.mu.Lock()
	if n := len(p.idle); n > 0 {
		c := p.idle[n-1]
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		return c, nil
	}
	p.dials++
	p.mu.Unlock()
	nc, err := (&net.Dialer{Timeout: 2 * time.Second}).DialContext(ctx, "tcp", p.addr)
	if err != nil {
		return nil, err
	}
	return &hconn{nc: nc, br: bufio.NewReaderSize(nc, 16<<10)}, nil
}

func (p *Conns) put(c *hconn) {
	p.mu.Lock()
	p.idle = append(p.idle, c)
	p.mu.Unlock()
}

var errOtherHost = errors.New("loadgen: Conns posts only to its own server")

// Post implements Poster. rawURL must name the server Conns was made for.
func (p *Conns) Post(ctx context.Context, rawURL string, body []byte) (string, bool) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return err.Error(), false
	}
	if u.Scheme != "http" || u.Host != p.addr {
		return fmt.Sprintf("%v: %s", errOtherHost, rawURL), false
	}
	c, err := p.get(ctx)
	if err != nil {
		return err.Error(), false
	}
	deadline := time.Now().Add(p.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	c.nc.SetDeadline(deadline)
	// A cancelled ctx ends the exchange at once (the connection is then
	// not reused).
	stop := context.AfterFunc(ctx, func() { c.nc.SetDeadline(time.Unix(1, 0)) })
	failure, status5x, reuse := p.exchange(c, u.RequestURI(), body)
	if !stop() || !reuse {
		c.nc.Close()
		if failure == "" && ctx.Err() != nil {
			failure = ctx.Err().Error()
		}
		return failure, status5x
	}
	p.put(c)
	return failure, status5x
}

// exchange writes one request on c and reads its answer to the end.
func (p *Conns) exchange(c *hconn, path string, body []byte) (failure string, status5x, reuse bool) {
	b := append(c.buf[:0], "POST "...)
	b = append(b, path...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, p.addr...)
	b = append(b, "\r\nContent-Type: application/json\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(len(body)), 10)
	b = append(b, "\r\n\r\n"...)
	b = append(b, body...)
	c.buf = b
	if _, err := c.nc.Write(b); err != nil {
		return err.Error(), false, false
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		return err.Error(), false, false
	}
	failure, status5x, read := drain(resp)
	resp.Body.Close()
	return failure, status5x, read && !resp.Close && c.br.Buffered() == 0
}
