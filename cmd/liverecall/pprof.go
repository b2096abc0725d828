package main

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
)

// pprofHandler serves Go's runtime profiles under /debug/pprof/ (heap,
// goroutine, allocs, profile for CPU, trace ...), as net/http/pprof does on
// http.DefaultServeMux, on a mux of its own so that the API never serves them.
func pprofHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// listenPprof opens the profiling listener of --pprof-addr and returns the
// server to run on it (nil, nil when the address is empty). Its write
// timeout leaves room for a CPU profile of up to a minute.
func listenPprof(addr string) (*http.Server, net.Listener, error) {
	if addr == "" {
		return nil, nil, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("cannot listen on --pprof-addr %s: %w", addr, err)
	}
	hs := newHTTPServer(pprofHandler())
	hs.WriteTimeout = 0 // /debug/pprof/profile?seconds=N and trace write after N seconds
	return hs, ln, nil
}

// servePprof serves hs on ln until hs is shut down.
func servePprof(hs *http.Server, ln net.Listener) error {
	if err := hs.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("pprof server: %w", err)
	}
	return nil
}
