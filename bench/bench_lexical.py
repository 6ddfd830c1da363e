"""The lexical (BM25) channel at 10^5 and 10^6 documents: build, query, write, merge, memory.

    python bench/bench_lexical.py                       # 100k and 1M
    python bench/bench_lexical.py --sizes 100000

Documents recombine real abstract sentences (as bench/synthetic.py does); each
pooled sentence is tokenised once with the service's tokenizer and a document's
tokens are its sentences' tokens, so a million documents need no million jieba
calls. Queries are real needs (long: ~240 distinct terms) and keyword queries
(short), timed separately. Each query is timed in every mode, in rotated order so
all see the same machine load: the uncapped query (``query`` → ``top`` → ``of``,
pruned where it pays), the full pass over every posting (``_full_scores``
first), and, with ``--max-terms``, the query capped at its most selective terms
(``Weights.lexical_terms``, a harness option). Prints medians and percentiles;
each mode's first query after the build and after the writes is printed apart,
as a worker's warm-up takes it before serving. The delta is merged on another
thread while long queries are timed, to show whether they wait for the merge.
Nothing here asserts a time.
"""
from __future__ import annotations

import argparse
import gc
import json
import random
import statistics
import sys
import threading
import time
from pathlib import Path

import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import synthetic  # noqa: E402
from embeddings.lexical import LexicalIndex  # noqa: E402
from matcher.textutil import split_sentences  # noqa: E402
from matcher.tokens import TermTokenizer  # noqa: E402


def _pct(values: list[float], p: int) -> float:
    return statistics.quantiles(values, n=100)[p - 1] if len(values) > 2 else max(values)


def _rss_mb() -> float:
    return psutil.Process().memory_info().rss / 2**20


def sentence_pool(tok: TermTokenizer, pool_size: int = 4000) -> list[list[list[str]]]:
    """Token lists of each pooled abstract's sentences (tokenised once)."""
    abstracts = synthetic._abstracts()[:pool_size]
    sentences = [[tok.tokens(s) for s in split_sentences(a)] for a in abstracts]
    return [s for s in sentences if s]


def _documents(sentences, n: int, rng: random.Random):
    for _ in range(n):
        a = sentences[rng.randrange(len(sentences))]
        b = sentences[rng.randrange(len(sentences))]
        toks = [t for s in a for t in s]
        if rng.random() < 0.5:
            toks += [t for s in b[: rng.randint(1, 3)] for t in s]
        yield toks


