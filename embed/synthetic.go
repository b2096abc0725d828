package embed

import (
	"math/rand/v2"
	"time"
)

// SyntheticHistory builds a small live-streaming world with planted taste
// groups, for tests and demos: streamer s and user u belong to group s%groups
// and u%groups; every streamer streams 6-12 hours a day at a random hour;
// every user watches `perDay` times a day, at random moments, a live
// streamer of their own group with probability 0.85 (else any live one),
// preferring a few favourites. Ids start at 1 (users) and 1001 (streamers).
// The same seed gives the same history.
func SyntheticHistory(seed uint64, users, streamers, groups, days, perDay int) *History {
	rng := rand.New(rand.NewPCG(seed, 0x51))
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	h := &History{}
	for d := 0; d < days; d++ {
		day := t0.Add(time.Duration(d) * 24 * time.Hour)
		var today []Stream
		for s := 0; s < streamers; s++ {
			start := day.Add(time.Duration(rng.IntN(20*60)) * time.Minute)
			st := Stream{Streamer: int64(1001 + s), Start: start, End: start.Add(time.Duration(360+rng.IntN(360)) * time.Minute)}
			today = append(today, st)
		}
		h.Streams = append(h.Streams, today...)
		for u := 0; u < users; u++ {
			for k := 0; k < perDay; k++ {
				at := day.Add(time.Duration(rng.IntN(24*60)) * time.Minute)
				var own, any []int64
				for _, st := range today {
					if !st.Start.After(at) && st.End.After(at) {
						any = append(any, st.Streamer)
						if int(st.Streamer-1001)%groups == u%groups {
							own = append(own, st.Streamer)
						}
					}
				}
				pool := any
				if len(own) > 0 && rng.Float64() < .85 {
					pool = own
					// favourites: the lowest ids of the group are picked twice as often
					if len(own) > 1 && rng.IntN(2) == 0 {
						pool = own[:1+len(own)/3]
					}
				}
				if len(pool) == 0 {
					continue
				}
				h.Watches = append(h.Watches, Watch{User: int64(1 + u), Streamer: pool[rng.IntN(len(pool))], At: at, Seconds: float64(60 + rng.IntN(3600))})
			}
		}
	}
	for u := 0; u < users; u += 3 {
		h.Follows = append(h.Follows, Follow{User: int64(1 + u), Streamer: int64(1001 + u%groups), At: t0})
	}
	for u := 0; u < users; u += 5 {
		h.Gifts = append(h.Gifts, Gift{User: int64(1 + u), Streamer: int64(1001 + u%groups), At: t0.Add(time.Hour), Amount: 5})
	}
	return h
}
