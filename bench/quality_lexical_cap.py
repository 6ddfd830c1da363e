"""How much capping a long query's BM25 terms moves the ranking: why ``Weights.lexical_terms`` stays off.

    .venv/bin/python bench/quality_lexical_cap.py                 # caps 32,48,64,96,128 and none
    .venv/bin/python bench/quality_lexical_cap.py --caps 64 --needs 100

A stored need is a long query (≈ 270 distinct terms with bigrams); BM25 over all of them reads every
posting of every common term, which is what makes a first view slow at 10^6 outcomes. Keeping only the
most selective terms (highest idf, as Lucene's MoreLikeThis keeps a document's best terms) bounds that
cost. What it changes is measured here, through the evaluation harness (each corpus loaded once; its
vectors come from the harness's cache after the first run):

1. the labelled dev sets (csl_kw_hard, csl_goal, each on its own 12,179 abstracts): Recall@10 / nDCG@10
   of the service's ranking ("full") with each cap, and how many of their queries a cap touches at all;
2. long needs without labels (the 371 real enterprise needs of bdci2019, title + text, against
   csl_goal's abstracts): how far each
   capped ranking agrees with the uncapped one: the BM25 channel's own top 10 and top 100, and the
   service's final top 10 (overlap, and whether the first result stays first).

Prints figures only; nothing here asserts.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.paths import EVAL as SHARED  # noqa: E402
from matcher.evaluation.dataset import load_eval_set  # noqa: E402
from matcher.evaluation.runner import EvalOptions, EvalRun  # noqa: E402
from matcher.matching import rank_text  # noqa: E402
from matcher.scoring import DEFAULT_WEIGHTS  # noqa: E402
from matcher.settings import get_settings  # noqa: E402



def _overlap(a: list[int], b: list[int]) -> float:
    return len(set(a) & set(b)) / max(len(b), 1)


def _caps(text: str) -> list[int | None]:
    return [None if c == "none" else int(c) for c in text.split(",")]


def _agreement(run: EvalRun, need_texts: list[str], caps: list[int]) -> None:
    """How far each capped ranking of the long needs agrees with the uncapped one."""
    tok, lexical = run.ctx.indexes.tokenizer, run.ctx.indexes.lexical["outcomes"]
    counts = [len(set(tok.query_tokens(t))) for t in need_texts]
    print(f"\n2. 长需求 {len(need_texts)} 条（{run.eval_set.name} 语料）：不同词元 中位 {statistics.median(counts):.0f}，"
          f"p10 {statistics.quantiles(counts, n=10)[0]:.0f}，最多 {max(counts)}；与不设上限时的一致程度")
    full_top100 = [[i for i, _ in lexical.query(tok.query_tokens(t)).top(100)] for t in need_texts]
    with run.ctx.sessions() as session:
        uncapped = replace(DEFAULT_WEIGHTS, lexical_terms=None)
        full_final = [[i for i, _ in rank_text(run.ctx, session, t, weights=uncapped)] for t in need_texts]
        for cap in caps:
            weights = replace(DEFAULT_WEIGHTS, lexical_terms=cap)
            bm25_10, bm25_100, final_10, first = [], [], [], []
            for text, ref100, ref_final in zip(need_texts, full_top100, full_final):
                got = [i for i, _ in lexical.query(tok.query_tokens(text), max_terms=cap).top(100)]
                bm25_10.append(_overlap(got[:10], ref100[:10]))
                bm25_100.append(_overlap(got, ref100))
                final = [i for i, _ in rank_text(run.ctx, session, text, weights=weights)]
                final_10.append(_overlap(final, ref_final))
                first.append(bool(final) and bool(ref_final) and final[0] == ref_final[0])
            print(f"  上限 {cap}：BM25 前 10 重合 {statistics.mean(bm25_10):.3f}，前 100 重合 "
                  f"{statistics.mean(bm25_100):.3f}；最终前 10 重合 {statistics.mean(final_10):.3f}"
                  f"（最低 {min(final_10):.1f}），第一名不变 {statistics.mean(first):.1%}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--caps", default="32,48,64,96,128", help="comma-separated caps to compare with no cap")
    parser.add_argument("--needs", type=int, default=371, help="long needs to compare (bdci2019, in file order)")
    args = parser.parse_args()
    caps = [c for c in _caps(args.caps) if c is not None]
    settings = get_settings()
    goal = load_eval_set(SHARED / "csl_goal", "dev")
    kw = load_eval_set(SHARED / "csl_kw_hard", "dev")
    needs = [json.loads(line) for line in (SHARED / "bdci2019_needs.jsonl").open(encoding="utf-8")][: args.needs]
    need_texts = [f"{n.get('title') or ''}\n{n['text']}" for n in needs]

    def report(label, done, total):
        if done == total:
            print(f"  {label}：{total:,}", flush=True)

    print("1. 有标注的开发集（full 方法；各自的语料）")
    for eval_set in (kw, goal):
        with EvalRun(eval_set, settings, on_progress=report) as run:
            tok = run.ctx.indexes.tokenizer
            counts = [len(set(tok.query_tokens(q.text))) for q in eval_set.queries]
            print(f"  {eval_set.name}：{len(counts)} 条查询，不同词元 中位 {statistics.median(counts):.0f}，"
                  f"最多 {max(counts)}；" + "，".join(f"超过 {c} 的 {sum(n > c for n in counts)} 条" for c in caps))
            for cap in [None, *caps]:
                figures = run.evaluate(EvalOptions(weights=replace(DEFAULT_WEIGHTS, lexical_terms=cap)))["overall"]
                print(f"  {eval_set.name} 上限 {cap or '无'}：R@10 {figures['recall@10']:.4f}，"
                      f"nDCG@10 {figures['ndcg@10']:.4f}", flush=True)
            if eval_set is goal:
                _agreement(run, need_texts, caps)
    return 0


if __name__ == "__main__":
    sys.exit(main())
