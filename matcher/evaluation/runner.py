"""Run the service's own ranking over an evaluation set and score it.

The corpus is loaded as outcomes into a throw-away data directory (its own
SQLite database and indexes), so nothing of the caller's data is touched; the
vectors go through a persistent cache keyed by model and text, so only the
first run over a corpus pays for encoding.
"""
from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from embeddings.encoder import Encoder

from ..context import build_context
from ..documents import sentences_of
from ..matching import rank_text
from ..models import Institution, Outcome
from ..retrieval import METHODS
from ..scoring import DEFAULT_WEIGHTS, Weights
from ..settings import Settings
from .dataset import EvalSet
from .metrics import mean_scores, score_run

ProgressCallback = Callable[[str, int, int], None]
UNCATEGORISED = "（无类别）"


@dataclass
class EvalOptions:
    method: str = "full"
    k: int = 10
    relevant_at: int = 1
    candidates: str = "all"  # or "judged": rank only each query's judged documents
    weights: Weights = field(default_factory=lambda: DEFAULT_WEIGHTS)
    limit: int | None = None  # first N queries only (quick checks)


def default_cache_url(data_dir: Path) -> str:
    """Where evaluation vectors are kept between runs: beside the model, not in the throw-away directory."""
    path = Path(data_dir) / "eval" / "vectors.sqlite"
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path.resolve()}"


def _load_corpus(ctx, eval_set: EvalSet) -> dict[int, str]:
    with ctx.sessions() as session:
        inst = Institution(name=f"评测语料 {eval_set.name}")
        session.add(inst)
        session.flush()
        rows = [Outcome(institution_id=inst.id, external_id=d.id, title=d.title, title_key=f"eval:{d.id}",
                        abstract=d.text, keywords=[], cooperation_modes=[]) for d in eval_set.corpus]
        session.add_all(rows)
        session.commit()
        return {r.id: r.external_id for r in rows}


def _encode_sentences(ctx, weights: Weights, on_progress: ProgressCallback | None) -> None:
    """Encode the long documents' sentences up front, so query timing measures ranking, not first-time encoding."""
    from sqlalchemy import func, select

    with ctx.sessions() as session:
        long_docs = session.scalars(select(Outcome).where(func.length(Outcome.abstract) >= weights.long_text_chars))
        sentences = [s for r in long_docs.unique() for s in sentences_of(r)]
    if sentences:
        ctx.encoder.encode(sentences, "passage",
                           on_progress=(lambda d, t: on_progress("句子编码", d, t)) if on_progress else None)


