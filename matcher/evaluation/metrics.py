"""Recall@k, MRR@k and nDCG@k with graded relevance, as TREC and BEIR define them."""
from __future__ import annotations

import math
from collections.abc import Sequence


def recall_at(ranked: Sequence[str], grades: dict[str, int], k: int, relevant_at: int = 1) -> float:
    """Share of the relevant documents (grade ≥ ``relevant_at``) found in the top ``k``."""
    relevant = {d for d, g in grades.items() if g >= relevant_at}
    if not relevant:
        return 0.0
    return len(relevant.intersection(ranked[:k])) / len(relevant)


def mrr_at(ranked: Sequence[str], grades: dict[str, int], k: int, relevant_at: int = 1) -> float:
    """1 / rank of the first relevant document in the top ``k`` (0 when none)."""
    for i, d in enumerate(ranked[:k], start=1):
        if grades.get(d, 0) >= relevant_at:
            return 1.0 / i
    return 0.0


def ndcg_at(ranked: Sequence[str], grades: dict[str, int], k: int) -> float:
    """nDCG with the grades as linear gains (gain / log2(rank + 1)), as trec_eval computes it."""
    dcg = sum(grades.get(d, 0) / math.log2(i + 1) for i, d in enumerate(ranked[:k], start=1) if grades.get(d, 0) > 0)
    ideal = sorted((g for g in grades.values() if g > 0), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 1) for i, g in enumerate(ideal, start=1))
    return dcg / idcg if idcg > 0 else 0.0


def score_run(ranked: Sequence[str], grades: dict[str, int], k: int, relevant_at: int = 1) -> dict[str, float]:
    """The three figures for one query's ranking."""
    return {
        f"recall@{k}": recall_at(ranked, grades, k, relevant_at),
        f"mrr@{k}": mrr_at(ranked, grades, k, relevant_at),
        f"ndcg@{k}": ndcg_at(ranked, grades, k),
    }


def mean_scores(rows: list[dict[str, float]]) -> dict[str, float]:
    """Average each figure over queries (rounded to 4 places)."""
    if not rows:
        return {}
    return {key: round(sum(r[key] for r in rows) / len(rows), 4) for key in rows[0]}
