"""Does rewording a keyword-list query help the dense channel? The variants tried on the dev sets.

    .venv/bin/python bench/quality_query_variants.py [csl_kw_hard,csl_goal] [base,comma,space,...] [dense,full]

For queries that look like keyword lists ("A、B、C": at least two short parts, no full stop), the query's
vector is computed from a variant of the text, while the lexical channel keeps the text as it is. Every
variant is ranked on one load of each set (vectors from the evaluation cache). Results and the verdict
(none kept) are in docs/quality.md. Never tune on anything but dev.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.paths import EVAL as SHARED  # noqa: E402
from matcher import matching  # noqa: E402
from matcher.evaluation.dataset import load_eval_set  # noqa: E402
from matcher.evaluation.runner import EvalOptions, EvalRun  # noqa: E402
from matcher.scoring import DEFAULT_WEIGHTS  # noqa: E402
from matcher.settings import get_settings  # noqa: E402

_SEP = re.compile(r"[、，,；;]")
_ORIGINAL = matching._text_query


def keyword_parts(text: str) -> list[str] | None:
    """The parts of a keyword-list query, or None when the text reads as prose."""
    parts = [p for p in _SEP.split(text) if p.strip()]
    return parts if len(parts) >= 2 and "。" not in text and max(len(p) for p in parts) <= 16 else None


def variant_query(variant: str):
    """A replacement for matching._text_query computing the dense vector from ``variant`` of list queries."""
    def query(ctx, text, target):
        base = _ORIGINAL(ctx, text, target)
        parts = keyword_parts(text)
        if variant == "base" or parts is None:
            return base
        enc = lambda texts, kind="query": ctx.encoder.encode(texts, kind)  # noqa: E731
        rewrites = {"comma": text.replace("、", "，"), "space": text.replace("、", " "),
                    "kwprefix": "关键词：" + text, "about": "关于" + text + "的研究",
                    "paper": "本文研究了" + text.replace("、", "，") + "。"}
        if variant in rewrites:
            v = enc([rewrites[variant]])[0]
        elif variant == "qp":
            v = base.vector + enc([text], "passage")[0]
        else:
            mean = enc(parts).mean(0)
            v = {"kwmean": mean, "mix": base.vector + mean, "mix2": 2 * base.vector + mean}[variant]
        return matching.Query(text, (v / np.linalg.norm(v)).astype(np.float32))
    return query


def main(sets: list[str], variants: list[str], methods: list[str]) -> None:
    for name in sets:
        eval_set = load_eval_set(SHARED / name, "dev")
        lists = sum(keyword_parts(q.text) is not None for q in eval_set.queries)
        print(f"\n## {name}: {len(eval_set.queries)} dev queries, {lists} keyword lists")
        with EvalRun(eval_set, get_settings()) as run:
            for variant in variants:
                matching._text_query = variant_query(variant)
                try:
                    for method in methods:
                        o = run.evaluate(EvalOptions(method=method, weights=DEFAULT_WEIGHTS))["overall"]
                        print(f"{variant:9s} {method:6s} R@10 {o['recall@10']:.3f}  MRR@10 {o['mrr@10']:.3f}  "
                              f"nDCG@10 {o['ndcg@10']:.4f}", flush=True)
                finally:
                    matching._text_query = _ORIGINAL


if __name__ == "__main__":
    args = sys.argv[1:] + [None] * 3
    main((args[0] or "csl_kw_hard").split(","),
         (args[1] or "base,comma,space,kwprefix,about,paper,qp,kwmean,mix,mix2").split(","),
         (args[2] or "dense,full").split(","))
