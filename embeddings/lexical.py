"""A BM25 index over pre-tokenised documents, keyed by record id, that takes writes at scale.

Tokenisation (jieba, the user dictionary) belongs to the caller; this index
only counts. Documents live in two segments, as in Lucene:

- the *base*: a term-major sparse matrix of raw term frequencies (rows are
  terms, columns documents) with each column's id and length, and an
  ``alive`` mask: a removed or replaced document is only masked, never cut out;
- the *delta*: documents written since the base was built, kept per document;
  its small matrix is rebuilt lazily, in time proportional to the delta.

When the delta outgrows a fraction of the base (or too many base columns are
dead) both are merged into a new base with vectorised sparse operations, so a
write costs amortised O(its tokens), never an O(N) rebuild. The merge builds
its new base outside the lock (seconds at 10^6 documents) and, in a serving
index, on a thread of its own: queries and writes go on meanwhile, and the
writes made during it are replayed on the new base when it is swapped in.

Nothing global is precomputed: document frequencies, the live count and the
average length are taken at query time over live documents only (df from the
query terms' postings, the length total kept as a running sum), so scores are
exactly BM25's Lucene variant over the current corpus, equal to ``bm25s``'s
default (a test compares them). ``query`` only snapshots; ``top`` reads every
posting of the query's terms in one pass, or, for a query with many terms and
postings, runs an exact MaxScore top-k that skips the common terms' postings
(same ids, scores and order, bit for bit); ``of`` looks its ids up term by term.
No Python loop runs over documents. Live document frequencies come from each
term's posting count minus its dead columns, counted incrementally.

The index saves to one ``.npz`` file (base arrays, mask and delta) with a
metadata record, like the vector index, so a restart does not re-tokenise.
"""
from __future__ import annotations

import json
import logging
import os
import tempfile
import zipfile
from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from threading import Condition, RLock, Thread

import numpy as np
from scipy import sparse

from .bm25_kernels import BLOCK_COLUMNS, add_postings, best_positive

log = logging.getLogger(__name__)

FORMAT = 2
# Merge the delta into the base when it holds this many documents, or this share of the base.
MIN_MERGE = 4096
MERGE_FRACTION = 0.05
# Compact the base when this share of its columns is dead.
DEAD_FRACTION = 0.2
# Below this many base postings one full pass is faster than pruning. Since the full pass runs compiled
# (bm25_kernels, 2026-12-02) it wins at 10^6 documents too (200 stored needs, ~7M postings at the median:
# top-50 p50 / p95 13.9 / 28.5 ms against 24.0 / 51.3 ms pruned): pruning's rounds are whole-array numpy
# passes, and idf bounds leave ~half of a long need's postings essential. Kept for corpora past 10^6.
PRUNE_MIN_POSTINGS = 50_000_000
# Keyword queries have few terms, nearly all essential: one full pass is as fast (measured at 100k).
PRUNE_MIN_TERMS = 32
# MaxScore reads at least this many postings before it first sets its threshold.
GATHER_MIN = 4096
# An allowed set this small is scored directly, id by id.
SMALL_FILTER = 64
# Non-essential terms' bounds may sum to this share of θ: at 1 (plain MaxScore) fewer postings are read,
# but nearly every candidate must then look the skipped terms up; half is cheaper overall (measured).
NE_FRACTION = 0.5
# Relative slack on the pruning threshold: float rounding must never drop a document that ranks.
SLACK = 1e-5


# -- scoring helpers -----------------------------------------------------------
def _norm(lengths: np.ndarray, k1: float, b: float, avgdl: float) -> np.ndarray:
    """BM25's length normalisation k1·(1 - b + b·len/avgdl), in float32 exactly as every path computes it."""
    return np.float32(k1) * (1 - np.float32(b) + np.float32(b) * (lengths / np.float32(avgdl)))


