package live

import (
	"math/rand/v2"
	"testing"
	"time"

	lr "github.com/liverecall/liverecall"
)

// The gift features a stream keeps between requests must equal a fresh
// walk of its gifts at every time asked, as gifts arrive (in order, late,
// and stamped ahead of the clock) and time moves (mostly forward, at times
// back); and they must actually be reused while nothing changes.
func TestGiftStatsCacheMatchesWalk(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	sec := int64(time.Second)
	for trial := 0; trial < 20; trial++ {
		c := &stream{id: 1}
		now := int64(1_700_000_000) * sec
		reused := 0
		for step := 0; step < 3000; step++ {
			switch r := rng.IntN(10); {
			case r < 3: // a gift, mostly now, some late, some ahead
				ts := now - rng.Int64N(5*sec)
				if rng.IntN(10) == 0 {
					ts = now - rng.Int64N(int64(40*time.Minute))
				}
				if rng.IntN(20) == 0 {
					ts = now + rng.Int64N(3*sec)
				}
				c.gift(gift{ts: ts, amount: float64(1 + rng.IntN(50)), user: lr.UserID(1 + rng.IntN(40))})
			case r < 9: // time passes, a little or a lot
				now += rng.Int64N(int64(time.Duration(1+rng.IntN(3)) * time.Minute / 20))
			default: // a request stamped a little earlier
				now -= rng.Int64N(2 * sec)
			}
			prev := c.giftCache.Load()
			got := c.giftStatsAt(now)
			if got == prev {
				reused++
			}
			want := c.computeGiftStats(now)
			if got.n1 != want.n1 || got.n5 != want.n5 || got.n30 != want.n30 || got.value1 != want.value1 ||
				got.value5 != want.value5 || got.value30 != want.value30 || got.unique30 != want.unique30 {
				t.Fatalf("trial %d step %d at %d: kept %+v, a fresh walk gives %+v (%d gifts)", trial, step, now, *got, *want, len(c.gifts))
			}
		}
		if reused < 500 {
			t.Fatalf("trial %d: the kept features were reused %d times in 3000 asks", trial, reused)
		}
	}
}