def bench(size: int, queries: dict[str, list[list[str]]], pool, seed: int = 1, k: int = 100,
          max_terms: int | None = None) -> None:
    rng = random.Random(seed)
    gc.collect()
    before = _rss_mb()
    index = LexicalIndex()
    started = time.perf_counter()
    batch_ids, batch = [], []
    with index.bulk():
        for i, toks in enumerate(_documents(pool, size, rng)):
            batch_ids.append(i)
            batch.append(toks)
            if len(batch) == 5000:
                index.upsert(batch_ids, batch)
                batch_ids, batch = [], []
        if batch:
            index.upsert(batch_ids, batch)
    build_s = time.perf_counter() - started
    gc.collect()
    memory = _rss_mb() - before
    print(f"\n{size:,} 篇：批量建索引 {build_s:.1f} s（不含分词），内存约 {memory:.0f} MB，"
          f"词表 {len(index._vocab):,}，倒排项 {index._base.nnz:,}")

    modes = {"剪枝": (None, False), "全量": (None, True)}
    if max_terms:
        modes[f"限 {max_terms} 词"] = (max_terms, False)

    def one(index: LexicalIndex, q: list[str], others: list[int], cap: int | None, full: bool) -> float:
        t = time.perf_counter()
        scores = index.query(q, max_terms=cap)
        if full:
            scores._full_scores()  # the pass over every posting that each query made before pruning
        top = scores.top(k)
        scores.of([i for i, _ in top] + others)
        return (time.perf_counter() - t) * 1000

    def timed_queries(index: LexicalIndex, label: str) -> None:
        names = list(modes)
        # A worker's first query after start-up or a write pays one-off costs (numba loading its compiled kernel,
        # the index's lazily built arrays) that the service's warm-up takes before it serves: shown, not timed.
        first = {name: one(index, next(iter(queries.values()))[0], [], *modes[name]) for name in names}
        print(f"  首次查询（不计入下列分位数）{label}：" + "；".join(f"{name} {ms:.1f} ms" for name, ms in first.items()))
        for kind, qs in queries.items():
            lat = {name: [] for name in names}
            for n, q in enumerate(qs):
                others = [rng.randrange(size) for _ in range(50)]
                for name in names[n % len(names):] + names[:n % len(names)]:  # rotated: same load for each
                    lat[name].append(one(index, q, others, *modes[name]))
            print(f"  {kind}查询 {len(qs)} 条（前 {k} + 50 个其他候选的分数）{label}：" + "；".join(
                f"{name} p50 {statistics.median(v):.1f} ms，p95 {_pct(v, 95):.1f} ms，p99 {_pct(v, 99):.1f} ms"
                for name, v in lat.items()))

    timed_queries(index, "仅主段")
    writes = []
    docs = list(_documents(pool, 2000, rng))
    for n, toks in enumerate(docs):
        t = time.perf_counter()
        index.upsert([rng.randrange(size) if n % 2 else size + n], [toks])
        writes.append((time.perf_counter() - t) * 1000)
    removes = []
    for _ in range(500):
        t = time.perf_counter()
        index.remove([rng.randrange(size)])
        removes.append((time.perf_counter() - t) * 1000)
    print(f"  单条写入：中位 {statistics.median(writes):.3f} ms，p99 {_pct(writes, 99):.3f} ms；"
          f"单条删除：中位 {statistics.median(removes):.3f} ms（增量段 {index.delta_size} 篇，未触发全量重建）")
    timed_queries(index, f"主段 + 增量段 {index.delta_size} 篇")
    # The merge on a thread of its own, as a serving index runs it, with long queries asked meanwhile: a query that
    # waited for the whole merge would show here as a maximum of about the merge's time.
    spent: list[float] = []

    def merge() -> None:
        t = time.perf_counter()
        index.merge()
        spent.append(time.perf_counter() - t)

    merging = threading.Thread(target=merge)
    merging.start()
    long_queries, during = next(iter(queries.values())), []
    while merging.is_alive():
        during.append(one(index, long_queries[len(during) % len(long_queries)], [], None, False))
    merging.join()
    print(f"  合并增量段（向量化，O(倒排项)，另一线程）：{spent[0]:.2f} s，触发阈值：增量超过 max(4096, 主段 5%)；"
          f"其间长查询 {len(during)} 条" + (f"，p50 {statistics.median(during):.1f} ms，p95 {_pct(during, 95):.1f} ms，"
                                      f"最长 {max(during):.1f} ms" if during else ""))
    del index
    gc.collect()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--queries", type=int, default=200, help="queries of each kind")
    parser.add_argument("--k", type=int, default=100, help="top-k asked of each query")
    parser.add_argument("--max-terms", type=int, default=0,
                        help="also time queries capped at this many most selective terms (Weights.lexical_terms)")
    args = parser.parse_args()
    tok = TermTokenizer()
    rows = [json.loads(line) for line in (synthetic.EVAL / "bdci2019_needs.jsonl").open(encoding="utf-8")]
    needs = [(r.get("title") or "") + r["text"] for r in rows]
    keywords = [json.loads(line)["text"]
                for line in (synthetic.EVAL / "csl_kw_hard" / "queries.jsonl").open(encoding="utf-8")]
    queries = {}
    for kind, texts in (("长（需求全文）", needs), ("短（关键词）", keywords)):
        random.Random(2).shuffle(texts)
        queries[kind] = [tok.tokens(t) for t in texts[: args.queries]]
        print(f"{kind}查询：{len(queries[kind])} 条，平均 {np.mean([len(set(q)) for q in queries[kind]]):.0f} 个不同词元")
    pool = sentence_pool(tok)
    for size in (int(s) for s in args.sizes.split(",")):
        bench(size, queries, pool, k=args.k, max_terms=args.max_terms or None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
