// Package liverecall holds the domain of the liverecall service: the
// identifiers, events, model versions and candidates that every other package
// speaks, the coded error type, and the small interfaces the packages use to
// talk to each other. It imports nothing outside the standard library.
//
// Dependencies live at the edges, one package each: postgres/ (pgx),
// events/ (kafka-go), live/ (roaring), index/ (the ANN code), api/ (echo).
// cmd/liverecall wires them together.
package liverecall
