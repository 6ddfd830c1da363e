"""The compiled BM25 loops: the numpy arithmetic and selection they replace, exactly, compiled before a worker serves."""
import subprocess
import sys

import numpy as np
from scipy import sparse

from embeddings.bm25_kernels import BLOCK_COLUMNS, add_postings, best_positive
from embeddings.lexical import _best

from .conftest import ROOT


def _numpy_reference(matrix, starts, ends, idf_rows, norm, terms, acc):
    """What lexical.py computed before the kernel: one fancy-index add per term, in the order given."""
    for j in terms:
        cols, tf = matrix.indices[starts[j]:ends[j]], matrix.data[starts[j]:ends[j]]
        acc[cols] += tf / (tf + norm[cols]) * idf_rows[j]


def test_postings_add_up_exactly_as_numpy_adds_them():
    rng = np.random.default_rng(3)
    n_terms, n_docs = 300, 5000
    # Term frequencies 1-6 with a skewed document frequency per term, as in real text.
    dense = (rng.random((n_terms, n_docs)) < rng.random((n_terms, 1)) ** 3) * rng.integers(1, 7, (n_terms, n_docs))
    matrix = sparse.csr_matrix(dense.astype(np.float32))
    rows = np.sort(rng.choice(n_terms, 120, replace=False))
    starts, ends = matrix.indptr[rows].astype(np.int64), matrix.indptr[rows + 1].astype(np.int64)
    idf_rows = rng.uniform(0.01, 9.0, len(rows)).astype(np.float32)
    norm = (1.5 * (0.25 + 0.75 * rng.uniform(0.2, 3.0, n_docs))).astype(np.float32)
    # Blocks of columns smaller than, equal to and larger than the corpus; terms in order and shuffled (MaxScore).
    for block in (7, 1000, n_docs, BLOCK_COLUMNS):
        for terms in (np.arange(len(rows)), rng.permutation(len(rows))[:70]):
            got = rng.random(n_docs)  # a partial sum already under way
            want = got.copy()
            add_postings(matrix.indices, matrix.data, starts, ends, idf_rows, norm, terms.astype(np.int64), got, block)
            _numpy_reference(matrix, starts, ends, idf_rows, norm, terms.tolist(), want)
            assert np.array_equal(got, want), block
            assert np.array_equal(got.astype(np.float32), want.astype(np.float32))


def test_the_best_positions_are_those_a_full_sort_keeps():
    rng = np.random.default_rng(11)
    # Few distinct values (many ties with the k-th), zeros and a negative, as BM25 scores of a corpus are.
    scores = np.round(rng.exponential(1.0, 20_000), 1).astype(np.float32) * (rng.random(20_000) < 0.7)
    scores[5] = -1.0
    everything = np.arange(len(scores))
    for k in (1, 10, 50, 500, 20_000):
        picked = best_positive(scores, k)
        assert np.all(np.diff(picked) > 0) and np.all(scores[picked] > 0)
        assert [a.tolist() for a in _best(picked, scores[picked], k)] == \
            [a.tolist() for a in _best(everything, scores, k)]
    assert best_positive(np.zeros(10, np.float32), 5).size == 0


def test_warm_up_compiles_the_kernel_before_the_first_query():
    # A fresh interpreter: here another test has called the kernel already.
    code = ("from embeddings import bm25_kernels as k; assert not k.add_postings.signatures; "
            "k.warm_up(); assert k.add_postings.signatures and k.best_positive.signatures; print('ok')")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
