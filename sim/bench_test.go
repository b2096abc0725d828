package sim_test

import (
	"context"
	"testing"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/events"
)

// BenchmarkDay simulates one day of 10k streamers and 100k users and
// encodes every event, reporting events per second.
func BenchmarkDay(b *testing.B) {
	w := world(b, 1, 10000, 100000)
	st := w.Config().Start
	var buf []byte
	b.ResetTimer()
	var n int64
	for i := 0; i < b.N; i++ {
		s, err := w.Run(context.Background(), st, st.Add(day), func(e lr.Event) error {
			buf = events.AppendEncode(buf[:0], e)
			return nil
		}, nil)
		if err != nil {
			b.Fatal(err)
		}
		n += s.TotalEvents()
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(n)/float64(b.N), "events/day")
}
