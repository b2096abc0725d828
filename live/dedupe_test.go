package live

import (
	"strconv"
	"testing"
)

// TestDedupeWindow checks the set against a plain map over many windows'
// worth of ids, with a table small enough that clusters wrap around.
func TestDedupeWindow(t *testing.T) {
	for _, n := range []int{1, 3, 64, 1000} {
		d := newDedupe(n)
		var ring []string
		in := map[string]bool{}
		for i := 0; i < 20*n+50; i++ {
			// Mostly new ids, sometimes a recent one, sometimes an old one.
			id := strconv.Itoa(i)
			switch {
			case i%7 == 3 && i > 0:
				id = strconv.Itoa(i - 1 - i%(n+1))
			case i%11 == 5:
				id = strconv.Itoa(i / 2)
			}
			want := in[id]
			if got := d.seen(id); got != want {
				t.Fatalf("n=%d step %d id %s: seen %v, want %v", n, i, id, got, want)
			}
			if !want {
				ring = append(ring, id)
				in[id] = true
				if len(ring) > n {
					delete(in, ring[0])
					ring = ring[1:]
				}
			}
		}
		used := 0
		for _, v := range d.table {
			if v != 0 {
				used++
			}
		}
		if used != len(in) {
			t.Fatalf("n=%d: table holds %d, window %d", n, used, len(in))
		}
	}
}
