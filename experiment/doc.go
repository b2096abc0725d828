// Package experiment holds the logic of online experiments that needs no
// dependency: checking an experiment's definition, assigning users to
// arms by hashing (salt, user id) into buckets, team-draft interleaving of
// two rankings, and the statistics of a report (per-arm metrics, the
// difference against control with its confidence interval and p-value,
// the sign test of interleaving, the sample-ratio-mismatch check).
//
// The experiments themselves are stored in PostgreSQL (postgres/), served
// by recommend/ and reported by cmd/liverecall.
package experiment
