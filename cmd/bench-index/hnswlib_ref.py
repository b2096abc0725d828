#!/usr/bin/env python3
"""The reference C++ HNSW (hnswlib, Debian's python3-hnswlib) on the vectors
bench-index writes, for its side-by-side rows.

Usage: hnswlib_ref.py FILE [EF ...]

FILE (little-endian): n, nq, dim, k as int32 | base [n*dim] float32 |
queries [nq*dim] float32 | exact top-k ordinals [nq*k] int32.

Builds hnswlib on the base vectors with space 'ip' (inner product, like
ours), M 16, efConstruction 64, on every core, then prints
"ready BUILD_SECONDS RSS_BYTES": RSS_BYTES is the growth of the process's
resident set from before init_index to after add_items (the index: its copy
of the vectors, links, labels; the input arrays were read before). With EFs given it measures each and exits; otherwise
it reads one ef per line from stdin and answers each. An answer is one line
"EF RECALL_AT_K US_PER_QUERY CPU_US_PER_QUERY": all queries searched one at
a time on one thread (knn_query with num_threads=1 runs its loop in C++ on
the calling thread, so the Python call is paid once per round, not per
query); wall time, and the thread's CPU time, which a loaded machine
disturbs less.
"""
import os
import sys
import time

import hnswlib
import numpy as np


def rss():
    """The process's resident set in bytes (/proc/self/statm)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def main():
    path = sys.argv[1]
    with open(path, "rb") as f:
        n, nq, dim, k = (int(x) for x in np.frombuffer(f.read(16), dtype="<i4"))
        base = np.frombuffer(f.read(4 * n * dim), dtype="<f4").reshape(n, dim)
        queries = np.frombuffer(f.read(4 * nq * dim), dtype="<f4").reshape(nq, dim)
        truth = np.frombuffer(f.read(4 * nq * k), dtype="<i4").reshape(nq, k)
    rss0 = rss()
    p = hnswlib.Index(space="ip", dim=dim)
    p.init_index(max_elements=n, ef_construction=64, M=16, random_seed=1)
    p.set_num_threads(os.cpu_count() or 1)
    t0 = time.perf_counter()
    p.add_items(base, np.arange(n))
    built = time.perf_counter() - t0
    print("ready %.3f %d" % (built, rss() - rss0), flush=True)
    p.set_num_threads(1)
    truth_sets = [set(row.tolist()) for row in truth]

    def measure(ef):
        p.set_ef(ef)
        c0 = time.thread_time()
        t0 = time.perf_counter()
        labels, _ = p.knn_query(queries, k=k, num_threads=1)
        us = (time.perf_counter() - t0) * 1e6 / nq
        cpu = (time.thread_time() - c0) * 1e6 / nq
        hit = sum(len(truth_sets[i].intersection(labels[i].tolist())) for i in range(nq))
        print("%d %.4f %.2f %.2f" % (ef, hit / (nq * k), us, cpu), flush=True)

    if len(sys.argv) > 2:
        for ef in sys.argv[2:]:
            measure(int(ef))
        return
    for line in sys.stdin:
        if line.strip():
            measure(int(line))


if __name__ == "__main__":
    main()
