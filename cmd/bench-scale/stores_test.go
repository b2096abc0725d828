package main

import (
	"bufio"
	"net"
	"slices"
	"testing"
)

func TestRowEncodingRoundTrip(t *testing.T) {
	vec, mlp := []float32{1, -2.5, 3e-7}, []float32{4, 5}
	v, m, err := decodeRow(encodeRow(vec, mlp))
	if err != nil || !slices.Equal(v, vec) || !slices.Equal(m, mlp) {
		t.Fatalf("got %v %v %v", v, m, err)
	}
	v, m, err = decodeRow(encodeRow(vec, nil))
	if err != nil || !slices.Equal(v, vec) || m != nil {
		t.Fatalf("without mlp: got %v %v %v", v, m, err)
	}
	if _, _, err := decodeRow([]byte{9, 0, 1, 2, 3, 4}); err == nil {
		t.Fatal("a row shorter than its vector decoded")
	}
}

// The RESP client writes commands as arrays of bulk strings and reads
// nested replies, null bulk strings and errors.
func TestRESPClient(t *testing.T) {
	client, server := net.Pipe()
	defer client.Close()
	done := make(chan string, 1)
	go func() {
		defer server.Close()
		r := bufio.NewReader(server)
		want := "*3\r\n$4\r\nMGET\r\n$1\r\na\r\n$1\r\nb\r\n"
		buf := make([]byte, len(want))
		if _, err := readFull(r, buf); err != nil {
			done <- err.Error()
			return
		}
		done <- string(buf)
		server.Write([]byte("*3\r\n$3\r\nxy\x00\r\n$-1\r\n:7\r\n-ERR wrong\r\n"))
	}()
	rc := &respConn{c: client, r: bufio.NewReader(client), w: bufio.NewWriter(client)}
	rep, err := rc.do([]byte("MGET"), []byte("a"), []byte("b"))
	if got := <-done; got != "*3\r\n$4\r\nMGET\r\n$1\r\na\r\n$1\r\nb\r\n" {
		t.Fatalf("command on the wire: %q", got)
	}
	vals, ok := rep.([]any)
	if err != nil || !ok || len(vals) != 3 || string(vals[0].([]byte)) != "xy\x00" || vals[1].([]byte) != nil || vals[2].(int64) != 7 {
		t.Fatalf("reply %#v, %v", rep, err)
	}
	if _, err := rc.read(); err == nil || err.Error() != "redis: ERR wrong" {
		t.Fatalf("error reply: %v", err)
	}
}
