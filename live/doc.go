// Package live keeps the replicated, in-memory view of who is live and how
// each live stream is doing: dense uint32 ordinals for streamer ids (shared
// with the index), the live set as a roaring bitmap published as immutable,
// numbered snapshots (the one owner of who is live: the index's views are
// derived from the versions it is given through Config.OnPublish),
// per-stream real-time features, and the session history and follows of
// the users active lately (loaded from the store at a user's first
// request, evicted once idle). It is fed by events/ and read by recall/.
package live
