"""The shared encoder process under searches from several workers at once: latency and how calls ran.

    python bench/bench_shared_encoder.py                       # 1, 2 and 4 clients, 60 texts each
    python bench/bench_shared_encoder.py --clients 1,4 --texts 100 --backend onnx

Starts the shared encoder process of ``matcher serve --workers N`` (``SharedEncoderProcess``) and, for
each number of clients, that many processes that each encode a search text (a new one every time, from
bench_serving.py's search load), then spend ``--rank-ms`` of CPU as a worker ranking its results would,
then ask again. Prints the encode latency p50 / p95 per round and, from the process's own counters
(``RemoteEncoder.server_info``), how many small calls ran on every core (the machine otherwise idle,
:mod:`embeddings.cpu_load`), beside another (ONNX, :mod:`embeddings.core_slots`) or merged into another's
pass (torch, :mod:`embeddings.encode_queue`). Nothing here asserts a time.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import synthetic  # noqa: E402
from bench.bench_serving import search_queries  # noqa: E402
from embeddings.encoder_service import RemoteEncoder, SharedEncoderProcess  # noqa: E402
from matcher.settings import Settings  # noqa: E402

COUNTERS = ("small_calls_all_cores", "small_calls_side_by_side", "merged_calls")


def _client(address: str, key: bytes, texts: list[str], rank_ms: float, tag: str, out) -> None:
    remote, times = RemoteEncoder(address, key), []
    for n, text in enumerate(texts):
        start = time.perf_counter()
        remote.encode([f"{text} {tag}-{n}"], "query")  # a tag: never a vector from the cache
        times.append((time.perf_counter() - start) * 1000)
        busy_until = time.perf_counter() + rank_ms / 1000
        while time.perf_counter() < busy_until:  # the worker's own CPU work between its calls
            pass
    out.put(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", default="1,2,4", help="同时发请求的客户端数，逗号分隔")
    parser.add_argument("--texts", type=int, default=60, help="每个客户端编码的检索文本数")
    parser.add_argument("--rank-ms", type=float, default=25.0, help="每次编码之间客户端自己的 CPU 时间（模拟排序）")
    parser.add_argument("--backend", default=None, help="编码后端（默认取 MATCHER_EMBEDDING_BACKEND，即 auto）")
    args = parser.parse_args()

    settings = Settings()
    data_dir = synthetic.REPO / "data" if settings.data_dir == Path("data") else settings.data_dir
    process = SharedEncoderProcess(settings.embedding_model, data_dir, args.backend or settings.embedding_backend)
    process.start()
    try:
        info = lambda: RemoteEncoder(process.address, process.authkey).server_info()  # noqa: E731
        first = info()
        print(f"共享编码进程：{first['model_id']}；每个客户端 {args.texts} 条检索文本，两次编码之间自身 CPU {args.rank_ms:.0f} ms")
        texts = search_queries(args.texts)
        for clients in (int(c) for c in args.clients.split(",")):
            before, results = info(), mp.Queue()
            procs = [mp.Process(target=_client, args=(process.address, process.authkey, texts, args.rank_ms,
                                                      f"{time.time_ns()}-{c}", results)) for c in range(clients)]
            for p in procs:
                p.start()
            times = sorted(t for _ in procs for t in results.get())
            for p in procs:
                p.join()
            after = info()
            counts = {k: after.get(k, 0) - before.get(k, 0) for k in COUNTERS}
            p95 = times[min(len(times) - 1, int(0.95 * len(times)))]
            print(f"  {clients} 个客户端：编码 p50 {statistics.median(times):6.1f} ms  p95 {p95:6.1f} ms"
                  f"  （{len(times)} 次；独占全部核心 {counts['small_calls_all_cores']}，"
                  f"并排各占一核 {counts['small_calls_side_by_side']}，并入他人批次 {counts['merged_calls']}）")
    finally:
        process.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
