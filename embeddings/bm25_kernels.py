"""The loops of BM25 that numpy cannot do as whole-array operations, compiled with numba.

A long query (a stored need: ~200-270 distinct terms, ~0.5M postings at 10^5 documents, ~5M at 10^6)
spends most of a match page adding each posting's weight into its document's score. In numpy that is a
fancy-index add per term, several passes over temporaries; here it is one pass (block of columns by
block), ~4× faster at 10^5 (benchmarks.md).
The arithmetic is the numpy path's, operation for operation: the weight ``tf / (tf + norm) × idf`` in
float32, added to a float64 accumulator term after term, so every score is bit-identical to what the
other paths of :mod:`embeddings.lexical` compute. ``nogil``: a worker's request and its page warmer
score at the same time on two cores. Compiled on first call and cached on disk (numba's own cache).
"""
from __future__ import annotations

import numpy as np
from numba import njit


# Columns scored per pass. A posting's weight is added to its column's float64 score and needs that column's
# norm: 12 bytes per column, which at 10^6 columns (12 MB) no core's L2 cache holds, so a term's postings,
# spread over every column, miss it one by one. Adding every query term's postings within one block of
# columns before the next keeps that block's 192 kB in L2: at 10^6 documents the pass took 0.78x the time
# (mean; p95 0.73x) of the one-term-at-a-time pass; at 10^5 (1.2 MB) the two are alike (benchmarks.md).
BLOCK_COLUMNS = 16384


@njit(cache=True, nogil=True)
def add_postings(indices, data, starts, ends, idf_rows, norm, terms, acc, block):  # pragma: no cover - compiled
    """Add, for each query row in ``terms`` (in that order), the BM25 weight of each of its postings to ``acc``.

    ``indices``/``data``: the base matrix's CSR columns and term frequencies; ``starts``/``ends``: each
    query row's postings (columns ascending, as CSR keeps them); ``idf_rows``: each query row's idf;
    ``norm``: every column's length norm (float32); ``acc``: one float64 per column, added to in place;
    ``block``: columns per pass (:data:`BLOCK_COLUMNS`). Every column still receives its terms' weights in
    the order of ``terms``, so the sums are those of adding one whole term after another, bit for bit.
    """
    n_terms = len(terms)
    at = np.empty(n_terms, np.int64)  # each term's next posting
    for n in range(n_terms):
        at[n] = starts[terms[n]]
    low = 0
    while low < len(acc):
        high = low + block
        for n in range(n_terms):
            j = terms[n]
            w = idf_rows[j]
            p, end = at[n], ends[j]
            while p < end:
                c = indices[p]
                if c >= high:
                    break
                tf = data[p]
                acc[c] += np.float64(tf / (tf + norm[c]) * w)
                p += 1
            at[n] = p
        low = high


@njit(cache=True, nogil=True)
def best_positive(scores, k):  # pragma: no cover - compiled
    """Positions (ascending) of the ``k`` best positive ``scores`` and of every score tied with the k-th.

    One pass with a min-heap of the k best scores seen, then one pass collecting every position at or
    above the k-th: the caller orders these few, instead of partitioning the whole array.
    """
    heap = np.empty(max(k, 1), scores.dtype)
    m = 0
    for i in range(len(scores)):
        s = scores[i]
        if s <= 0 or (m == k and s <= heap[0]):
            continue
        if m < k:  # sift up
            j = m
            m += 1
            while j > 0 and heap[(j - 1) // 2] > s:
                heap[j] = heap[(j - 1) // 2]
                j = (j - 1) // 2
            heap[j] = s
        else:  # replace the smallest, sift down
            j = 0
            while True:
                c = 2 * j + 1
                if c >= k:
                    break
                if c + 1 < k and heap[c + 1] < heap[c]:
                    c += 1
                if heap[c] >= s:
                    break
                heap[j] = heap[c]
                j = c
            heap[j] = s
    if m == 0:
        return np.empty(0, np.int64)
    theta = heap[0]
    count = 0
    for i in range(len(scores)):
        if scores[i] > 0 and scores[i] >= theta:
            count += 1
    out = np.empty(count, np.int64)
    count = 0
    for i in range(len(scores)):
        if scores[i] > 0 and scores[i] >= theta:
            out[count] = i
            count += 1
    return out


def warm_up() -> None:
    """Compile (or load from numba's cache) the kernels for the dtypes the index uses, before serving."""
    cols = np.zeros(1, np.int32)
    one = np.ones(1, np.float32)
    bounds = np.zeros(1, np.int64), np.ones(1, np.int64)
    add_postings(cols, one, *bounds, one, one, np.zeros(1, np.int64), np.zeros(1, np.float64), BLOCK_COLUMNS)
    best_positive(one, 1)
