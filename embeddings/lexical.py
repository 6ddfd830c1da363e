"""A BM25 index over pre-tokenised documents, keyed by record id.

Tokenisation (jieba, the user dictionary) belongs to the caller; this index
only counts. Scoring is done by ``bm25s`` on a sparse matrix, so a query costs
work proportional to the postings of its terms, never a Python loop over
documents. ``bm25s`` indexes are static: writes mark the index stale and the
matrix is rebuilt from the kept token lists on the next query (a few hundred
milliseconds per 10^4 documents), which keeps upsert/remove semantics equal to
the vector index's.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from threading import Lock

import bm25s
import numpy as np


class LexicalIndex:
    """BM25 (Lucene variant) over token lists; ids are the database ids."""

    def __init__(self, k1: float = 1.5, b: float = 0.75):
        self.k1, self.b = k1, b
        self._tokens: dict[int, tuple[str, ...]] = {}
        self._lock = Lock()
        self._stale = True
        self._bm25: bm25s.BM25 | None = None
        self._vocab: dict[str, int] = {}
        self._ids = np.zeros(0, dtype=np.int64)
        self._row_of: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self._tokens)

    def upsert(self, ids: Sequence[int], token_lists: Iterable[Sequence[str]]) -> None:
        """Add or replace documents."""
        with self._lock:
            for i, toks in zip(ids, token_lists):
                self._tokens[int(i)] = tuple(toks)
            self._stale = True

    def remove(self, ids: Iterable[int]) -> None:
        """Drop documents (unknown ids are ignored)."""
        with self._lock:
            for i in ids:
                self._tokens.pop(int(i), None)
            self._stale = True

    def _build(self) -> None:
        ids = np.fromiter(self._tokens.keys(), dtype=np.int64, count=len(self._tokens))
        vocab: dict[str, int] = {}
        corpus_ids = [[vocab.setdefault(t, len(vocab)) for t in toks] for toks in self._tokens.values()]
        bm25 = None
        if len(ids):
            # An empty token keeps documents without any token valid for bm25s.
            vocab.setdefault("", len(vocab))
            corpus_ids = [c or [vocab[""]] for c in corpus_ids]
            bm25 = bm25s.BM25(k1=self.k1, b=self.b)
            bm25.index((corpus_ids, vocab), show_progress=False)
        self._bm25, self._vocab, self._ids = bm25, vocab, ids
        self._row_of = {int(i): n for n, i in enumerate(ids)}
        self._stale = False

    def _ready(self) -> None:
        if self._stale:
            with self._lock:
                if self._stale:
                    self._build()

    def _all_scores(self, query_tokens: Sequence[str]) -> np.ndarray:
        self._ready()
        token_ids = sorted({self._vocab[t] for t in query_tokens if t and t in self._vocab})
        if self._bm25 is None or not token_ids:
            return np.zeros(len(self._ids), dtype=np.float32)
        return np.asarray(self._bm25.get_scores_from_ids(token_ids), dtype=np.float32)

    def scores(self, query_tokens: Sequence[str], ids: Sequence[int]) -> np.ndarray:
        """BM25 scores of the given documents (0 for unknown ids)."""
        all_scores = self._all_scores(query_tokens)
        out = np.zeros(len(ids), dtype=np.float32)
        for n, i in enumerate(ids):
            row = self._row_of.get(int(i))
            if row is not None:
                out[n] = all_scores[row]
        return out

    def search(self, query_tokens: Sequence[str], k: int, allowed_ids: Iterable[int] | None = None
               ) -> list[tuple[int, float]]:
        """Top-``k`` (id, score) with a positive score, best first; ``allowed_ids`` restricts the candidates."""
        all_scores = self._all_scores(query_tokens)
        if allowed_ids is not None:
            rows = np.fromiter((self._row_of[i] for i in allowed_ids if i in self._row_of), dtype=np.int64)
            if not len(rows):
                return []
            masked = np.full(len(all_scores), -1.0, dtype=np.float32)
            masked[rows] = all_scores[rows]
            all_scores = masked
        k = min(k, int((all_scores > 0).sum()))
        if k <= 0:
            return []
        top = np.argpartition(-all_scores, k - 1)[:k]
        top = top[np.argsort(-all_scores[top], kind="stable")]
        return [(int(self._ids[r]), float(all_scores[r])) for r in top]
