package main

import "testing"

// The users' loads may hold two connections at most, and at most half of a
// smaller pool; the pool serve opens without pool_max_conns has room for
// them beside the LISTEN, the user store's queries and two more.
func TestServePoolSizes(t *testing.T) {
	for pool, want := range map[int32]int{1: 1, 2: 1, 3: 1, 4: 2, servePoolConns: 2, 50: 2} {
		if got := serveMaxLoads(pool); got != want {
			t.Errorf("serveMaxLoads(%d) = %d, want %d", pool, got, want)
		}
	}
	if servePoolConns != 9 {
		t.Errorf("servePoolConns = %d, want 9 (1 LISTEN + 4 user store + 2 loads + 2)", servePoolConns)
	}
}