class EvalRun:
    """An evaluation set loaded into a throw-away service, ready to be ranked with any options.

    Use as a context manager; loading (and, the first time, encoding) happens
    once, so several methods or weightings can be compared on one load.
    """

    def __init__(self, eval_set: EvalSet, settings: Settings, encoder: Encoder | None = None,
                 cache_url: str | None = None, on_progress: ProgressCallback | None = None):
        self.eval_set = eval_set
        self.settings = settings
        self.encoder = encoder or Encoder(settings.embedding_model, settings.data_dir,
                                          backend=settings.embedding_backend)
        self.cache_url = cache_url or default_cache_url(settings.data_dir)
        self.on_progress = on_progress
        self._sentences_done: set[int] = set()

    def __enter__(self) -> "EvalRun":
        self._tmp = tempfile.TemporaryDirectory(prefix="matcher-eval-")
        local = replace_settings(self.settings, Path(self._tmp.name), self.cache_url)
        self.ctx = build_context(local, self.encoder, open_indexes=False)
        self.external = _load_corpus(self.ctx, self.eval_set)
        self.internal = {v: k for k, v in self.external.items()}
        report = self.on_progress
        self.ctx.indexes.rebuild(on_progress=(lambda d, t: report("文档编码", d, t)) if report else None)
        return self

    def __exit__(self, *exc) -> None:
        self.ctx.engine.dispose()
        self._tmp.cleanup()

    def evaluate(self, options: EvalOptions) -> dict:
        """Rank every query with ``options`` and return the figures.

        The report holds ``overall`` and ``per_category`` means of recall@k,
        mrr@k and ndcg@k, ``queries_per_s`` (ranking only, query encoding
        included), and for the calibration of the weak-match flag the scores
        of the labelled documents that were found (``relevant_scores``) and of
        each query's top result (``top_scores``).
        """
        if options.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}")
        ctx, eval_set = self.ctx, self.eval_set
        if options.method == "full" and options.weights.sentence > 0 \
                and options.weights.long_text_chars not in self._sentences_done:
            _encode_sentences(ctx, options.weights, self.on_progress)
            self._sentences_done.add(options.weights.long_text_chars)
        queries = eval_set.queries[: options.limit] if options.limit else eval_set.queries
        per_query, relevant_scores, top_scores = [], [], []
        started = time.perf_counter()
        with ctx.sessions() as session:
            for n, q in enumerate(queries, start=1):
                grades = eval_set.qrels[q.id]
                allowed = ([self.internal[d] for d in grades if d in self.internal]
                           if options.candidates == "judged" else None)
                ranked = rank_text(ctx, session, q.text, "outcomes", options.k, options.method, allowed,
                                   options.weights)
                doc_ids = [self.external[i] for i, _ in ranked]
                per_query.append((q, score_run(doc_ids, grades, options.k, options.relevant_at)))
                if ranked:
                    top_scores.append(ranked[0][1])
                relevant_scores += [s for (i, s) in ranked
                                    if grades.get(self.external[i], 0) >= options.relevant_at]
                if self.on_progress:
                    self.on_progress("查询", n, len(queries))
        elapsed = time.perf_counter() - started
        by_cat: dict[str, list[dict]] = {}
        for q, row in per_query:
            by_cat.setdefault(q.category or UNCATEGORISED, []).append(row)
        return {
            "dataset": eval_set.name,
            "method": options.method,
            "k": options.k,
            "candidates": options.candidates,
            "relevant_at": options.relevant_at,
            "model": self.encoder.model_id,
            "queries": len(per_query),
            "corpus": len(eval_set.corpus),
            "overall": mean_scores([row for _, row in per_query]),
            "per_category": {c: {**mean_scores(rows), "queries": len(rows)}
                             for c, rows in sorted(by_cat.items(), key=lambda kv: -len(kv[1]))},
            "queries_per_s": round(len(per_query) / elapsed, 2) if elapsed > 0 else None,
            # How the weak-match flag behaves here: the share of found labelled matches it would flag,
            # and the share of queries whose top result it flags.
            "weak_below": options.weights.weak_below,
            "weak_share_of_hits": _share_below(relevant_scores, options.weights.weak_below),
            "weak_share_of_top1": _share_below(top_scores, options.weights.weak_below),
            "relevant_scores": [round(float(s), 4) for s in relevant_scores],
            "top_scores": [round(float(s), 4) for s in top_scores],
        }


def run_eval(eval_set: EvalSet, settings: Settings, options: EvalOptions, encoder: Encoder | None = None,
             cache_url: str | None = None, on_progress: ProgressCallback | None = None) -> dict:
    """Load ``eval_set`` into a throw-away service and evaluate it once with ``options``."""
    with EvalRun(eval_set, settings, encoder, cache_url, on_progress) as run:
        return run.evaluate(options)


def replace_settings(settings: Settings, data_dir: Path, cache_url: str) -> Settings:
    """The caller's settings pointed at a throw-away data directory and SQLite store."""
    return settings.model_copy(update={"data_dir": data_dir, "database_url": None, "vector_cache_url": cache_url})


def _share_below(scores: list[float], threshold: float) -> float | None:
    return round(sum(1 for s in scores if s < threshold) / len(scores), 4) if scores else None


def weak_threshold(relevant_scores: list[float], quantile: float = 0.1) -> float | None:
    """The score under which only ``quantile`` of the genuinely relevant results fall."""
    if not relevant_scores:
        return None
    return round(float(np.quantile(np.asarray(relevant_scores), quantile)), 4)

