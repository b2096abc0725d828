// Package loadgen sends HTTP load at fixed open-loop rates and measures
// latency from each request's scheduled start, so a slow server cannot hide
// its queueing (no coordinated omission). Benchmarks and the soak use it.
package loadgen

import (
	"context"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"
)

// Result is one open-loop run at a fixed rate.
type Result struct {
	Rate     int
	Sent     int
	Errors   int // transport errors and non-2xx
	Status5x int
	Lat      []time.Duration // from the request's scheduled start, so a slow server cannot hide queueing (no coordinated omission)
	At       []time.Duration // each Lat's scheduled start, from the start of the run
	Start    time.Time       // when the run began (At is from here)
	// Failures holds the first few distinct failures (a transport error,
	// or a status line with the body's start), so a run that counted
	// errors says what they were.
	Failures []string
	Elapsed  time.Duration
}

// Pct returns the p-quantile (0..1) of the successful requests' latencies.
func (r Result) Pct(p float64) time.Duration {
	if len(r.Lat) == 0 {
		return 0
	}
	s := slices.Clone(r.Lat)
	slices.Sort(s)
	i := int(p * float64(len(s)-1))
	return s[i]
}

// Window is the latency of the requests scheduled within one window of a run.
type Window struct {
	Start    time.Duration // from the start of the run
	Requests int
	P99, Max time.Duration
}

// Worst returns the n windows of length w with the highest p99, worst
// first: where in a run its tail came from.
func (r Result) Worst(w time.Duration, n int) []Window {
	by := map[int][]time.Duration{}
	for i, l := range r.Lat {
		b := int(r.At[i] / w)
		by[b] = append(by[b], l)
	}
	var out []Window
	for b, ls := range by {
		slices.Sort(ls)
		out = append(out, Window{Start: time.Duration(b) * w, Requests: len(ls), P99: ls[int(.99*float64(len(ls)-1))], Max: ls[len(ls)-1]})
	}
	slices.SortFunc(out, func(a, b Window) int { return int(b.P99 - a.P99) })
	return out[:min(n, len(out))]
}

// NewClient returns a client with enough idle connections for high rates.
func NewClient() *http.Client {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
		MaxIdleConns:        2048,
		MaxIdleConnsPerHost: 2048,
		IdleConnTimeout:     time.Minute,
	}
	return &http.Client{Transport: tr, Timeout: 5 * time.Second}
}

const maxFailures = 5

// OpenLoop POSTs JSON bodies to url at rate requests per second for dur,
// each at its scheduled time whether or not earlier ones have answered,
// with net/http's client c. OpenLoopWith takes any Poster.
func OpenLoop(ctx context.Context, c *http.Client, url string, rate int, dur time.Duration, body func(i int) []byte) Result {
	return OpenLoopWith(ctx, HTTPClient{c}, url, rate, dur, body)
}

// OpenLoopWith is OpenLoop with the requests sent by p.
func OpenLoopWith(ctx context.Context, p Poster, url string, rate int, dur time.Duration, body func(i int) []byte) Result {
	n := int(float64(rate) * dur.Seconds())
	res := Result{Rate: rate, Sent: n}
	lat := make([]time.Duration, n)
	ok := make([]bool, n)
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	res.Start = start
	interval := time.Second / time.Duration(rate)
	for i := 0; i < n; i++ {
		at := start.Add(time.Duration(i) * interval)
		if d := time.Until(at); d > 0 {
			time.Sleep(d)
		}
		if ctx.Err() != nil {
			res.Sent = i
			break
		}
		wg.Add(1)
		go func(i int, at time.Time) {
			defer wg.Done()
			failure, status5x := p.Post(ctx, url, body(i))
			lat[i] = time.Since(at)
			if failure == "" {
				ok[i] = true
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if status5x {
				res.Status5x++
			}
			if len(res.Failures) < maxFailures && !slices.Contains(res.Failures, failure) {
				res.Failures = append(res.Failures, failure)
			}
		}(i, at)
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	for i := 0; i < res.Sent; i++ {
		if ok[i] {
			res.Lat = append(res.Lat, lat[i])
			res.At = append(res.At, time.Duration(i)*interval)
		} else {
			res.Errors++
		}
	}
	return res
}
