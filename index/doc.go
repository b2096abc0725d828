// Package index owns nearest-neighbour search over embedding vectors: our own
// HNSW graph with filtered traversal, an exact scan over the live vectors,
// the planner that chooses between them, building, snapshots and the
// validated atomic swap of a rebuilt index.
package index
