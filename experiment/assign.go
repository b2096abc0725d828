package experiment

import (
	"crypto/sha256"
	"encoding/binary"
	"strconv"

	lr "github.com/liverecall/liverecall"
)

// Buckets is how finely traffic is split: a share is rounded to a whole
// number of buckets (1/10,000 of traffic).
const Buckets = 10000

// Bucket returns u's bucket in [0, Buckets) under salt: deterministic, and
// independent between salts (the first 8 bytes of SHA-256 of
// salt, a NUL and the decimal user id).
func Bucket(salt string, u lr.UserID) int {
	h := sha256.New()
	h.Write([]byte(salt))
	h.Write([]byte{0})
	h.Write(strconv.AppendInt(nil, int64(u), 10))
	var sum [sha256.Size]byte
	return int(binary.BigEndian.Uint64(h.Sum(sum[:0])[:8]) % Buckets)
}

// shareBuckets is a share's whole number of buckets.
func shareBuckets(share float64) int { return int(share*Buckets + 0.5) }

// ArmOf returns the arm u falls in under e (its index in e.Arms), or -1
// when u is in the rest of the traffic. Arms take consecutive bucket
// ranges in their order. In ModeInterleave, u is in the experiment when it
// falls in either arm's range, and ArmOf returns 0 (both arms serve).
// ArmOf ignores e's status and window.
func ArmOf(e *lr.Experiment, u lr.UserID) int {
	b := Bucket(e.Salt, u)
	lo := 0
	for i, a := range e.Arms {
		hi := lo + shareBuckets(a.Share)
		if b < hi {
			if e.Mode == lr.ModeInterleave {
				return 0
			}
			return i
		}
		lo = hi
	}
	return -1
}
