"""Serving latency and throughput over HTTP on loopback, with a real load generator.

    python bench/bench_serving.py                    # 100k outcomes (built once under data/bench/100000)
    python bench/bench_serving.py --size 1000000     # 1M outcomes
    python bench/bench_serving.py --code /tmp/orig   # serve another checkout of the code (before/after)
    python bench/bench_serving.py --only search --page-cache on   # free-text search alone

Builds (or reuses, keyed by size) a synthetic service (bench/synthetic.py), opens its
indexes once in this process so the files exist (timing the rebuild from stored
vectors), starts ``matcher serve --workers 2``, signs in as the bench admin and
drives two endpoints with ``wrk`` (Lua script: auth header, cycling need ids or
POST bodies), or with an asyncio + httpx generator when wrk is missing (it then says that its figures
are not comparable: the generator shares the cores it measures):

- stored-need matches: GET /needs/{id}/matches, twice: with the match-page cache off (every
  request ranks and explains: a first view; it cycles every need of the service, so a worker has
  forgotten a need's tokens by the time it comes back) and on (the default; over a sample of
  ``--needs``, warmed first, so it measures repeated views between writes);
- stored-need matches after a write (``--page-cache on`` or ``both``): a need is edited, the
  benchmark waits until every worker's page warmer has re-made the pages it had been asked
  (``/health`` → ``match_pages``), prints how long that took, and loads the same needs again;
- free-text search: POST /search over real need texts. Each request's text carries a tag no
  earlier request had (``--search-texts fresh``, the default), so its query is really encoded,
  in the shared encoder process that ``matcher serve --workers N`` starts; ``repeated`` cycles
  the 300 texts as before 2026-11-30, when most queries' vectors came from the workers' cache.

For each it prints p50/p95/p99 and requests/s at several concurrencies (the
highest saturates both workers), the targets beside them, how wrk's connections landed
on the workers (``ss``: ``2+2`` or ``4``, which halves requests/s), and the RSS of each
worker and of the shared encoder process.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import synthetic  # noqa: E402
from bench.local_services import free_port  # noqa: E402

# Replaced in each search body by a tag unique to the request (``--search-texts fresh``).
FRESH = "@@FRESH@@"
TARGETS = {"matches": {"p95_ms": 30.0, "rps": 200.0}, "search": {"p95_ms": 80.0, "rps": None}}
TARGETS_1M = {"matches": {"p95_ms": 100.0, "rps": None}, "search": {"p95_ms": None, "rps": None}}

_LUA = r"""
-- One request line per row (paths or JSON bodies), read from files: Lua string escapes cannot carry UTF-8 safely.
local paths, bodies = {}, {}
for line in io.lines("%(paths)s") do if #line > 0 then table.insert(paths, line) end end
for line in io.lines("%(bodies)s") do if #line > 0 then table.insert(bodies, line) end end
local n = 0
-- Each wrk thread gets its own number, so that fresh search texts never repeat across threads.
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
wrk.headers["Authorization"] = "Bearer %(token)s"
wrk.headers["Content-Type"] = "application/json"
request = function()
  n = n + 1
  if #bodies > 0 then
    local body = bodies[(n %% #bodies) + 1]
    -- A fresh tag per request: the text was never encoded before, so its encoding is part of the request.
    body = string.gsub(body, "%(marker)s", "%(run)s" .. tostring(tid or 0) .. "x" .. tostring(n))
    return wrk.format("POST", "/search", nil, body)
  end
  return wrk.format("GET", paths[(n %% #paths) + 1])
end
local bad = 0
response = function(status, headers, body)
  if status ~= 200 then bad = bad + 1 end
end
done = function(summary, latency, requests)
  io.write(string.format('RESULT {"requests": %%d, "duration_us": %%d, "errors": %%d, "non200": %%d, ' ..
    '"p50": %%d, "p95": %%d, "p99": %%d}\n', summary.requests, summary.duration,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout + summary.errors.status,
    bad, latency:percentile(50), latency:percentile(95), latency:percentile(99)))
end
"""


def search_queries(n: int, seed: int = 5, typed_only: bool = False) -> list[str]:
    """``n`` short real search texts, the same for a seed: a need's title and first 120 characters, or a dev query.

    ``typed_only``: the dev queries alone (a few words, as a broker types them; 22 characters on average
    against 72 for the mix).
    """
    texts = []
    if not typed_only:
        rows = [json.loads(line) for line in (synthetic.EVAL / "bdci2019_needs.jsonl").open(encoding="utf-8")]
        texts = [(r.get("title") or "") + "：" + r["text"][:120] for r in rows]
    for path in sorted(synthetic.EVAL.glob("*/queries.jsonl")):
        texts += [json.loads(line)["text"] for line in path.open(encoding="utf-8")]
    random.Random(seed).shuffle(texts)
    return texts[:n]


_PREPARE = """
import json, resource, time
from sqlalchemy import insert, select
from matcher.settings import Settings
from matcher.context import build_context
from matcher.models import IndexChange, Outcome
t = time.perf_counter()
ctx = build_context(Settings())
out = {"open_s": time.perf_counter() - t, "encoded": ctx.encoder.encoded_count,
       "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
if %(sync)d:
    # The cost of catching up with other workers' writes: 1,000 logged changes applied by one sync().
    with ctx.sessions() as session:
        ids = list(session.scalars(select(Outcome.id).order_by(Outcome.id.desc()).limit(1000)))
        session.execute(insert(IndexChange), [{"side": "outcomes", "record_id": i} for i in ids])
        session.commit()
    t = time.perf_counter()
    out["sync_n"] = ctx.indexes.sync()
    out["sync_s"] = time.perf_counter() - t
ctx.close()
print(json.dumps(out))
"""


def prepare_indexes(service: synthetic.BenchService, code: Path, sync: bool = True) -> None:
    """Open the service's indexes (rebuilt from stored vectors if no files), time a 1k-change sync, save.

    Run twice: the first open may rebuild, the second shows a start from files.
    """
    env = {**service.env(), "PYTHONPATH": str(code)}
    for attempt in range(2):
        out = subprocess.run([sys.executable, "-c", _PREPARE % {"sync": int(sync and attempt == 1)}], env=env,
                             cwd=code, check=True, capture_output=True, text=True).stdout
        got = json.loads(out.strip().splitlines()[-1])
        print(f"打开索引（{'首次：无文件则由已存向量重建' if attempt == 0 else '从索引文件'}）：{got['open_s']:.1f} s"
              f"（含模型加载），新编码 {got['encoded']} 条，峰值内存 {got['maxrss_mb']:.0f} MB")
        if got["encoded"]:
            print("  注意：有文本被重新编码，合成向量的模型编号与服务不一致？")
        if "sync_s" in got:
            print(f"同步 1,000 条变更（sync：读记录、取缓存向量、分词、更新两种索引）：{got['sync_s']:.2f} s")


class Server:
    """``matcher serve --workers N`` on loopback, started and stopped by this benchmark."""

    def __init__(self, service: synthetic.BenchService, code: Path, workers: int, extra_env: dict | None = None):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {**service.env(), "PYTHONPATH": str(code), **(extra_env or {})}
        self.log = tempfile.NamedTemporaryFile("w+", prefix="bench_serving_", suffix=".log", delete=False)
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from matcher.cli import main; main()", "serve", "--port", str(self.port),
             "--workers", str(workers)], env=env, cwd=code, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True)
        started = time.perf_counter()
        while True:
            if self.proc.poll() is not None:
                raise SystemExit(f"服务启动失败，日志：{self.log.name}")
            try:
                if httpx.get(self.base + "/health", timeout=2).status_code == 200 and self._workers_ready(workers):
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        self.ready_s = time.perf_counter() - started
        self.settled_s = self._wait_settled(workers, started)

    def _wait_settled(self, workers: int, started: float) -> float:
        """Seconds from start until every worker has done its start-up work in the background: filled its
        sentence memory (code that has one) and made the pages its warmer set out to make.

        Measuring before would charge a round with that work (a search round at start ran 1.6× slower).
        /health answers from whichever worker takes the connection: 4 × workers answers in a row must agree.
        """
        in_a_row = 0
        while in_a_row < 4 * workers:
            health = httpx.get(self.base + "/health", timeout=10).json()
            settled = (health.get("sentence_memory", {}).get("filled", True)
                       and health.get("outcome_table", {}).get("filled", True) and not health["match_pages"]["to_remake"])
            in_a_row = in_a_row + 1 if settled else 0
            if not settled:
                time.sleep(0.5)
        return time.perf_counter() - started

    def _workers_ready(self, workers: int) -> bool:
        # Every worker opens its indexes before serving; wait until all have said so.
        text = Path(self.log.name).read_text(errors="replace")
        return text.count("Application startup complete") >= workers

    def encoder_pid(self) -> int | None:
        """The shared encoder process's pid, as ``matcher serve`` logs it (None: each worker loads the model)."""
        match = re.search(r"共享向量编码进程就绪（pid (\d+)）", Path(self.log.name).read_text(errors="replace"))
        return int(match.group(1)) if match else None

    def worker_rss_mb(self) -> tuple[list[tuple[float, float]], float | None]:
        """(RSS, of which file-backed) of each API worker, and the RSS of the shared encoder process if any.

        The file-backed part is mapped libraries and files (numba's LLVM alone is ~100 MB), which the
        kernel shares between the workers; the rest is each worker's own memory.
        """
        import psutil

        try:
            children = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.Error:
            return [], None
        rss, encoder, encoder_pid = [], None, self.encoder_pid()
        for child in children:
            try:
                mb = child.memory_info().rss / 2**20
                if child.pid == encoder_pid:
                    encoder = mb
                elif "multiprocessing" in " ".join(child.cmdline()) and mb > 100:
                    rss.append((mb, _rss_file_mb(child.pid)))
            except psutil.Error:
                pass
        return sorted(rss), encoder

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _rss_file_mb(pid: int) -> float:
    """The file-backed part of a process's RSS (``RssFile`` in /proc), 0 where it cannot be read."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("RssFile:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def sign_in(base: str, service: synthetic.BenchService) -> str:
    r = httpx.post(base + "/auth/token", data={"username": service.username, "password": service.password})
    r.raise_for_status()
    return r.json()["access_token"]


def _run_tag() -> str:
    """Letters that make this run's fresh search texts differ from every earlier run's."""
    return "".join(random.choice("abcdefghjkmnpqrstuvwxyz") for _ in range(6))


def search_bodies(texts: list[str], fresh: bool) -> list[str]:
    """POST /search bodies for ``texts``; ``fresh``: each request's text gets a tag no request had before."""
    return [json.dumps({"text": t + (f" {FRESH}" if fresh else ""), "target": "outcomes", "k": 10}, ensure_ascii=False)
            for t in texts]


# The Python generator takes CPU from the two cores it measures: in back-to-back runs on one Zen 4 (2026-12-07)
# it served 94 repeated views a second at one connection where wrk saw 265, and put a search's p95 at 60 ms, not 48.
HTTPX_CAVEAT = ("注意：未找到 wrk，改用 Python 压测（asyncio + httpx）。它与被测服务共用这台机器的核心，"
                "延迟偏高、吞吐偏低，不能与用 wrk 测得的数字或目标直接比较；请先安装 wrk（Debian 软件包 wrk）。")


def load_generator(choice: str):
    """The function that runs a load, and the line naming it: wrk when asked or found, else the Python generator,
    whose line says that its figures cannot be compared with wrk's or with the targets."""
    if choice == "wrk" or (choice == "auto" and shutil.which("wrk")):
        return run_wrk, "压测工具：wrk（Lua 脚本）"
    return run_httpx, "压测工具：asyncio + httpx\n" + HTTPX_CAVEAT


def run_wrk(base: str, token: str, paths: list[str], bodies: list[str], connections: int, seconds: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "paths.txt").write_text("\n".join(paths) + "\n", encoding="utf-8")
        (Path(tmp) / "bodies.txt").write_text("\n".join(bodies) + "\n", encoding="utf-8")
        script = Path(tmp) / "load.lua"
        script.write_text(_LUA % {"paths": Path(tmp) / "paths.txt", "bodies": Path(tmp) / "bodies.txt",
                                  "token": token, "marker": FRESH, "run": _run_tag()}, encoding="utf-8")
        wrk = subprocess.Popen(["wrk", "-t", str(min(connections, 2)), "-c", str(connections), "-d", f"{seconds}s",
                                "--timeout", "10s", "-s", str(script), base], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
        time.sleep(min(2.0, seconds / 2))
        landing = connection_landing(base)
        out = wrk.communicate()[0]
    lines = [line for line in out.splitlines() if line.startswith("RESULT ")]
    if not lines:
        raise SystemExit(f"wrk 没有给出结果：\n{out}")
    got = json.loads(lines[0][7:])
    return {"rps": got["requests"] / (got["duration_us"] / 1e6), "p50": got["p50"] / 1000, "p95": got["p95"] / 1000,
            "p99": got["p99"] / 1000, "errors": got["errors"] + got["non200"], "requests": got["requests"],
            "landing": landing}


def connection_landing(base: str) -> str:
    """How the open client connections to ``base`` are spread over the server's processes, e.g. ``2+2``.

    uvicorn's workers share one listening socket, so a handful of keep-alive connections may all land on
    one worker (measured: 4 connections on one worker halve the requests/s of a 2 + 2 spread); a row is
    read with its spread beside it. Empty where ``ss`` is missing.
    """
    port = base.rsplit(":", 1)[1]
    try:
        listing = subprocess.run(["ss", "-tnpH", "state", "established", f"( sport = :{port} )"],
                                 capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""
    counts = sorted(Counter(re.findall(r"pid=(\d+)", listing)).values(), reverse=True)
    return "+".join(map(str, counts))


def run_httpx(base: str, token: str, paths: list[str], bodies: list[str], connections: int, seconds: int) -> dict:
    """The fallback generator: ``connections`` closed-loop clients for ``seconds``."""

    run = _run_tag()

    async def main() -> dict:
        latencies, errors, n = [], 0, 0
        deadline = time.perf_counter() + seconds
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=10,
                                     limits=httpx.Limits(max_connections=connections)) as client:
            async def worker(offset: int) -> None:
                nonlocal errors, n
                i = offset
                while time.perf_counter() < deadline:
                    i += connections
                    t = time.perf_counter()
                    if bodies:
                        body = bodies[i % len(bodies)].replace(FRESH, f"{run}x{i}")
                        r = await client.post("/search", content=body.encode())
                    else:
                        r = await client.get(paths[i % len(paths)])
                    latencies.append((time.perf_counter() - t) * 1000)
                    errors += r.status_code != 200
                    n += 1

            started = time.perf_counter()
            await asyncio.gather(*(worker(c) for c in range(connections)))
            elapsed = time.perf_counter() - started
        q = statistics.quantiles(latencies, n=100)
        return {"rps": n / elapsed, "p50": q[49], "p95": q[94], "p99": q[98], "errors": errors, "requests": n}

    return asyncio.run(main())


def warm_up(base: str, token: str, paths: list[str], bodies: list[str]) -> None:
    """A few requests first, so lazy imports and first-use costs do not count."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    with httpx.Client(base_url=base, headers=headers, timeout=120) as client:
        for p in paths:
            client.get(p).raise_for_status()
        for b in bodies:
            client.post("/search", content=b).raise_for_status()


def measure_after_write(run, server, token: str, paths: list[str], other_need: int, concurrency: list[int],
                        seconds: int, target: dict, write: str) -> None:
    """Write, wait for the workers' page warmers to re-make what went stale, then load ``paths`` again.

    ``write``: "need" edits a need outside ``paths`` (it makes no page of ``paths`` stale), "outcome"
    edits an outcome (it makes every need's page stale). The server must remember at least
    ``len(paths)`` recipes per worker (``MATCHER_MATCH_PAGE_WARM``).
    """
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=server.base, headers=headers, timeout=60) as client:
        if write == "need":
            path = f"/needs/{other_need}"
        else:
            path = f"/outcomes/{client.get('/outcomes', params={'limit': 1}).json()['items'][0]['id']}"
        title = client.get(path).json()["title"]
        started = time.perf_counter()
        client.patch(path, json={"title": title + "（修订）"}).raise_for_status()
        version = client.get("/health").json()["index_version"]
        # /health lands on either worker: eight answers in a row with nothing left to re-make covers both.
        in_a_row = 0
        while in_a_row < 8 and time.perf_counter() - started < 600:
            pages = client.get("/health").json()
            done = pages["index_version"] >= version and pages["match_pages"]["to_remake"] == 0 \
                and pages["match_pages"]["held"] >= len(paths)
            in_a_row = in_a_row + 1 if done else 0
            time.sleep(0.1)
        warmed_s = time.perf_counter() - started
    what = "改一条不在轮询中的需求（只有它自己的页面过期）" if write == "need" else "改一条成果（所有需求的页面过期）"
    print(f"\n写入后的查看（{what}；{warmed_s:.1f} s 后两个进程都持有这 {len(paths)} 个页面，"
          f"含轮询 /health 的时间与 1 s 静默期；MATCHER_MATCH_PAGE_WARM={len(paths)}）")
    for c in concurrency:
        got = run(server.base, token, paths, [], c, seconds)
        _print_row(c, got, target)


def _print_row(c: int, got: dict, target: dict) -> None:
    print(f"  并发 {c:>2}: p50 {got['p50']:6.1f} ms  p95 {got['p95']:6.1f} ms"
          f"{_fmt_target(target['p95_ms'], 'ms', True)}  p99 {got['p99']:6.1f} ms  "
          f"{got['rps']:6.1f} 请求/s{_fmt_target(target['rps'], '请求/s', False)}  "
          f"（{got['requests']} 次，错误 {got['errors']}"
          + (f"；连接落在各工作进程：{got['landing']}" if got.get("landing") else "") + "）", flush=True)


def _fmt_target(value: float | None, unit: str, le: bool) -> str:
    if value is None:
        return ""
    return f"（目标 {'≤' if le else '≥'} {value:g} {unit}）"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=100_000, help="成果条数")
    parser.add_argument("--data-root", type=Path, default=synthetic.REPO / "data" / "bench")
    parser.add_argument("--database-url", default=None, help="PostgreSQL 地址（默认 SQLite 文件）")
    parser.add_argument("--code", type=Path, default=synthetic.REPO, help="被测代码目录（对比改动前后）")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seconds", type=int, default=10, help="每档并发的压测时长")
    parser.add_argument("--concurrency", default="1,2,4,8", help="并发连接数，逗号分隔；最高一档应使两个进程饱和")
    parser.add_argument("--needs", type=int, default=500, help="轮询的需求数")
    parser.add_argument("--generator", choices=("auto", "wrk", "httpx"), default="auto")
    parser.add_argument("--page-cache", choices=("both", "off", "on"), default="both",
                        help="匹配页面缓存：先关后开各测一轮（默认），或只测一种")
    parser.add_argument("--search-texts", choices=("fresh", "repeated"), default="fresh",
                        help="检索文本：每次请求都是新文本（默认，含查询编码），或循环 300 条（查询向量多已缓存）")
    parser.add_argument("--search-length", choices=("mixed", "typed"), default="mixed",
                        help="检索文本长度：需求标题加正文开头与开发集查询混合（默认，平均 72 字），或只用开发集查询（键入的几个词，平均 22 字）")
    parser.add_argument("--only", choices=("matches", "search"), default=None,
                        help="只测已存需求的匹配或只测自由文本检索（默认两者都测）")
    args = parser.parse_args()

    service = synthetic.load_or_build(args.data_root / str(args.size), args.size, args.database_url)
    prepare_indexes(service, args.code.resolve())
    run, named = load_generator(args.generator)
    print(f"{named}；被测代码：{args.code}")
    targets = TARGETS if args.size <= 100_000 else TARGETS_1M
    concurrency = [int(x) for x in args.concurrency.split(",")]
    needs = random.Random(11).sample(service.need_ids, min(args.needs, len(service.need_ids)))
    paths = [f"/needs/{i}/matches" for i in needs]
    # Without the page cache, every need of the service in turn (2,000): a need comes back to a worker only after
    # ~1,000 others, when the worker's memory of query texts' tokens (512, matcher.tokens) no longer holds it, so
    # the row measures first views. Cycling the 500 sampled needs, later passes found their tokens remembered.
    first_view_paths = [f"/needs/{i}/matches" for i in random.Random(11).sample(service.need_ids, len(service.need_ids))]
    bodies = search_bodies(search_queries(300, typed_only=args.search_length == "typed"), args.search_texts == "fresh")
    # Without the page cache every request ranks and explains (what a need's first view after a write costs);
    # with it (the default) a repeated view between writes is served from the worker's memory.
    modes = {"off": ("0", "页面缓存关闭：每次都排序并解释（相当于写入后的首次查看）"),
             "on": (None, "页面缓存开启（默认）：两次写入之间重复查看同一需求")}
    for mode in (("off", "on") if args.page_cache == "both" else (args.page_cache,)):
        mb, title = modes[mode]
        # Every sampled need's page is remembered for re-making after a write (the default is the last 200 asked).
        env = {"MATCHER_MATCH_PAGE_CACHE_MB": mb} if mb is not None else {"MATCHER_MATCH_PAGE_WARM": str(len(needs))}
        server = Server(service, args.code.resolve(), args.workers, env)
        print(f"\n== {title} ==\n服务就绪（{args.workers} 个工作进程，从索引文件启动）：{server.ready_s:.1f} s"
              + f"；后台启动工作（句向量内存装载、页面预热）完成：{server.settled_s:.1f} s")
        try:
            token = sign_in(server.base, service)
            kinds = [("matches", paths if mode == "on" else first_view_paths, [])] + (
                [("search", [], bodies)] if mode == "on" or args.page_cache == "off" else [])
            kinds = [kind for kind in kinds if args.only in (None, kind[0])]
            for name, p, b in kinds:
                label = "已存需求的匹配 GET /needs/{id}/matches" if name == "matches" else (
                    "自由文本检索 POST /search（" + ("每次都是新文本：含查询编码" if args.search_texts == "fresh"
                                                   else "循环同一批文本：查询向量多已缓存") + "）")
                # Warm-up: first-use costs (lazy imports, the first model call) are not what is measured.
                warm_up(server.base, token, p[:10], b[:10])
                if mode == "on" and p:
                    # Each worker keeps its own pages and wrk's connections land on either: load until every
                    # sampled need has been viewed through both, so the run measures repeated views. A cached
                    # page costs a few ms and a miss tens: a round whose p95 is under 30 ms has (almost) none.
                    rounds = 0
                    while rounds < 10:
                        got = run(server.base, token, p, b, 2, max(5, args.seconds))
                        rounds += 1
                        if got["p95"] < 30:
                            break
                    print(f"  （预热：{rounds} 轮并发 2 的压测，末轮 p95 {got['p95']:.1f} ms，"
                          f"两个进程都已缓存这 {len(p)} 个需求的页面）")
                print(f"\n{label}  （{args.size:,} 条成果，轮询 {len(p) or len(b)} 个不同请求）")
                t = targets[name]
                for c in concurrency:
                    got = run(server.base, token, p, b, c, args.seconds)
                    _print_row(c, got, t)
                if mode == "on" and name == "matches":
                    others = [i for i in service.need_ids if i not in set(needs)]
                    for write in ("need", "outcome"):
                        measure_after_write(run, server, token, p, others[0], concurrency, args.seconds, t, write)
            rss, encoder_rss = server.worker_rss_mb()
            print(f"\n工作进程内存（RSS）：{'、'.join(f'{r:.0f} MB（其中文件映射 {f:.0f} MB）' for r, f in rss) or '未取得'}"
                  f"（目标 ≤ 1536 MB）" + (f"；共享编码进程 {encoder_rss:.0f} MB（每台机器一个）" if encoder_rss else ""))
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
