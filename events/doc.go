// Package events is the Kafka edge of liverecall (the only package that
// imports kafka-go): topic names, the versioned event envelope and its strict
// decoding, the producer, the all-partition live-view consumer, the sink
// that writes training data to Postgres and is the only writer of the
// dead-letter topic (deadletter.go), the impression producer
// (impressions.go), and the all-partition impressions consumer that feeds
// every replica's already-shown filter (shown.go).
//
// The event envelope and the impression page are published as JSON Schemas
// in schemas/ at the repository root; schema_test.go holds them and the
// decoder (Decode, DecodeImpressions) to each other on the samples in
// schemas/testdata. A change to the wire format changes both.
//
// Choices that matter when talking to Kafka:
//
//   - Keys and partitions: every event is keyed by its decimal streamer id
//     (Key) and placed with CRC-32 of the key (Partitioner), which is what
//     librdkafka and kcat do by default, so one streamer's events are in one
//     partition, in order, whichever client produced them.
//   - Producer: kafka-go's Writer defaults (1 s batch timeout, no acks) are
//     replaced by a 5 ms batch timeout and acks from all in-sync replicas.
//   - Live view (LiveConsumer): one Reader per partition with no consumer
//     group (every replica needs every partition), positioned at the offset
//     of now - Lookback; "caught up" once every partition reached the
//     high-water mark it had at start.
//   - Sink: a consumer group read with FetchMessage; offsets are committed
//     with CommitMessages only after the database transaction committed (not
//     ReadMessage, which would commit before the write).
package events