def _best(positions: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best positive (position, score) pairs: higher score first, then lower position."""
    positive = scores > 0
    positions, scores = positions[positive], scores[positive]
    if len(scores) > k:
        # Every tie with the k-th score is kept, so the lower positions among them win below.
        kth = np.partition(scores, len(scores) - k)[len(scores) - k]
        keep = scores >= kth
        positions, scores = positions[keep], scores[keep]
    order = np.lexsort((positions, -scores))[:k]
    return positions[order], scores[order]


def _kth_largest(values: np.ndarray, k: int) -> float:
    """The k-th largest value, or 0 when there are fewer than ``k``."""
    if len(values) < k:
        return 0.0
    return float(np.partition(values, len(values) - k)[len(values) - k])


def _tf_in_row(indices: np.ndarray, data: np.ndarray, start: int, end: int, cols: np.ndarray) -> np.ndarray:
    """Term frequency of each column of ``cols`` in one CSR row whose columns are sorted (0 where absent).

    ``cols`` must have the dtype of ``indices``: otherwise numpy converts the whole row to search it.
    """
    if start == end or not len(cols):
        return np.zeros(len(cols), np.float32)
    row = indices[start:end]
    at = np.minimum(np.searchsorted(row, cols), end - start - 1)
    return np.where(row[at] == cols, data[start:end][at], np.float32(0))


def _ranges(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Concatenated ``arange(start, end)`` of each range, and which range each element came from."""
    lengths = ends - starts
    which = np.repeat(np.arange(len(starts)), lengths)
    offsets = np.cumsum(lengths) - lengths
    return np.arange(int(lengths.sum()), dtype=np.int64) - offsets[which] + starts[which], which


def _in_rows(indptr: np.ndarray, indices: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Whether each column ``cols[i]`` is in CSR row ``rows[i]`` (sorted rows; one vectorised bisection)."""
    lo, end = indptr[rows].astype(np.int64), indptr[rows + 1].astype(np.int64)
    hi = end.copy()
    last = max(len(indices) - 1, 0)
    while True:
        active = lo < hi
        if not active.any():
            break
        mid = (lo + hi) >> 1
        less = indices[np.minimum(mid, last)] < cols
        lo = np.where(active & less, mid + 1, lo)
        hi = np.where(active & ~less, mid, hi)
    return (lo < end) & (indices[np.minimum(lo, last)] == cols)


def _term_matrix(n_terms: int, parts: list[tuple[np.ndarray, np.ndarray]]) -> sparse.csr_matrix:
    """Terms × documents matrix of term frequencies from per-document (term ids, counts)."""
    per_doc = np.fromiter((len(t) for t, _ in parts), dtype=np.int64, count=len(parts))
    terms = np.concatenate([t for t, _ in parts]) if parts else np.zeros(0, np.int32)
    tfs = np.concatenate([tf for _, tf in parts]) if parts else np.zeros(0, np.float32)
    cols = np.repeat(np.arange(len(parts), dtype=np.int32), per_doc)
    return sparse.csr_matrix((tfs.astype(np.float32), (terms, cols)), shape=(n_terms, len(parts)), dtype=np.float32)


@dataclass(eq=False)
class LexicalScores:
    """BM25 scores of one query over the live documents at query time (a snapshot; lookups by id).

    Nothing is scored up front: :meth:`top` prunes (MaxScore) and :meth:`of` scores only the ids it is
    given, both against arrays the index never changes in place (a write replaces them, or copies the
    ``alive`` mask before it changes), so a write after the query does not change the answer.
    Every path sums a document's per-term weights in float64 in ascending term id and rounds once to
    float32, so the scores are bit-identical to the full pass (:meth:`_full_scores`).
    """

    # The query and the index's arrays as they were when the query was asked.
    k1: float
    b: float
    avgdl: float
    ids: np.ndarray            # every live id: base columns, then delta rows
    n_base: int
    n_delta: int
    matrix: sparse.csr_matrix  # the base segment: term rows × document columns of term frequencies
    base_len: np.ndarray
    alive: np.ndarray          # base columns not removed
    has_dead: bool
    rows: np.ndarray           # the query's term ids that have a base row
    starts: np.ndarray         # each of those rows' postings in ``matrix``
    ends: np.ndarray
    idf: np.ndarray            # per query term (base rows and delta-only terms)
    idf_rows: np.ndarray       # per base row in ``rows``
    picked_delta: sparse.csr_matrix
    delta_row_of: np.ndarray
    delta_len: np.ndarray
    delta_pos: dict[int, int]
    sorted_ids: np.ndarray
    sorted_cols: np.ndarray
    # Worked out on first use.
    _full: np.ndarray | None = field(default=None, init=False, repr=False)
    # Every base column's norm, computed on first use by either pass.
    _norms: np.ndarray | None = field(default=None, init=False, repr=False)
    # Base columns a pruned top may return (None: all).
    _ok: np.ndarray | None = field(default=None, init=False, repr=False)
    _delta: np.ndarray | None = field(default=None, init=False, repr=False)

    # -- positions --------------------------------------------------------
    def _position_of(self, q: np.ndarray) -> np.ndarray:
        """Position of each id (base column, or n_base + delta row), -1 for unknown or removed ids."""
        base_column, sorted_cols, alive = self.sorted_ids, self.sorted_cols, self.alive
        if len(base_column):
            at = np.minimum(np.searchsorted(base_column, q), len(base_column) - 1)
            pos = np.where(base_column[at] == q, sorted_cols[at], -1)
            ok = pos >= 0
            pos[ok] = np.where(alive[pos[ok]], pos[ok], -1)
        else:
            pos = np.full(len(q), -1, np.int64)
        if self.delta_pos:
            for n, i in enumerate(q.tolist()):
                if i in self.delta_pos:
                    pos[n] = self.delta_pos[i]
        return pos

    # -- exact scores -----------------------------------------------------
    def _norm_of(self, cols: np.ndarray) -> np.ndarray:
        return _norm(self.base_len[cols], self.k1, self.b, self.avgdl)

    def _all_norms(self) -> np.ndarray:
        """Every base column's norm, computed once per query."""
        if self._norms is None:
            self._norms = _norm(self.base_len, self.k1, self.b, self.avgdl)
        return self._norms

    def _add_postings(self, terms: np.ndarray, partial: np.ndarray) -> None:
        """Add the weights of the postings of query rows ``terms`` to ``partial`` (one float64 per base column).

        Term by term, in the order given. Columns a pruned top may not return (removed, or outside the
        allowed set) stay 0.
        """
        self._add(terms, partial)
        if self._ok is not None:
            partial *= self._ok

    def _add(self, terms: np.ndarray, acc: np.ndarray) -> None:
        """Add every posting's weight of query rows ``terms`` (in that order) to ``acc`` (float64 per base column)."""
        add_postings(self.matrix.indices, self.matrix.data, self.starts, self.ends, self.idf_rows,
                     self._all_norms(), np.asarray(terms, dtype=np.int64), acc, BLOCK_COLUMNS)

    def _exact_base(self, cols: np.ndarray) -> np.ndarray:
        """Exact scores of live base columns ``cols`` (sorted, unique, dtype of the matrix indices)."""
        if not len(cols) or not len(self.rows):
            return np.zeros(len(cols), np.float32)
        tfs = np.zeros((len(self.rows), len(cols)), np.float32)
        indices, data = self.matrix.indices, self.matrix.data
        for j, (start, end) in enumerate(zip(self.starts.tolist(), self.ends.tolist())):
            if start < end:
                row = indices[start:end]
                at = row.searchsorted(cols)
                tfs[j] = data[start:end].take(at, mode="clip")
                tfs[j] *= row.take(at, mode="clip") == cols
        weights = tfs / (tfs + self._norm_of(cols)) * self.idf_rows[:, None]
        # cumsum adds term after term, as the full pass does (a plain sum pairs them up).
        return np.cumsum(weights.astype(np.float64), axis=0)[-1].astype(np.float32)

    def _delta_scores(self) -> np.ndarray:
        """Scores of every delta document (the delta is small: scored in full, once)."""
        if self._delta is None:
            scores = np.zeros(self.n_delta, np.float32)
            if self.n_delta and len(self.idf):
                dnorm = _norm(self.delta_len, self.k1, self.b, self.avgdl)
                dtf, dcols = self.picked_delta.data, self.picked_delta.indices
                w = dtf / (dtf + dnorm[dcols]) * self.idf[self.delta_row_of]
                scores[:] = np.bincount(dcols, weights=w, minlength=self.n_delta)
            self._delta = scores
        return self._delta

    def _full_scores(self) -> np.ndarray:
        """Scores of every position from all postings of every query term (the reference pass).

        Term by term into a float64 accumulator, in ascending term order as every other path sums
        (:func:`~embeddings.bm25_kernels.add_postings`: one compiled pass, no copy of any row).
        """
        if self._full is None:
            scores = np.zeros(self.n_base + self.n_delta, np.float32)
            if len(self.rows):
                acc = np.zeros(self.n_base, np.float64)
                self._add(np.arange(len(self.rows)), acc)
                scores[:self.n_base] = acc
                if self.has_dead:
                    scores[:self.n_base] *= self.alive  # removed columns score 0, as if their postings were gone
            scores[self.n_base:] = self._delta_scores()
            self._full = scores
        return self._full

    # -- answers ----------------------------------------------------------
    def of(self, ids: Sequence[int]) -> np.ndarray:
        """Scores of ``ids`` in order (0 for unknown or removed ids)."""
        pos = self._position_of(np.asarray(list(ids), dtype=np.int64))
        out = np.zeros(len(pos), dtype=np.float32)
        if self._full is not None:
            known = pos >= 0
            out[known] = self._full[pos[known]]
            return out
        in_base = (pos >= 0) & (pos < self.n_base)
        cols, inverse = np.unique(pos[in_base], return_inverse=True)
        out[in_base] = self._exact_base(cols.astype(self.matrix.indices.dtype))[inverse]
        in_delta = pos >= self.n_base
        out[in_delta] = self._delta_scores()[pos[in_delta] - self.n_base]
        return out

    def top(self, k: int, allowed_ids: Iterable[int] | None = None) -> list[tuple[int, float]]:
        """Top-``k`` (id, score) with a positive score, best first (ties: lower position first)."""
        if k <= 0:
            return []
        base_cols = delta_rows = None
        if allowed_ids is not None:
            pos = self._position_of(np.unique(np.fromiter((int(i) for i in allowed_ids), dtype=np.int64)))
            pos = np.sort(pos[pos >= 0])
            base_cols, delta_rows = pos[pos < self.n_base], pos[pos >= self.n_base] - self.n_base
        if self._full is not None or not self._worth_pruning():
            full = self._full_scores()
            # Every position: one compiled pass picks the few that can rank, instead of sorting them all.
            positions = best_positive(full, k) if allowed_ids is None else np.concatenate(
                [base_cols, delta_rows + self.n_base])
            positions, scores = _best(positions, full[positions], k)
        else:
            delta = self._delta_scores()
            drows = np.arange(self.n_delta) if delta_rows is None else delta_rows
            dscores = delta[drows]
            if base_cols is not None and len(base_cols) <= SMALL_FILTER:
                bcols = base_cols.astype(self.matrix.indices.dtype)
                bscores = self._exact_base(bcols)
            else:
                bcols, bscores = self._pruned_base(k, base_cols, dscores[dscores > 0])
            positions, scores = _best(np.concatenate([bcols.astype(np.int64), drows + self.n_base]),
                                      np.concatenate([bscores, dscores]), k)
        return [(int(self.ids[p]), float(s)) for p, s in zip(positions.tolist(), scores.tolist())]

    def _worth_pruning(self) -> bool:
        """Whether the query's base postings are many enough for MaxScore to beat one full pass."""
        return len(self.rows) >= PRUNE_MIN_TERMS and int((self.ends - self.starts).sum()) >= PRUNE_MIN_POSTINGS

    def _pruned_base(self, k: int, allowed: np.ndarray | None, delta_best: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray]:
        """Base columns that hold the base's share of the top ``k``, with exact scores (MaxScore).

        Each term's idf bounds its weight (tf / (tf + norm) < 1). Terms are read rarest (highest
        bound) first, in rounds of doubling size; θ, the k-th best partial score so far, is a lower
        bound of the final k-th score since partial scores only grow. The lowest-bound terms whose
        bounds sum below ``NE_FRACTION``·θ are non-essential: a document in none of the other terms'
        postings scores below θ and cannot rank, so their postings are never read. The candidates
        found in the essential postings that could still reach θ are completed by looking the
        non-essential terms up, highest bound first, dropping each candidate as soon as its score
        plus the bounds still unread falls below θ; the survivors are scored exactly.
        """
        indices, data, n_base = self.matrix.indices, self.matrix.data, self.n_base
        bound = self.idf_rows.astype(np.float64)
        n_terms = len(bound)
        desc = np.argsort(-bound, kind="stable")
        low_sums = np.cumsum(bound[desc[::-1]])  # sum of the 1, 2, … lowest bounds
        self._ok = self.alive if self.has_dead else None
        if allowed is not None:
            self._ok = np.zeros(n_base, bool)
            self._ok[allowed] = True
        lengths = (self.ends - self.starts)[desc]
        budget = max(GATHER_MIN, int(lengths.sum()) // 16)
        theta = _kth_largest(delta_best, k)
        partial = np.zeros(n_base, np.float64)
        gathered = 0
        while True:
            # Slack keeps float rounding from ever dropping a document that ranks.
            essential = n_terms - int(np.searchsorted(low_sums, NE_FRACTION * theta * (1 - SLACK)))
            if gathered >= essential:
                break
            stop = gathered + max(1, int(np.searchsorted(np.cumsum(lengths[gathered:essential]), budget, "right")))
            self._add_postings(desc[gathered:stop], partial)
            theta = max(theta, _kth_largest(np.concatenate([partial[partial > 0], delta_best]), k))
            gathered, budget = stop, budget * 2
        unread = n_terms - gathered
        floor = theta * (1 - SLACK) - (low_sums[unread - 1] if unread else 0.0)
        cand = np.flatnonzero((partial > 0) & (partial >= floor)).astype(indices.dtype)
        partial = partial[cand]
        norm = self._norm_of(cand)
        for j in desc[gathered:].tolist():
            if not len(cand):
                break
            start, end = int(self.starts[j]), int(self.ends[j])
            tf = _tf_in_row(indices, data, start, end, cand)
            partial = partial + tf / (tf + norm) * self.idf_rows[j]
            unread -= 1
            theta = max(theta, _kth_largest(np.concatenate([partial, delta_best]), k))
            keep = partial + (low_sums[unread - 1] if unread else 0.0) >= theta * (1 - SLACK)
            cand, partial, norm = cand[keep], partial[keep], norm[keep]
        return cand, self._exact_base(cand)


class LexicalIndex:
    """BM25 over token lists; ids are the database ids."""

    def __init__(self, k1: float = 1.5, b: float = 0.75, background_merge: bool = False):
        """``background_merge``: a write that passes the merge threshold starts the merge on a thread of its own
        and returns (a serving index: its caller holds the request's locks); otherwise the write merges."""
        self.k1, self.b = k1, b
        self.background_merge = background_merge
        self._vocab: dict[str, int] = {}
        self._lock = RLock()
        # base segment
        self._base = sparse.csr_matrix((0, 0), dtype=np.float32)
        self._base_ids = np.zeros(0, np.int64)
        self._base_len = np.zeros(0, np.float32)
        self._alive = np.zeros(0, bool)
        self._sorted_ids = np.zeros(0, np.int64)  # base ids sorted, and their columns: id → column by bisection
        self._sorted_cols = np.zeros(0, np.int64)
        self._base_live = 0
        self._base_len_sum = 0.0
        # Copy-on-write: a query snapshot holds the mask, so the next removal copies it first.
        self._alive_shared = False
        # Base columns masked since the base was built, in order, and per base term how many of the
        # first ``_dead_seen`` of them are in its postings: live df without reading whole postings.
        self._dead_log = np.zeros(0, np.int64)
        self._dead_n = 0
        self._dead_df = np.zeros(0, np.int64)
        self._dead_seen = np.zeros(0, np.int64)
        # delta segment
        self._delta: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._delta_len_sum = 0.0
        self._delta_mat: sparse.csr_matrix | None = None
        self._delta_ids = np.zeros(0, np.int64)
        self._delta_len = np.zeros(0, np.float32)
        self._delta_pos: dict[int, int] = {}
        self._all_ids = self._base_ids
        self._deferred = 0
        # While a merge builds its new base outside the lock, every write is also logged here to replay on it.
        self._journal: list[tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]] | None]] | None = None
        self._merging = False
        self._merge_done = Condition(self._lock)
        self._merger: Thread | None = None
        self.merges = 0  # how many times the delta was merged (for tests and benchmarks)

    def __len__(self) -> int:
        return self._base_live + len(self._delta)

    @property
    def delta_size(self) -> int:
        """Documents waiting in the delta segment."""
        return len(self._delta)

    # -- writes ------------------------------------------------------------
    def _base_column(self, ids: np.ndarray) -> np.ndarray:
        """Base column of each id, or -1 when it is not a live base document."""
        if not len(self._sorted_ids):
            return np.full(len(ids), -1, np.int64)
        at = np.searchsorted(self._sorted_ids, ids)
        at = np.minimum(at, len(self._sorted_ids) - 1)
        cols = np.where(self._sorted_ids[at] == ids, self._sorted_cols[at], -1)
        ok = cols >= 0
        cols[ok] = np.where(self._alive[cols[ok]], cols[ok], -1)
        return cols

    def _drop(self, ids: np.ndarray) -> None:
        cols = self._base_column(ids)
        cols = np.unique(cols[cols >= 0])
        if len(cols):
            if self._alive_shared:
                self._alive, self._alive_shared = self._alive.copy(), False
            self._alive[cols] = False
            self._log_dead(cols)
            self._base_live -= len(cols)
            self._base_len_sum -= float(self._base_len[cols].sum(dtype=np.float64))
        for i in ids.tolist():
            old = self._delta.pop(i, None)
            if old is not None:
                self._delta_len_sum -= float(old[1].sum(dtype=np.float64))
                self._delta_mat = None

    def _log_dead(self, cols: np.ndarray) -> None:
        """Append newly masked base columns to the dead log (amortised O(1) each)."""
        need = self._dead_n + len(cols)
        if need > len(self._dead_log):
            grown = np.zeros(max(need, 2 * len(self._dead_log), 64), np.int64)
            grown[:self._dead_n] = self._dead_log[:self._dead_n]
            self._dead_log = grown
        self._dead_log[self._dead_n:need] = cols
        self._dead_n = need

    def _live_df(self, rows: np.ndarray) -> np.ndarray:
        """Live document frequency of each base row: its postings minus its dead columns (exact).

        Each row's dead count is brought up to date with the columns masked since the row was last
        queried: by searching those few columns in the row, or by one pass over the row when they
        are many. A masked column never comes back to life before a merge resets the counts.
        """
        indptr = self._base.indptr
        lengths = (indptr[rows + 1] - indptr[rows]).astype(np.int64)
        if not self._dead_n:
            return lengths
        stale = rows[self._dead_seen[rows] < self._dead_n]
        if len(stale):
            new = self._dead_n - self._dead_seen[stale]
            few = new * 16 < indptr[stale + 1] - indptr[stale]
            for r in stale[~few].tolist():
                row = self._base.indices[indptr[r]:indptr[r + 1]]
                self._dead_df[r] = len(row) - np.count_nonzero(self._alive[row])
            searched = stale[few]
            if len(searched):
                at, which = _ranges(self._dead_seen[searched], np.full(len(searched), self._dead_n))
                hit = _in_rows(indptr, self._base.indices, searched[which], self._dead_log[at])
                self._dead_df[searched] += np.bincount(which[hit], minlength=len(searched))
            self._dead_seen[stale] = self._dead_n
        return lengths - self._dead_df[rows]

    def upsert(self, ids: Sequence[int], token_lists: Iterable[Sequence[str]]) -> None:
        """Add or replace documents."""
        with self._lock:
            ids = [int(i) for i in ids]
            vocab = self._vocab
            docs = []
            for _, toks in zip(ids, token_lists):
                term_ids = np.fromiter((vocab.setdefault(t, len(vocab)) for t in toks), dtype=np.int32)
                uniq, counts = np.unique(term_ids, return_counts=True)
                docs.append((uniq.astype(np.int32), counts.astype(np.float32)))
            self._write(np.asarray(ids, dtype=np.int64), docs)
            self._maybe_merge()

    def remove(self, ids: Iterable[int]) -> None:
        """Drop documents (unknown ids are ignored)."""
        with self._lock:
            self._write(np.fromiter((int(i) for i in ids), dtype=np.int64), None)
            self._maybe_merge()

    def _write(self, ids: np.ndarray, docs: list[tuple[np.ndarray, np.ndarray]] | None) -> None:
        """Drop ``ids``, then, unless ``docs`` is None, put each one's (term ids, counts) in the delta."""
        if self._journal is not None:
            self._journal.append((ids, docs))
        self._drop(ids)
        if docs is None:
            return
        for i, doc in zip(ids.tolist(), docs):
            if i in self._delta:  # the same id twice in one call: the last one wins
                self._delta_len_sum -= float(self._delta[i][1].sum(dtype=np.float64))
            self._delta[i] = doc
            self._delta_len_sum += float(doc[1].sum())
        self._delta_mat = None

    @contextmanager
    def bulk(self):
        """Defer merging while many documents are written (a rebuild), then merge once, before returning: a bulk
        build is not serving yet, and a million-document delta would make every first query rebuild it."""
        with self._lock:
            self._deferred += 1
        try:
            yield self
        finally:
            with self._lock:
                self._deferred -= 1
                if not self._deferred:
                    self._maybe_merge(background=False)

    def _maybe_merge(self, background: bool | None = None) -> None:
        """Merge when the delta or the dead columns pass their threshold (called under the lock); ``background``
        overrides :attr:`background_merge`."""
        if self._deferred or self._merging:  # in bulk, or a merge already under way
            return
        dead = len(self._alive) - self._base_live
        if len(self._delta) > max(MIN_MERGE, MERGE_FRACTION * self._base_live) or dead > max(
                MIN_MERGE, DEAD_FRACTION * len(self._alive)):
            self._merging = True
            if self.background_merge if background is None else background:
                self._merger = Thread(target=self._fold_in_background, name="lexical-merge", daemon=True)
                self._merger.start()
            else:
                self._fold()

    def wait_for_merge(self, timeout: float | None = None) -> bool:
        """Wait for a background merge to end; True when none is running."""
        merger = self._merger
        if merger is not None:
            merger.join(timeout)
        with self._lock:
            return not self._merging

    def merge(self) -> None:
        """Fold the delta into the base and drop dead columns (vectorised, O(postings)), now.

        The new base is built outside the lock from a snapshot, so queries and writes go on meanwhile (at 10^6
        documents the build takes seconds); the writes made during it are replayed on the new base when it is
        swapped in, under the lock, so the index afterwards is what a merge at the swap would have made.
        """
        with self._lock:
            while self._merging:
                self._merge_done.wait()
            self._merging = True
        self._fold()

    def _fold_in_background(self) -> None:
        try:
            self._fold()
        except Exception:  # noqa: BLE001 - a thread's error reaches no caller; the segments stand as they were
            log.exception("lexical merge failed; the base and delta stay as they were, the next write tries again")

    def _fold(self) -> None:
        """The merge itself; the caller has set ``_merging``, and this clears it."""
        try:
            with self._lock:
                self._journal = []
                n_terms = len(self._vocab)
                base, base_ids, base_len, alive = self._base, self._base_ids, self._base_len, self._alive.copy()
                delta_ids = np.fromiter(self._delta.keys(), dtype=np.int64, count=len(self._delta))
                parts = list(self._delta.values())
            keep = np.flatnonzero(alive)
            base = base[:, keep] if len(keep) < base.shape[1] else base.copy()
            base.resize((n_terms, base.shape[1]))
            lengths = np.fromiter((tf.sum() for _, tf in parts), dtype=np.float32, count=len(parts))
            merged = sparse.hstack([base, _term_matrix(n_terms, parts)], format="csr", dtype=np.float32)
            merged.sort_indices()
            with self._lock:
                self._set_base(merged, np.concatenate([base_ids[keep], delta_ids]),
                               np.concatenate([base_len[keep], lengths]))
                self._delta, self._delta_len_sum, self._delta_mat = {}, 0.0, None
                journal, self._journal = self._journal, None
                for ids, docs in journal:
                    self._write(ids, docs)
                self.merges += 1
        finally:
            with self._lock:
                self._journal = None  # after a failure, the live segments stand: they took every write meanwhile
                self._merging = False
                self._merge_done.notify_all()
        with self._lock:
            self._maybe_merge()

    def _set_base(self, matrix: sparse.csr_matrix, ids: np.ndarray, lengths: np.ndarray,
                  alive: np.ndarray | None = None) -> None:
        matrix.sort_indices()
        self._base, self._base_ids, self._base_len = matrix, ids.astype(np.int64), lengths.astype(np.float32)
        self._alive = np.ones(len(ids), bool) if alive is None else alive.astype(bool)
        order = np.argsort(self._base_ids, kind="stable")
        self._sorted_ids, self._sorted_cols = self._base_ids[order], order.astype(np.int64)
        self._base_live = int(self._alive.sum())
        self._base_len_sum = float(self._base_len[self._alive].sum(dtype=np.float64))
        self._alive_shared = False
        self._dead_log = np.flatnonzero(~self._alive).astype(np.int64)
        self._dead_n = len(self._dead_log)
        self._dead_df = np.zeros(matrix.shape[0], np.int64)
        self._dead_seen = np.zeros(matrix.shape[0], np.int64)

    # -- queries -----------------------------------------------------------
    def _delta_segment(self) -> sparse.csr_matrix:
        if self._delta_mat is None:
            parts = list(self._delta.values())
            self._delta_ids = np.fromiter(self._delta.keys(), dtype=np.int64, count=len(self._delta))
            self._delta_len = np.fromiter((tf.sum() for _, tf in parts), dtype=np.float32, count=len(parts))
            self._delta_mat = _term_matrix(len(self._vocab), parts)
            n_base = len(self._base_ids)
            self._delta_pos = {i: n_base + n for n, i in enumerate(self._delta_ids.tolist())}
            self._all_ids = np.concatenate([self._base_ids, self._delta_ids]) if parts else self._base_ids
        return self._delta_mat

    def _live_df_of(self, t: np.ndarray, delta: sparse.csr_matrix) -> np.ndarray:
        """Live document frequency of each term id in ``t`` (ascending): base postings alive plus delta rows."""
        rows = t[t < self._base.shape[0]]
        df = np.diff(delta[t].indptr).astype(np.int64)
        df[np.searchsorted(t, rows)] += self._live_df(rows)
        return df

    def query(self, query_tokens: Sequence[str] | None, max_terms: int | None = None) -> LexicalScores:
        """BM25 of one query over the live documents; each distinct query term counts once (as bm25s).

        With ``max_terms``, a query of more distinct terms keeps only its ``max_terms`` most selective
        ones (fewest live documents, ties by the term itself, so every worker keeps the same ones);
        their idf is unchanged, so the scores are BM25 of that shorter query, exactly. Costs O(query
        terms + the delta's postings of them) here; the scoring happens in :meth:`LexicalScores.top`
        and :meth:`LexicalScores.of`, on a snapshot taken now.
        """
        with self._lock:
            delta = self._delta_segment()
            n_base, n_delta = len(self._base_ids), len(self._delta_ids)
            terms = {self._vocab[t]: t for t in (query_tokens or ()) if t in self._vocab}
            n_live = len(self)
            t = np.asarray(sorted(terms) if n_live else [], dtype=np.int64)
            df = self._live_df_of(t, delta)
            if max_terms is not None and len(t) > max_terms:
                # Dropping the commonest terms drops the smallest idfs: the least any document can lose.
                ranked = sorted((int(d), terms[int(i)], n) for n, (i, d) in enumerate(zip(t, df)) if d > 0)
                keep = np.sort(np.asarray([n for _, _, n in ranked[:max_terms]], dtype=np.int64))
                t, df = t[keep], df[keep]
            rows = t[t < self._base.shape[0]]
            avgdl = (self._base_len_sum + self._delta_len_sum) / n_live if n_live else 1.0
            picked_delta = delta[t]
            delta_row_of = np.repeat(np.arange(len(t)), np.diff(picked_delta.indptr))
            idf = np.log(1 + (n_live - df + 0.5) / (df + 0.5)).astype(np.float32)
            snapshot = LexicalScores(
                k1=self.k1, b=self.b, avgdl=avgdl or 1.0, ids=self._all_ids, n_base=n_base, n_delta=n_delta,
                matrix=self._base, base_len=self._base_len, alive=self._alive,
                has_dead=self._base_live < len(self._alive), rows=rows,
                starts=self._base.indptr[rows].astype(np.int64), ends=self._base.indptr[rows + 1].astype(np.int64),
                idf=idf, idf_rows=idf[np.searchsorted(t, rows)], picked_delta=picked_delta,
                delta_row_of=delta_row_of, delta_len=self._delta_len, delta_pos=self._delta_pos,
                sorted_ids=self._sorted_ids, sorted_cols=self._sorted_cols)
            self._alive_shared = True
        return snapshot

    def scores(self, query_tokens: Sequence[str], ids: Sequence[int]) -> np.ndarray:
        """BM25 scores of the given documents (0 for unknown ids)."""
        return self.query(query_tokens).of(ids)

    def search(self, query_tokens: Sequence[str], k: int, allowed_ids: Iterable[int] | None = None
               ) -> list[tuple[int, float]]:
        """Top-``k`` (id, score) with a positive score, best first; ``allowed_ids`` restricts the candidates."""
        return self.query(query_tokens).top(k, allowed_ids)

    # -- persistence ------------------------------------------------------
    def save(self, path: Path, meta: dict) -> None:
        """Write the index and ``meta`` to ``path`` atomically (a reader sees the old file or the new one)."""
        with self._lock:
            base = self._base
            arrays = {"indptr": base.indptr, "indices": base.indices, "data": base.data,
                      "shape": np.asarray(base.shape, np.int64), "ids": self._base_ids, "lengths": self._base_len,
                      "alive": self._alive}
            parts = list(self._delta.values())
            arrays["delta_ids"] = np.fromiter(self._delta.keys(), dtype=np.int64, count=len(self._delta))
            arrays["delta_counts"] = np.fromiter((len(t) for t, _ in parts), dtype=np.int64, count=len(parts))
            arrays["delta_terms"] = np.concatenate([t for t, _ in parts]) if parts else np.zeros(0, np.int32)
            arrays["delta_tfs"] = np.concatenate([tf for _, tf in parts]) if parts else np.zeros(0, np.float32)
            vocab = sorted(self._vocab, key=self._vocab.get)
            count = len(self)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                np.savez(fh, **arrays, vocab=np.array(json.dumps(vocab, ensure_ascii=False)),
                         meta=np.array(json.dumps({**meta, "count": count, "k1": self.k1, "b": self.b,
                                                   "format": FORMAT})))
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: Path, background_merge: bool = False) -> tuple["LexicalIndex", dict] | None:
        """The saved index and its metadata, or None if the file is missing, unreadable or of another format."""
        try:
            with np.load(Path(path), allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                if meta.get("format") != FORMAT:
                    return None
                vocab = json.loads(str(data["vocab"]))
                a = {k: data[k] for k in ("indptr", "indices", "data", "shape", "ids", "lengths", "alive",
                                          "delta_ids", "delta_counts", "delta_terms", "delta_tfs")}
            shape = tuple(int(x) for x in a["shape"])
            base = sparse.csr_matrix((a["data"], a["indices"], a["indptr"]), shape=shape)
        except (OSError, ValueError, KeyError, EOFError, TypeError, zipfile.BadZipFile):
            return None
        n_cols, counts = len(a["ids"]), a["delta_counts"]
        if (shape[1] != n_cols or len(a["lengths"]) != n_cols or len(a["alive"]) != n_cols or shape[0] > len(vocab)
                or int(counts.sum()) != len(a["delta_terms"]) or len(a["delta_terms"]) != len(a["delta_tfs"])
                or int(a["alive"].sum()) + len(a["delta_ids"]) != meta.get("count")):
            return None
        index = cls(meta.get("k1", 1.5), meta.get("b", 0.75), background_merge)
        index._vocab = {t: n for n, t in enumerate(vocab)}
        index._set_base(base, a["ids"], a["lengths"], a["alive"])
        bounds = np.concatenate([[0], np.cumsum(counts)])
        terms, tfs = a["delta_terms"], a["delta_tfs"]
        index._delta = {int(i): (terms[bounds[n]:bounds[n + 1]], tfs[bounds[n]:bounds[n + 1]])
                        for n, i in enumerate(a["delta_ids"])}
        index._delta_len_sum = float(sum(tf.sum(dtype=np.float64) for _, tf in index._delta.values()))
        return index, meta
