package main

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"
)

// respConn is a minimal client of the Redis protocol (RESP2) over one
// connection, enough for the store comparison: commands of bulk-string
// arguments and their replies. Not safe for concurrent use.
type respConn struct {
	c net.Conn
	r *bufio.Reader
	w *bufio.Writer
}

func dialRESP(addr string) (*respConn, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	return &respConn{c: c, r: bufio.NewReaderSize(c, 64<<10), w: bufio.NewWriterSize(c, 64<<10)}, nil
}

func (rc *respConn) Close() error { return rc.c.Close() }

// send writes one command (without flushing).
func (rc *respConn) send(args ...[]byte) {
	rc.w.WriteByte('*')
	rc.w.WriteString(strconv.Itoa(len(args)))
	rc.w.WriteString("\r\n")
	for _, a := range args {
		rc.w.WriteByte('$')
		rc.w.WriteString(strconv.Itoa(len(a)))
		rc.w.WriteString("\r\n")
		rc.w.Write(a)
		rc.w.WriteString("\r\n")
	}
}

// do sends one command and reads its reply.
func (rc *respConn) do(args ...[]byte) (any, error) {
	rc.send(args...)
	if err := rc.w.Flush(); err != nil {
		return nil, err
	}
	return rc.read()
}

// read reads one reply: string (simple), error ('-'), int64, []byte (nil
// for a null bulk string) or []any.
func (rc *respConn) read() (any, error) {
	line, err := rc.r.ReadSlice('\n')
	if err != nil {
		return nil, err
	}
	if len(line) < 3 || line[len(line)-2] != '\r' {
		return nil, errors.New("resp: malformed line")
	}
	body := line[1 : len(line)-2]
	switch line[0] {
	case '+':
		return string(body), nil
	case '-':
		return nil, fmt.Errorf("redis: %s", body)
	case ':':
		return strconv.ParseInt(string(body), 10, 64)
	case '$':
		n, err := strconv.Atoi(string(body))
		if err != nil || n < -1 {
			return nil, errors.New("resp: bad bulk length")
		}
		if n == -1 {
			return []byte(nil), nil
		}
		b := make([]byte, n+2)
		if _, err := readFull(rc.r, b); err != nil {
			return nil, err
		}
		return b[:n], nil
	case '*':
		n, err := strconv.Atoi(string(body))
		if err != nil || n < -1 {
			return nil, errors.New("resp: bad array length")
		}
		if n == -1 {
			return []any(nil), nil
		}
		out := make([]any, n)
		for i := range out {
			if out[i], err = rc.read(); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("resp: unknown reply type %q", line[0])
}

func readFull(r *bufio.Reader, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := r.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}
