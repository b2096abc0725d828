// Package api is the HTTP edge of liverecall (echo), and HTTP only: it
// decodes and validates requests, calls the recommendation use case through
// the one interface it holds (Recommender, which recommend.Service
// satisfies) and the service through Admin, encodes the answers, and is the
// one place where coded errors become status codes. It speaks the root
// package's types, so none of recall/, rerank/, live/ or index/ is among its
// dependencies.
package api
