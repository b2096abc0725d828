package live_test

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/live"
)

// BenchmarkFeaturesAtMany reads the features of one request's candidates
// (160 random live streamers of 20k, each with a few viewers and gifts).
func BenchmarkFeaturesAtMany(b *testing.B) {
	ords := lr.NewOrdinals()
	st := live.New(live.Config{Ordinals: ords})
	rng := rand.New(rand.NewPCG(1, 1))
	now := time.Now()
	var evs []lr.Event
	const n = 20_000
	for i := 0; i < n; i++ {
		sid := lr.StreamerID(rng.IntN(1_000_000) + 1)
		evs = append(evs, lr.Event{ID: fmt.Sprint("s", i), Type: lr.EventStreamStarted, TS: now.Add(-time.Hour), StreamerID: sid,
			StreamID: lr.StreamID(i + 1), Category: fmt.Sprint("c", i%12), V: 1})
		for v := 0; v < 5; v++ {
			evs = append(evs, lr.Event{ID: fmt.Sprint("v", i, "-", v), Type: lr.EventViewerJoined, TS: now.Add(-time.Duration(v) * time.Minute),
				StreamerID: sid, StreamID: lr.StreamID(i + 1), UserID: lr.UserID(rng.IntN(100_000) + 1), V: 1})
		}
		evs = append(evs, lr.Event{ID: fmt.Sprint("g", i), Type: lr.EventGiftSent, TS: now.Add(-time.Minute), StreamerID: sid,
			StreamID: lr.StreamID(i + 1), UserID: lr.UserID(rng.IntN(100_000) + 1), Amount: 5, V: 1})
	}
	st.Apply(evs)
	readCandidates(b, st, rng, func(int) time.Time { return now })
}

// BenchmarkFeaturesAtManyGiftHeavy reads the features of 160 candidates
// among 2,000 live streams that each hold 1,000 gifts from 200 gifters in
// their 30-minute window; each op is a request 0.5 ms after the last (2,000
// req/s), so the gift windows move as they would.
func BenchmarkFeaturesAtManyGiftHeavy(b *testing.B) {
	ords := lr.NewOrdinals()
	st := live.New(live.Config{Ordinals: ords})
	rng := rand.New(rand.NewPCG(2, 2))
	now := time.Now()
	var evs []lr.Event
	const n, gifts = 2_000, 1_000
	for i := 0; i < n; i++ {
		sid := lr.StreamerID(i + 1)
		evs = append(evs, lr.Event{ID: fmt.Sprint("s", i), Type: lr.EventStreamStarted, TS: now.Add(-time.Hour), StreamerID: sid,
			StreamID: lr.StreamID(i + 1), Category: fmt.Sprint("c", i%12), V: 1})
		for g := 0; g < gifts; g++ {
			evs = append(evs, lr.Event{ID: fmt.Sprint("g", i, "-", g), Type: lr.EventGiftSent, TS: now.Add(-time.Duration(gifts-g) * 30 * time.Minute / gifts),
				StreamerID: sid, StreamID: lr.StreamID(i + 1), UserID: lr.UserID(rng.IntN(200) + 1), Amount: 5, V: 1})
		}
	}
	st.Apply(evs)
	readCandidates(b, st, rng, func(i int) time.Time { return now.Add(time.Duration(i) * 500 * time.Microsecond) })
}

// readCandidates times b.N requests' reads of the features of 160 random
// live streamers of st, request i at time at(i).
func readCandidates(b *testing.B, st *live.State, rng *rand.Rand, at func(i int) time.Time) {
	all := st.Snapshot().Ordinals()
	req := make([]uint32, 160)
	out, isLive := make([]*live.Features, len(req)), make([]bool, len(req))
	for i := range out {
		out[i] = new(live.Features)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for j := range req {
			req[j] = all[rng.IntN(len(all))]
		}
		st.FeaturesAtMany(req, at(i), out, isLive)
	}
}
