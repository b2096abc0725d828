// Package index owns nearest-neighbour search over embedding vectors: our own
// HNSW graph with filtered traversal, an exact scan over the live vectors,
// the planner that chooses between them, building, snapshots and the
// validated atomic swap of a rebuilt index.
//
// Pieces, bottom up:
//   - Graph (hnsw.go): an immutable HNSW graph (Malkov & Yashunin 2018) over
//     dense node ids with flat neighbour arrays (layer 0: M0 = 2M links,
//     upper layers: M), the paper's heuristic neighbour selection, separate
//     efConstruction and per-query ef, a pooled generation-stamped visited
//     set, no maps on the search path, and an accept predicate applied
//     during traversal. Build is batch-parallel and deterministic for a seed
//     whatever the number of workers. The score is the dot product the
//     models rank by (MF and NCF's GMF vectors); see the "Inner product"
//     note in hnsw.go for how the graph handles it and what was measured.
//   - ExactScan and the live matrix (exact.go): SIMD (vek32) dot products
//     over a contiguous matrix; the live matrix holds the vectors of the
//     live streamers of one version of the live set (a LiveSet, published
//     by live/) and follows the versions given to SetLive in place, with
//     no rebuild.
//   - Index (index.go): one validated model version of one kind — graph,
//     streamer ids and ordinals, live matrix — and the planner: an exact
//     scan (of the live matrix when the filter is a LiveSet version it has
//     reached, else of every vector) or the graph at an ef.
//   - Planner (planner.go): recall-aware and by measured cost. The build's
//     self-check measures a Profile — the graph's recall@10 and time per
//     ef (16…256) and accepted share (1, 0.5, 0.3, 0.2, 0.1), and the
//     scans' times — and for Params.RecallTarget (default 0.95) each share
//     gets the smallest ef reaching it; a search scans when none does, when
//     under 10% is allowed, or when the scan is estimated cheaper than
//     1/1.2 of the graph's time. Without a profile (target off, a format-2
//     snapshot): exact scans up to ExactThreshold allowed vectors or under
//     10% of the index, the graph at EfSearch above. Index.Planner and
//     Index.Summary describe the plan; the Manager exports it in Status
//     and as metrics (plan_status.go).
//   - Manager (manager.go): serves one Index per kind behind an atomic
//     pointer; rebuilds from Postgres (stream, validate, build beside the
//     serving index, self-check recall against exact search, swap, keep the
//     previous for Rollback) on an admin call, a LISTEN/NOTIFY and a periodic
//     check; follows the published versions of the live set (SetLive) for
//     every serving index and each one swapped in; neighbour queries for
//     operators; metrics.
//   - Snapshots (snapshot.go): a checksummed binary file per kind, written
//     after a build and loaded at start when it holds the active version;
//     format 3 holds the measured profile, format 2 (none) still loads.
//
// Ordinals are the process-wide streamer ordinals (*liverecall.Ordinals)
// shared with live/, whose published snapshots of the live set satisfy
// LiveSet (and so Allowed); Manager.SetLive takes each version. coder/hnsw is measured beside this index in cmd/bench-index.
package index
