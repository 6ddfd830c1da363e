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
write costs amortised O(its tokens), never an O(N) rebuild.

Nothing global is precomputed: document frequencies, the live count and the
average length are taken at query time over live documents only (df from the
query terms' postings, the length total kept as a running sum), so scores are
exactly BM25's Lucene variant over the current corpus, equal to ``bm25s``'s
default (a test compares them). A query costs work proportional to its terms'
postings plus one pass of vector arithmetic over the columns; no Python loop
runs over documents.

The index saves to one ``.npz`` file (base arrays, mask and delta) with a
metadata record, like the vector index, so a restart does not re-tokenise.
"""
from __future__ import annotations

import json
import os
import tempfile
import zipfile
from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from pathlib import Path
from threading import RLock

import numpy as np
from scipy import sparse

FORMAT = 2
# Merge the delta into the base when it holds this many documents, or this share of the base.
MIN_MERGE = 4096
MERGE_FRACTION = 0.05
# Compact the base when this share of its columns is dead.
DEAD_FRACTION = 0.2


def _term_matrix(n_terms: int, parts: list[tuple[np.ndarray, np.ndarray]]) -> sparse.csr_matrix:
    """Terms × documents matrix of term frequencies from per-document (term ids, counts)."""
    per_doc = np.fromiter((len(t) for t, _ in parts), dtype=np.int64, count=len(parts))
    terms = np.concatenate([t for t, _ in parts]) if parts else np.zeros(0, np.int32)
    tfs = np.concatenate([tf for _, tf in parts]) if parts else np.zeros(0, np.float32)
    cols = np.repeat(np.arange(len(parts), dtype=np.int32), per_doc)
    return sparse.csr_matrix((tfs.astype(np.float32), (terms, cols)), shape=(n_terms, len(parts)), dtype=np.float32)


class LexicalScores:
    """BM25 scores of one query over every live document (a snapshot; cheap lookups by id)."""

    def __init__(self, ids: np.ndarray, scores: np.ndarray, position_of):
        self._ids, self._scores, self._position_of = ids, scores, position_of

    def of(self, ids: Sequence[int]) -> np.ndarray:
        """Scores of ``ids`` in order (0 for unknown or removed ids)."""
        pos = self._position_of(np.asarray(list(ids), dtype=np.int64))
        out = np.zeros(len(pos), dtype=np.float32)
        known = pos >= 0
        out[known] = self._scores[pos[known]]
        return out

    def top(self, k: int, allowed_ids: Iterable[int] | None = None) -> list[tuple[int, float]]:
        """Top-``k`` (id, score) with a positive score, best first (ties: lower position first)."""
        if allowed_ids is not None:
            pos = self._position_of(np.unique(np.fromiter((int(i) for i in allowed_ids), dtype=np.int64)))
            pos = np.sort(pos[pos >= 0])
            scores = self._scores[pos]
        else:
            pos, scores = None, self._scores
        positive = np.flatnonzero(scores > 0)
        k = min(k, len(positive))
        if k <= 0:
            return []
        cand = positive[np.argpartition(-scores[positive], k - 1)[:k]] if k < len(positive) else positive
        cand = cand[np.lexsort((cand, -scores[cand]))]
        rows = cand if pos is None else pos[cand]
        return [(int(self._ids[r]), float(self._scores[r])) for r in rows]


class LexicalIndex:
    """BM25 over token lists; ids are the database ids."""

    def __init__(self, k1: float = 1.5, b: float = 0.75):
        self.k1, self.b = k1, b
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
        # delta segment
        self._delta: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._delta_len_sum = 0.0
        self._delta_mat: sparse.csr_matrix | None = None
        self._delta_ids = np.zeros(0, np.int64)
        self._delta_len = np.zeros(0, np.float32)
        self._delta_pos: dict[int, int] = {}
        self._all_ids = self._base_ids
        self._deferred = 0
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
            self._alive[cols] = False
            self._base_live -= len(cols)
            self._base_len_sum -= float(self._base_len[cols].sum(dtype=np.float64))
        for i in ids.tolist():
            old = self._delta.pop(i, None)
            if old is not None:
                self._delta_len_sum -= float(old[1].sum(dtype=np.float64))
                self._delta_mat = None

    def upsert(self, ids: Sequence[int], token_lists: Iterable[Sequence[str]]) -> None:
        """Add or replace documents."""
        with self._lock:
            ids = [int(i) for i in ids]
            self._drop(np.asarray(ids, dtype=np.int64))
            vocab = self._vocab
            for i, toks in zip(ids, token_lists):
                term_ids = np.fromiter((vocab.setdefault(t, len(vocab)) for t in toks), dtype=np.int32)
                uniq, counts = np.unique(term_ids, return_counts=True)
                if i in self._delta:  # the same id twice in one call: the last one wins
                    self._delta_len_sum -= float(self._delta[i][1].sum(dtype=np.float64))
                self._delta[i] = (uniq.astype(np.int32), counts.astype(np.float32))
                self._delta_len_sum += float(counts.sum())
            self._delta_mat = None
            self._maybe_merge()

    def remove(self, ids: Iterable[int]) -> None:
        """Drop documents (unknown ids are ignored)."""
        with self._lock:
            self._drop(np.fromiter((int(i) for i in ids), dtype=np.int64))
            self._maybe_merge()

    @contextmanager
    def bulk(self):
        """Defer merging while many documents are written (a rebuild), then merge once."""
        with self._lock:
            self._deferred += 1
        try:
            yield self
        finally:
            with self._lock:
                self._deferred -= 1
                if not self._deferred:
                    self._maybe_merge()

    def _maybe_merge(self) -> None:
        if self._deferred:
            return
        dead = len(self._alive) - self._base_live
        if len(self._delta) > max(MIN_MERGE, MERGE_FRACTION * self._base_live) or dead > max(
                MIN_MERGE, DEAD_FRACTION * len(self._alive)):
            self.merge()

    def merge(self) -> None:
        """Fold the delta into the base and drop dead columns (vectorised, O(postings))."""
        with self._lock:
            n_terms = len(self._vocab)
            keep = np.flatnonzero(self._alive)
            base = self._base[:, keep] if len(keep) < self._base.shape[1] else self._base.copy()
            base.resize((n_terms, base.shape[1]))
            delta_ids = np.fromiter(self._delta.keys(), dtype=np.int64, count=len(self._delta))
            parts = list(self._delta.values())
            delta = _term_matrix(n_terms, parts)
            lengths = np.fromiter((tf.sum() for _, tf in parts), dtype=np.float32, count=len(parts))
            self._set_base(sparse.hstack([base, delta], format="csr", dtype=np.float32),
                           np.concatenate([self._base_ids[keep], delta_ids]),
                           np.concatenate([self._base_len[keep], lengths]))
            self._delta, self._delta_len_sum, self._delta_mat = {}, 0.0, None
            self.merges += 1

    def _set_base(self, matrix: sparse.csr_matrix, ids: np.ndarray, lengths: np.ndarray,
                  alive: np.ndarray | None = None) -> None:
        matrix.sort_indices()
        self._base, self._base_ids, self._base_len = matrix, ids.astype(np.int64), lengths.astype(np.float32)
        self._alive = np.ones(len(ids), bool) if alive is None else alive.astype(bool)
        order = np.argsort(self._base_ids, kind="stable")
        self._sorted_ids, self._sorted_cols = self._base_ids[order], order.astype(np.int64)
        self._base_live = int(self._alive.sum())
        self._base_len_sum = float(self._base_len[self._alive].sum(dtype=np.float64))

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

    def query(self, query_tokens: Sequence[str] | None) -> LexicalScores:
        """Scores of every live document for one query; each distinct query term counts once (as bm25s)."""
        with self._lock:
            delta = self._delta_segment()
            n_base, n_delta = len(self._base_ids), len(self._delta_ids)
            scores = np.zeros(n_base + n_delta, dtype=np.float32)
            term_ids = sorted({self._vocab[t] for t in (query_tokens or ()) if t in self._vocab})
            n_live = len(self)
            if term_ids and n_live:
                avgdl = (self._base_len_sum + self._delta_len_sum) / n_live or 1.0
                t = np.asarray(term_ids, dtype=np.int64)
                base_rows = t[t < self._base.shape[0]]
                picked_base = self._base[base_rows]
                picked_delta = delta[t]
                base_row_of = np.repeat(np.searchsorted(t, base_rows), np.diff(picked_base.indptr))
                cols, tf = picked_base.indices, picked_base.data
                if self._base_live < len(self._alive):
                    # Postings of dead base columns neither count towards df nor score.
                    live = self._alive[cols]
                    base_row_of, cols, tf = base_row_of[live], cols[live], tf[live]
                df = np.bincount(base_row_of, minlength=len(t))
                delta_row_of = np.repeat(np.arange(len(t)), np.diff(picked_delta.indptr))
                df = df + np.bincount(delta_row_of, minlength=len(t))
                idf = np.log(1 + (n_live - df + 0.5) / (df + 0.5)).astype(np.float32)
                norm = np.float32(self.k1) * (1 - np.float32(self.b) + np.float32(self.b) * (
                    self._base_len / np.float32(avgdl)))
                # Lucene drops the constant (k1 + 1) factor.
                w = tf / (tf + norm[cols]) * idf[base_row_of]
                scores[:n_base] = np.bincount(cols, weights=w, minlength=n_base)
                if n_delta:
                    dnorm = np.float32(self.k1) * (1 - np.float32(self.b) + np.float32(self.b) * (
                        self._delta_len / np.float32(avgdl)))
                    dtf, dcols = picked_delta.data, picked_delta.indices
                    w = dtf / (dtf + dnorm[dcols]) * idf[delta_row_of]
                    scores[n_base:] = np.bincount(dcols, weights=w, minlength=n_delta)
            ids, delta_pos = self._all_ids, self._delta_pos
            # The mask is copied: a later write must not change this query's answer.
            base_column, alive, sorted_cols = self._sorted_ids, self._alive.copy(), self._sorted_cols

        def position_of(q: np.ndarray) -> np.ndarray:
            if len(base_column):
                at = np.minimum(np.searchsorted(base_column, q), len(base_column) - 1)
                pos = np.where(base_column[at] == q, sorted_cols[at], -1)
                ok = pos >= 0
                pos[ok] = np.where(alive[pos[ok]], pos[ok], -1)
            else:
                pos = np.full(len(q), -1, np.int64)
            if delta_pos:
                for n, i in enumerate(q.tolist()):
                    if i in delta_pos:
                        pos[n] = delta_pos[i]
            return pos

        # Dead base columns score 0 through the mask, so they never rank.
        return LexicalScores(ids, scores, position_of)

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
    def load(cls, path: Path) -> tuple["LexicalIndex", dict] | None:
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
        index = cls(meta.get("k1", 1.5), meta.get("b", 0.75))
        index._vocab = {t: n for n, t in enumerate(vocab)}
        index._set_base(base, a["ids"], a["lengths"], a["alive"])
        bounds = np.concatenate([[0], np.cumsum(counts)])
        terms, tfs = a["delta_terms"], a["delta_tfs"]
        index._delta = {int(i): (terms[bounds[n]:bounds[n + 1]], tfs[bounds[n]:bounds[n + 1]])
                        for n, i in enumerate(a["delta_ids"])}
        index._delta_len_sum = float(sum(tf.sum(dtype=np.float64) for _, tf in index._delta.values()))
        return index, meta
