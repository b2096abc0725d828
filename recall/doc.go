// Package recall runs the recall channels (MF and NCF neighbours among live
// streamers, session similarity, follows, trending, fresh) under per-channel
// time budgets, merges them with quotas and provenance, and applies the
// integrity filters.
package recall
