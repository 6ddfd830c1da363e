"""Re-scoring the full method's candidate pool on the dev sets: feedback and extra features, measured.

    .venv/bin/python bench/quality_feedback.py [DATASET_DIR ...]

For each dev query the full method's pool (the union of each channel's top 50)
is taken once, with vectors from the evaluation cache, and re-scored in numpy
by each variant; every variant keeps the full method's text score and adds or
changes one thing:

- Rocchio pseudo-relevance feedback on the e5 vectors: the query vector moved
  towards the mean of its top-m results, optionally with a second dense search;
- a hubness prior: minus the document's mean cosine to its 5 nearest documents;
- per-keyword evidence for keyword-list queries (split on 、，;): the min / max
  cosine of each keyword's own vector, and how many keywords have BM25 evidence.

Added features move a document by ``weight × σ(dense) × z(feature)``, the unit
the lexical channel uses. Prints nDCG@10 / MRR@10 / Recall@10 per variant
(docs/quality.md holds the results); never tune on anything but dev.
"""
from __future__ import annotations

import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.paths import EVAL as SHARED  # noqa: E402
from matcher.evaluation.dataset import load_eval_set  # noqa: E402
from matcher.evaluation.metrics import mean_scores, score_run  # noqa: E402
from matcher.evaluation.runner import EvalRun, _encode_sentences  # noqa: E402
from matcher.models import Outcome  # noqa: E402
from matcher.retrieval import Retriever  # noqa: E402
from matcher.scoring import DEFAULT_WEIGHTS  # noqa: E402
from matcher.settings import get_settings  # noqa: E402

POOL = 50
_KEYWORD_SPLIT = re.compile(r"[、，,；;]")


def _z(values: np.ndarray) -> np.ndarray:
    std = float(values.std())
    return (values - values.mean()) / std if std > 1e-9 else np.zeros_like(values)


@dataclass
class Pool:
    """One query's candidates and what the variants need of them."""

    ids: list[int]
    full: np.ndarray       # the full method's text score
    dense: np.ndarray
    lexical: np.ndarray
    vectors: np.ndarray    # the candidates' e5 vectors
    query: np.ndarray
    keyword_vectors: np.ndarray   # one row per keyword (the query itself when it is not a list)
    keyword_lexical: np.ndarray   # BM25 of each keyword alone, (candidates, keywords)
    lexical_of: Callable[[list[int]], np.ndarray]  # the query's BM25 of any other ids


def _hubness(index, k: int = 5, chunk: int = 2048) -> dict[int, float]:
    """Each document's mean cosine to its k nearest other documents."""
    ids = index.ids()
    vectors, _ = index.vectors(ids)
    out = {}
    for start in range(0, len(ids), chunk):
        sims = vectors[start:start + chunk] @ vectors.T
        sims[np.arange(len(sims)), np.arange(start, start + len(sims))] = -1.0
        top = -np.partition(-sims, k, axis=1)[:, :k]
        out.update(zip(ids[start:start + chunk].tolist(), top.mean(1).tolist()))
    return out


def rocchio(m: int, alpha: float, research: bool, ctx) -> Callable[[Pool], tuple[list[int], np.ndarray]]:
    """The query vector moved towards its top-m results; the sentence lift of the full method kept."""
    index = ctx.indexes.indexes["outcomes"]

    def rescore(p: Pool) -> tuple[list[int], np.ndarray]:
        top = [p.ids[n] for n in np.argsort(-p.full)[:m]]
        moved = p.query + alpha * index.vectors(top)[0].mean(0)
        moved /= np.linalg.norm(moved)
        ids = list(p.ids)
        if research:
            ids += [i for i, _ in ctx.indexes.search("outcomes", moved, POOL, None) if i not in set(p.ids)]
        vectors, _ = index.vectors(ids)
        lexical = np.concatenate([p.lexical, p.lexical_of(ids[len(p.ids):])])
        fused = vectors @ moved + DEFAULT_WEIGHTS.lexical * float(p.dense.std()) * _z(lexical)
        plain = p.dense + DEFAULT_WEIGHTS.lexical * float(p.dense.std()) * _z(p.lexical)
        lift = np.concatenate([p.full - plain, np.zeros(len(ids) - len(p.ids))])
        return ids, fused + lift
    return rescore


