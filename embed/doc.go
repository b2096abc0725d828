// Package embed trains and evaluates embedding models (implicit ALS and BPR
// matrix factorization, NeuMF) and imports embeddings produced elsewhere. It
// uses only the standard library, except parquet-go to read imported Parquet
// files.
package embed
