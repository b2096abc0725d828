// Package rerank turns recall candidates into the final order: real-time
// features per candidate, a logistic scorer with default or trained weights,
// and a diversity step.
package rerank