def feature(weight: float, of: Callable[[Pool], np.ndarray]) -> Callable[[Pool], tuple[list[int], np.ndarray]]:
    """The full score plus ``weight`` pool-dense-spreads per z-unit of a feature."""
    return lambda p: (p.ids, p.full + weight * float(p.dense.std()) * _z(of(p)))


def main(dirs: list[Path]) -> None:
    settings = get_settings()
    w = DEFAULT_WEIGHTS
    for directory in dirs:
        eval_set = load_eval_set(directory, "dev")
        print(f"\n## {eval_set.name}: {len(eval_set.queries)} dev queries", flush=True)
        with EvalRun(eval_set, settings) as run:
            ctx = run.ctx
            _encode_sentences(ctx, w, None)
            hub = _hubness(ctx.indexes.indexes["outcomes"])
            variants: dict[str, Callable] = {"full (as served)": lambda p: (p.ids, p.full)}
            for m in (3, 5, 10):
                for alpha in (0.25, 0.5, 1.0):
                    for research in (False, True):
                        variants[f"Rocchio m={m} α={alpha}{' + second search' if research else ''}"] = \
                            rocchio(m, alpha, research, ctx)
            for weight in (-0.2, -0.1, 0.1, 0.2):
                variants[f"hubness prior {weight:+}"] = feature(weight, lambda p: -np.array([hub[i] for i in p.ids]))
                variants[f"min keyword cosine {weight:+}"] = feature(weight, lambda p: (p.vectors @ p.keyword_vectors.T).min(1))
                variants[f"max keyword cosine {weight:+}"] = feature(weight, lambda p: (p.vectors @ p.keyword_vectors.T).max(1))
                variants[f"keywords with BM25 evidence {weight:+}"] = feature(weight, lambda p: (p.keyword_lexical > 0).mean(1))
            rows: dict[str, list[dict]] = {label: [] for label in variants}
            lexical_index, tokenizer = ctx.indexes.lexical["outcomes"], ctx.indexes.tokenizer
            with ctx.sessions() as session:
                for q in eval_set.queries:
                    qv = ctx.encoder.encode([q.text], "query")[0]
                    keywords = [k.strip() for k in _KEYWORD_SPLIT.split(q.text) if k.strip()]
                    retriever = Retriever(ctx.indexes, ctx.encoder, w, "full")
                    cands = retriever.candidates("outcomes", q.text, qv, POOL, None)
                    ids = [c.id for c in cands]
                    dense, lexical = np.array([c.dense for c in cands]), np.array([c.lexical for c in cands])
                    records = {r.id: r for r in session.query(Outcome).filter(Outcome.id.in_(ids))}
                    full = {c.id: c.text_score for c in retriever.score("outcomes", q.text, cands, records.get)}
                    query_scores = lexical_index.query(tokenizer.tokens(q.text))
                    pool = Pool(ids, np.array([full[i] for i in ids]), dense, lexical,
                                ctx.indexes.indexes["outcomes"].vectors(ids)[0], qv,
                                ctx.encoder.encode(keywords, "query") if len(keywords) > 1 else qv[None, :],
                                np.stack([lexical_index.query(tokenizer.tokens(k)).of(ids) for k in keywords], 1),
                                query_scores.of)
                    for label, rescore in variants.items():
                        pool_ids, scores = rescore(pool)
                        ranked = [run.external[pool_ids[n]] for n in np.argsort(-scores, kind="stable")[:10]]
                        rows[label].append(score_run(ranked, eval_set.qrels[q.id], 10))
        print("| variant | R@10 | MRR@10 | nDCG@10 |\n| --- | --- | --- | --- |")
        for label, r in rows.items():
            s = mean_scores(r)
            print(f"| {label} | {s['recall@10']:.3f} | {s['mrr@10']:.3f} | {s['ndcg@10']:.3f} |", flush=True)


if __name__ == "__main__":
    main([Path(a) for a in sys.argv[1:]] or [SHARED / "csl_kw_hard", SHARED / "csl_goal"])
