"""Does a faster backend cost ranking quality? Dense nDCG@10 per encoder backend on both dev sets.

Run: python bench/quality_backends.py [--docs 3000] [--backends torch,onnx-int8]

Each set is cut to a fixed subsample (every document judged for a dev query + seeded random distractors
up to --docs, see ``matcher.evaluation.dataset.subsample``) because the full 12k-abstract corpora take
~20 min per backend to encode on two cores. Scores on a subsample are higher than on the full corpus
(fewer distractors); what matters here is the difference between backends on the same documents.
Vectors are cached per model id in <data dir>/eval/vectors.sqlite, so a second run encodes nothing.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.paths import EVAL  # noqa: E402
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from embeddings.encoder import Encoder  # noqa: E402
from matcher.evaluation.dataset import load_eval_set, subsample  # noqa: E402
from matcher.evaluation.runner import EvalOptions, run_eval  # noqa: E402
from matcher.settings import Settings  # noqa: E402

BOUND = 0.01  # the limit: no more than 0.01 nDCG@10 below fp32


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=3000, help="documents per set (judged + distractors)")
    parser.add_argument("--backends", default="torch,onnx-int8", help="first one is the reference")
    parser.add_argument("--sets", default="csl_kw_hard,csl_goal")
    args = parser.parse_args()
    settings = Settings()
    backends = args.backends.split(",")
    rows, worst = [], 0.0
    for name in args.sets.split(","):
        small = subsample(load_eval_set(EVAL / name, "dev"), args.docs, seed=0)
        figures = {}
        for backend in backends:
            encoder = Encoder(settings.embedding_model, settings.data_dir, backend=backend)
            report = run_eval(small, settings, EvalOptions(method="dense"), encoder=encoder)
            figures[backend] = report["overall"]
            print(f"  {small.name} · {backend}: nDCG@10 {report['overall']['ndcg@10']:.4f}", flush=True)
        ref = figures[backends[0]]["ndcg@10"]
        for backend in backends:
            o = figures[backend]
            delta = o["ndcg@10"] - ref
            worst = min(worst, delta)
            rows.append(f"| {small.name} | {backend} | {o['recall@10']:.3f} | {o['mrr@10']:.3f} "
                        f"| {o['ndcg@10']:.4f} | {delta:+.4f} |")
    print()
    print(f"| set | backend | Recall@10 | MRR@10 | nDCG@10 | Δ vs {backends[0]} |")
    print("| --- | --- | --- | --- | --- | --- |")
    print("\n".join(rows))
    ok = worst >= -BOUND
    print(f"\nlargest drop {worst:+.4f}: {'within' if ok else 'OUTSIDE'} the {BOUND} bound")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
