"""Does fine-tuning the encoder on labelled keyword-list queries help queries it never saw? Two-fold check.

    .venv/bin/python bench/quality_tune_cv.py [--epochs 2] [--lr 2e-5] [--batch 16]

The csl_kw_hard dev queries of the committed CSL subset (seed_data/eval, all 215
of them, over 2,000 abstracts) are split in two folds by a hash of their id. For
each fold the default model is fine-tuned (``matcher.learning.fine_tune``: the
ranking loss ``matcher tune`` uses) on the *other* fold's (query, labelled
abstract, hardest wrong abstract of the base model) triples, then the held-out
fold is ranked by the base and the tuned model (dense and full method), and the
csl_goal CSL subset (52 prose queries, none trained on) checks that prose needs
do not get worse. Only held-out figures are printed: a model is never scored on
the queries it learnt from. Every tuned model encodes both corpora once (a few
minutes each on 2 cores).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from embeddings.encoder import Encoder, resolve_model_dir  # noqa: E402
from matcher.evaluation.dataset import EvalSet, load_eval_set  # noqa: E402
from matcher.evaluation.runner import EvalOptions, EvalRun  # noqa: E402
from matcher.learning import TuneExamples, fine_tune  # noqa: E402
from matcher.scoring import DEFAULT_WEIGHTS  # noqa: E402
from matcher.settings import get_settings  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
KW = ROOT / "seed_data" / "eval" / "csl_kw_hard_csl"
GOAL = ROOT / "seed_data" / "eval" / "csl_goal_csl"


def fold_of(query_id: str, folds: int = 2) -> int:
    return int(hashlib.md5(query_id.encode()).hexdigest(), 16) % folds


def only(eval_set: EvalSet, queries) -> EvalSet:
    return replace(eval_set, queries=list(queries))


def figures(run: EvalRun, eval_set: EvalSet, methods=("dense", "full")) -> dict:
    run.eval_set = eval_set
    return {m: run.evaluate(EvalOptions(method=m))["overall"] for m in methods}


def hard_negatives(run: EvalRun, eval_set: EvalSet) -> dict[str, str]:
    """Each query's highest-ranked wrong abstract under the base model's dense channel."""
    from matcher.matching import rank_text

    texts = {d.id: d.text for d in eval_set.corpus}
    out = {}
    with run.ctx.sessions() as session:
        for q in eval_set.queries:
            ranked = rank_text(run.ctx, session, q.text, "outcomes", 5, "dense", None, DEFAULT_WEIGHTS)
            for i, _ in ranked:
                doc = run.external[i]
                if doc not in eval_set.qrels[q.id]:
                    out[q.id] = texts[doc]
                    break
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--lr", type=float, default=2e-5)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--folds", type=int, default=2)
    parser.add_argument("--only-fold", type=int, default=None, help="tune and score this held-out fold only")
    parser.add_argument("--no-hard-negatives", action="store_true", help="in-batch negatives only")
    args = parser.parse_args()

    settings = get_settings()
    kw, goal = load_eval_set(KW, "dev"), load_eval_set(GOAL, "dev")
    base = Encoder(settings.embedding_model, settings.data_dir, backend=settings.embedding_backend)
    base_dir = resolve_model_dir(settings.embedding_model, Path(settings.data_dir))
    folds = [[q for q in kw.queries if fold_of(q.id, args.folds) == f] for f in range(args.folds)]
    report: dict = {"args": vars(args), "folds": [len(f) for f in folds]}

    with EvalRun(kw, settings, base) as run:
        negatives = {} if args.no_hard_negatives else hard_negatives(run, kw)
        report["base_kw"] = [figures(run, only(kw, f)) for f in folds]
    with EvalRun(goal, settings, base) as run:
        report["base_goal"] = figures(run, goal)
    print(json.dumps(report, ensure_ascii=False), flush=True)

    texts = {d.id: d.text for d in kw.corpus}
    for f, held_out in enumerate(folds):
        if args.only_fold is not None and f != args.only_fold:
            continue
        train = [q for g, fold in enumerate(folds) if g != f for q in fold]
        triples = [(q.text, texts[next(iter(kw.qrels[q.id]))],
                    None if args.no_hard_negatives else negatives.get(q.id)) for q in train]
        examples = TuneExamples(triples, len(triples), sum(n is not None for *_, n in triples))
        # The model id (and so the vector cache key) comes from the folder's name and file sizes: make it unique.
        out = Path(tempfile.mkdtemp(prefix="tuned-e5-cv")) / f"e5-fold{f}-{int(time.time())}"
        started = time.perf_counter()
        fine_tune(base_dir, examples, out, epochs=args.epochs, learning_rate=args.lr, batch_size=args.batch,
                  query_prefix=base.profile.query_prefix, passage_prefix=base.profile.passage_prefix)
        trained_s = time.perf_counter() - started
        tuned = Encoder(str(out), settings.data_dir, backend=settings.embedding_backend)
        with EvalRun(kw, settings, tuned) as run:
            kw_fig = figures(run, only(kw, held_out))
        with EvalRun(goal, settings, tuned) as run:
            goal_fig = figures(run, goal)
        row = {"fold": f, "trained_on": len(train), "train_s": round(trained_s, 1),
               "kw_held_out": kw_fig, "goal": goal_fig}
        print(json.dumps(row, ensure_ascii=False), flush=True)


if __name__ == "__main__":
    main()
