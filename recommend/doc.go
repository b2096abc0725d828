// Package recommend owns the use case "recommend a page of live streamers":
// Service.Recommend runs recall, the integrity filters (inside recall),
// rerank with the recall-order fallback, shown-marking, impression logging
// and the per-stage metrics; Service.Neighbors answers the operators'
// neighbour queries. The HTTP edge, the benchmarks and the simulator's
// quality run all call it, so the pipeline is composed here only.
//
// It depends on small interfaces declared here (the recall stage, the live
// view's users and streams, the index's vectors, the scorers, the
// impression log), which cmd/liverecall satisfies with recall.Engine,
// live.State, index.Manager, Models and the Kafka impression producer.
// Models also holds the policy of which reranker weights and NeuMF scorer
// serve, and how they are refreshed.
package recommend
