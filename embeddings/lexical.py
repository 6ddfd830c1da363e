"""A BM25 index over pre-tokenised documents, keyed by record id, that takes writes.

Tokenisation (jieba, the user dictionary) belongs to the caller; this index
only counts. Each document keeps its term ids and frequencies; the term-major
sparse matrix used for scoring is rebuilt lazily after writes with vectorised
numpy (milliseconds for 10^4 documents), so a write never re-tokenises and a
query costs work proportional to its terms' postings, never a Python loop over
documents. Scores are BM25's Lucene variant, equal to ``bm25s``'s default
(a test compares them); ``bm25s`` itself is static and re-indexes everything
on every write, which is why it is only the reference here.

The index saves to one ``.npz`` file with a metadata record, like the vector
index, so a restart does not re-tokenise the corpus.
"""
from __future__ import annotations

import json
import os
import tempfile
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from threading import RLock

import numpy as np
from scipy import sparse


class LexicalIndex:
    """BM25 over token lists; ids are the database ids."""

    def __init__(self, k1: float = 1.5, b: float = 0.75):
        self.k1, self.b = k1, b
        self._vocab: dict[str, int] = {}
        self._docs: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # id -> (term ids, term frequencies)
        self._lock = RLock()
        self._stale = True
        self._matrix: sparse.csr_matrix | None = None  # terms × docs, BM25 weights without idf
        self._idf = np.zeros(0, dtype=np.float32)
        self._ids = np.zeros(0, dtype=np.int64)
        self._row_of: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self._docs)

    def upsert(self, ids: Sequence[int], token_lists: Iterable[Sequence[str]]) -> None:
        """Add or replace documents."""
        with self._lock:
            for i, toks in zip(ids, token_lists):
                term_ids = np.fromiter((self._vocab.setdefault(t, len(self._vocab)) for t in toks), dtype=np.int32)
                uniq, counts = np.unique(term_ids, return_counts=True)
                self._docs[int(i)] = (uniq.astype(np.int32), counts.astype(np.float32))
            self._stale = True

    def remove(self, ids: Iterable[int]) -> None:
        """Drop documents (unknown ids are ignored)."""
        with self._lock:
            for i in ids:
                self._docs.pop(int(i), None)
            self._stale = True

    def _build(self) -> None:
        ids = np.fromiter(self._docs.keys(), dtype=np.int64, count=len(self._docs))
        n_terms = len(self._vocab)
        if not len(ids):
            self._matrix, self._idf, self._ids, self._row_of = None, np.zeros(n_terms, np.float32), ids, {}
            self._stale = False
            return
        parts = list(self._docs.values())
        lengths = np.fromiter((tf.sum() for _, tf in parts), dtype=np.float32, count=len(parts))
        per_doc = np.fromiter((len(t) for t, _ in parts), dtype=np.int64, count=len(parts))
        terms = np.concatenate([t for t, _ in parts])
        tfs = np.concatenate([tf for _, tf in parts])
        rows = np.repeat(np.arange(len(parts)), per_doc)
        avgdl = float(lengths.mean()) or 1.0
        norm = self.k1 * (1 - self.b + self.b * lengths / avgdl)
        weights = tfs / (tfs + norm[rows])  # Lucene drops the constant (k1 + 1) factor
        self._matrix = sparse.csr_matrix((weights, (terms, rows)), shape=(n_terms, len(parts)), dtype=np.float32)
        df = np.bincount(terms, minlength=n_terms).astype(np.float64)
        n = len(parts)
        self._idf = np.log(1 + (n - df + 0.5) / (df + 0.5)).astype(np.float32)
        self._ids = ids
        self._row_of = {int(i): r for r, i in enumerate(ids)}
        self._stale = False

    def _all_scores(self, query_tokens: Sequence[str]) -> np.ndarray:
        with self._lock:
            if self._stale:
                self._build()
            term_ids = sorted({self._vocab[t] for t in query_tokens if t in self._vocab})
            if self._matrix is None or not term_ids:
                return np.zeros(len(self._ids), dtype=np.float32)
            # Each distinct query term counts once, weighted by its idf (as bm25s does).
            picked = self._matrix[term_ids]
            return np.asarray(picked.T @ self._idf[term_ids], dtype=np.float32).ravel()

    def scores(self, query_tokens: Sequence[str], ids: Sequence[int]) -> np.ndarray:
        """BM25 scores of the given documents (0 for unknown ids)."""
        all_scores = self._all_scores(query_tokens)
        rows = np.fromiter((self._row_of.get(int(i), -1) for i in ids), dtype=np.int64, count=len(ids))
        out = np.zeros(len(ids), dtype=np.float32)
        known = rows >= 0
        out[known] = all_scores[rows[known]]
        return out

    def search(self, query_tokens: Sequence[str], k: int, allowed_ids: Iterable[int] | None = None
               ) -> list[tuple[int, float]]:
        """Top-``k`` (id, score) with a positive score, best first; ``allowed_ids`` restricts the candidates."""
        all_scores = self._all_scores(query_tokens)
        if allowed_ids is not None:
            rows = np.fromiter((self._row_of[i] for i in allowed_ids if i in self._row_of), dtype=np.int64)
            masked = np.zeros(len(all_scores), dtype=np.float32)
            masked[rows] = all_scores[rows]
            all_scores = masked
        k = min(k, int((all_scores > 0).sum()))
        if k <= 0:
            return []
        top = np.argpartition(-all_scores, k - 1)[:k]
        top = top[np.argsort(-all_scores[top], kind="stable")]
        return [(int(self._ids[r]), float(all_scores[r])) for r in top]

    # -- persistence ------------------------------------------------------
    def save(self, path: Path, meta: dict) -> None:
        """Write the index and ``meta`` to ``path`` atomically (a reader sees the old file or the new one)."""
        with self._lock:
            ids = np.fromiter(self._docs.keys(), dtype=np.int64, count=len(self._docs))
            parts = list(self._docs.values())
            counts = np.fromiter((len(t) for t, _ in parts), dtype=np.int64, count=len(parts))
            terms = np.concatenate([t for t, _ in parts]) if parts else np.zeros(0, np.int32)
            tfs = np.concatenate([tf for _, tf in parts]) if parts else np.zeros(0, np.float32)
            vocab = sorted(self._vocab, key=self._vocab.get)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                np.savez(fh, ids=ids, counts=counts, terms=terms, tfs=tfs,
                         vocab=np.array(json.dumps(vocab, ensure_ascii=False)),
                         meta=np.array(json.dumps({**meta, "count": len(ids), "k1": self.k1, "b": self.b})))
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: Path) -> tuple["LexicalIndex", dict] | None:
        """The saved index and its metadata, or None if the file is missing or unreadable."""
        try:
            with np.load(Path(path), allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                vocab = json.loads(str(data["vocab"]))
                ids, counts, terms, tfs = data["ids"], data["counts"], data["terms"], data["tfs"]
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            return None
        if len(ids) != meta.get("count") or int(counts.sum()) != len(terms) or len(terms) != len(tfs):
            return None
        index = cls(meta.get("k1", 1.5), meta.get("b", 0.75))
        index._vocab = {t: n for n, t in enumerate(vocab)}
        bounds = np.concatenate([[0], np.cumsum(counts)])
        index._docs = {int(i): (terms[bounds[n]:bounds[n + 1]], tfs[bounds[n]:bounds[n + 1]]) for n, i in enumerate(ids)}
        return index, meta
