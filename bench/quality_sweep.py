"""How the ranking defaults were chosen: every method and weighting on the dev sets, in one run.

    .venv/bin/python bench/quality_sweep.py [DATASET_DIR ...]

Defaults to ../shared/eval/csl_kw_hard and csl_goal (dev queries only). Each
set is loaded once (vectors come from the evaluation cache, so only the first
run encodes); every configuration is then ranked on the same load and its
Recall@10 / MRR@10 / nDCG@10 printed, with the weak-match threshold each
configuration suggests. Never tune on anything but dev.
"""
from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.paths import EVAL as SHARED  # noqa: E402
from matcher.evaluation.dataset import load_eval_set  # noqa: E402
from matcher.evaluation.runner import EvalOptions, EvalRun, weak_threshold  # noqa: E402
from matcher.scoring import DEFAULT_WEIGHTS  # noqa: E402
from matcher.settings import get_settings  # noqa: E402

W = DEFAULT_WEIGHTS
CONFIGS = [
    ("bm25", "bm25", W),
    ("dense", "dense", W),
    ("hybrid rrf(60)", "hybrid", replace(W, fusion="rrf")),
    *[(f"hybrid z lexical={x}", "hybrid", replace(W, lexical=x)) for x in (0.15, 0.25, 0.35, 0.5)],
    *[(f"full sentence={b}", "full", replace(W, sentence=b)) for b in (0.0, 0.5, 0.8)],
    *[(f"full long_text_chars={n}", "full", replace(W, long_text_chars=n)) for n in (250, 300)],
    ("full (defaults)", "full", W),
]


def main(dirs: list[Path]) -> None:
    settings = get_settings()
    for directory in dirs:
        eval_set = load_eval_set(directory, "dev")
        print(f"\n## {eval_set.name}: {len(eval_set.queries)} dev queries, {len(eval_set.corpus)} documents")
        with EvalRun(eval_set, settings) as run:
            print("| configuration | R@10 | MRR@10 | nDCG@10 | q/s | weak_below (p10 of hits) |")
            print("| --- | --- | --- | --- | --- | --- |")
            rows = [(label, EvalOptions(method=m, weights=w)) for label, m, w in CONFIGS]
            for label, options in rows:
                r = run.evaluate(options)
                o = r["overall"]
                print(f"| {label} | {o['recall@10']:.3f} | {o['mrr@10']:.3f} | {o['ndcg@10']:.3f} | "
                      f"{r['queries_per_s']} | {weak_threshold(r['relevant_scores'])} |", flush=True)
            # The lexical channel without character bigrams (jieba words only), for comparison.
            run.ctx.indexes.tokenizer.bigrams = False
            run.ctx.indexes.rebuild()
            for label, method in (("bm25 words only", "bm25"), ("hybrid words only", "hybrid")):
                r = run.evaluate(EvalOptions(method=method))
                o = r["overall"]
                print(f"| {label} | {o['recall@10']:.3f} | {o['mrr@10']:.3f} | {o['ndcg@10']:.3f} | "
                      f"{r['queries_per_s']} | |", flush=True)


if __name__ == "__main__":
    args = [Path(a) for a in sys.argv[1:]] or [SHARED / "csl_kw_hard", SHARED / "csl_goal"]
    main(args)
