"""Text relevance: dense and lexical candidates, fused on the cosine scale.

Methods, each a superset of the one before (``matcher eval --method``):

- ``bm25``: the lexical channel alone (jieba tokens + bigrams, BM25);
- ``dense``: the embedding channel alone (cosine of e5 vectors);
- ``hybrid``: candidates from both channels, a dense-weighted z-score fusion;
- ``full``: hybrid plus sentence-level scoring of long texts, then the
  structured factors (applied by :mod:`matcher.matching`). The service uses it.

Tried and dropped because the harness said so (docs/quality.md): matching a
keyword-list query keyword by keyword, and pseudo-relevance feedback.

The fused score stays on the cosine scale: ``dense + lexical × σ_dense × z_bm25``,
i.e. the BM25 evidence moves a document by a number of the pool's dense
standard deviations. Structured-factor weights and the weak-match threshold
are therefore in the same unit whatever the fusion does.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from embeddings.cached_encoder import CachedEncoder

from .scoring import Weights
from .search_index import SearchIndexes

METHODS = ("bm25", "dense", "hybrid", "full")
FUSIONS = ("zscore", "rrf")
_RRF_K = 60


@dataclass
class Candidate:
    """One candidate document and the evidence for its text relevance."""

    id: int
    dense: float = 0.0
    lexical: float = 0.0
    sentence: float | None = None  # best sentence's cosine, for long texts
    text_score: float = 0.0


def _zscores(values: np.ndarray) -> np.ndarray:
    std = float(values.std())
    if std < 1e-9:
        return np.zeros_like(values)
    return (values - values.mean()) / std


def _rrf(values: np.ndarray) -> np.ndarray:
    order = np.argsort(-values, kind="stable")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(1, len(values) + 1)
    return 1.0 / (_RRF_K + ranks)


class Retriever:
    """Candidates and text scores for one query against one side's indexes.

    Holds the query's state between steps: make one per query, not per process.
    """

    def __init__(self, indexes: SearchIndexes, encoder: CachedEncoder, weights: Weights, method: str = "full"):
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}")
        self.indexes, self.encoder, self.weights, self.method = indexes, encoder, weights, method

    def candidates(self, side: str, query_text: str, query_vec: np.ndarray, pool: int,
                   allowed_ids: Sequence[int] | None) -> list[Candidate]:
        """The union of each channel's top ``pool``, each with both channels' scores."""
        self._query_vec = np.asarray(query_vec, dtype=np.float32)
        ids: dict[int, None] = {}
        lexical = None
        if self.method != "dense":
            # One BM25 pass serves both the channel's top and the other candidates' scores.
            lexical = self.indexes.lexical[side].query(self.indexes.tokenizer.query_tokens(query_text),
                                                       max_terms=self.weights.lexical_terms)
            for i, _ in lexical.top(pool, allowed_ids):
                ids.setdefault(i, None)
        if self.method != "bm25":
            for i, _ in self.indexes.search(side, query_vec, pool, allowed_ids):
                ids.setdefault(i, None)
        if not ids:
            return []
        id_list = list(ids)
        vectors, found = self.indexes.indexes[side].vectors(id_list)
        dense = vectors @ self._query_vec
        lex = lexical.of(id_list) if lexical is not None else np.zeros(len(id_list), dtype=np.float32)
        return [Candidate(i, float(d), float(s)) for i, d, s, ok in zip(id_list, dense, lex, found) if ok]

    def score(self, side: str, query_text: str, cands: list[Candidate],
              record_of: Callable[[int], object | None],
              sentence_vectors: dict[int, np.ndarray] | None = None) -> list[Candidate]:
        """Fill ``text_score`` of each candidate by the method; returns them best first.

        ``sentence_vectors``: long candidates' sentence vectors the caller already holds, by id (the
        rest are read through :meth:`~matcher.search_index.SearchIndexes.sentence_vectors`).
        """
        if not cands:
            return []
        lexical = np.array([c.lexical for c in cands])
        if self.method == "bm25":
            for c in cands:
                c.text_score = c.lexical
            return sorted(cands, key=lambda c: -c.text_score)
        dense = np.array([c.dense for c in cands])
        if self.method == "full" and side == "outcomes":
            dense = self._sentence_adjusted(cands, dense, record_of, sentence_vectors or {})
        fused = self._fuse(dense, lexical)
        for c, s in zip(cands, fused):
            c.text_score = round(float(s), 6)
        return sorted(cands, key=lambda c: -c.text_score)

    def _fuse(self, dense: np.ndarray, lexical: np.ndarray) -> np.ndarray:
        if self.method == "dense":
            return dense
        if self.weights.fusion == "rrf":
            return _rrf(dense) + _rrf(lexical)
        return dense + self.weights.lexical * float(dense.std()) * _zscores(lexical)

    def _sentence_adjusted(self, cands: list[Candidate], dense: np.ndarray,
                           record_of: Callable[[int], object | None], known: dict[int, np.ndarray]) -> np.ndarray:
        beta = self.weights.sentence
        if beta <= 0:
            return dense
        long_ones = []
        for n, c in enumerate(cands):
            record = record_of(c.id)
            if record is not None and record.body_length >= self.weights.long_text_chars:
                long_ones.append((n, record))
        if not long_ones:
            return dense
        # Sentence vectors come from the worker's memory (one batched cache read for the rest).
        vectors = {**known, **self.indexes.sentence_vectors([r for _, r in long_ones if r.id not in known])}
        out = dense.copy()
        query = self._query_vec
        for n, record in long_ones:
            vecs = vectors[record.id]
            if len(vecs) < 2:
                continue
            best = float((vecs @ query).max())
            cands[n].sentence = round(best, 6)
            # Never lowers a document: a long text is judged by its best passage when that fits better.
            out[n] = max(out[n], (1 - beta) * out[n] + beta * best)
        return out
