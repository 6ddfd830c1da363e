"""The lexical (BM25) channel at 10^5 and 10^6 documents: build, query, write, merge, memory.

    python bench/bench_lexical.py                       # 100k and 1M
    python bench/bench_lexical.py --sizes 100000

Documents recombine real abstract sentences (as bench/synthetic.py does); each
pooled sentence is tokenised once with the service's tokenizer and a document's
tokens are its sentences' tokens, so a million documents need no million jieba
calls. Queries are real needs and keyword queries. Prints medians and
percentiles; nothing here asserts a time.
"""
from __future__ import annotations

import argparse
import gc
import json
import random
import statistics
import sys
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


def bench(size: int, queries: list[list[str]], pool, seed: int = 1) -> None:
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

    def timed_queries(index: LexicalIndex, label: str) -> None:
        lat = []
        for q in queries:
            t = time.perf_counter()
            scores = index.query(q)
            top = scores.top(100)
            scores.of([i for i, _ in top] + [rng.randrange(size) for _ in range(50)])
            lat.append((time.perf_counter() - t) * 1000)
        print(f"  查询（前 100 + 150 个候选的分数）{label}：p50 {statistics.median(lat):.1f} ms，"
              f"p95 {_pct(lat, 95):.1f} ms，p99 {_pct(lat, 99):.1f} ms")

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
    t = time.perf_counter()
    index.merge()
    print(f"  合并增量段（向量化，O(倒排项)）：{time.perf_counter() - t:.2f} s；"
          f"触发阈值：增量超过 max(4096, 主段 5%)")
    del index
    gc.collect()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    tok = TermTokenizer()
    rows = [json.loads(line) for line in (synthetic.EVAL / "bdci2019_needs.jsonl").open(encoding="utf-8")]
    texts = [(r.get("title") or "") + r["text"] for r in rows]
    texts += [json.loads(line)["text"] for line in (synthetic.EVAL / "csl_kw_hard" / "queries.jsonl").open(encoding="utf-8")]
    random.Random(2).shuffle(texts)
    queries = [tok.tokens(t) for t in texts[: args.queries]]
    print(f"查询：{len(queries)} 条真实需求/关键词查询，平均 {np.mean([len(q) for q in queries]):.0f} 个词元")
    pool = sentence_pool(tok)
    for size in (int(s) for s in args.sizes.split(",")):
        bench(size, queries, pool)
    return 0


if __name__ == "__main__":
    sys.exit(main())
