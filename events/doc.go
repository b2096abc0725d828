// Package events is the Kafka edge of liverecall (kafka-go): topic names, the
// versioned event envelope and its strict decoding, the all-partition
// live-view consumer, the dead-letter and impression producers, and the sink
// that writes training data to Postgres.
package events
