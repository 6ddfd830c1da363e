"""A stored need's match page made from scratch, in process: what a first view costs without HTTP.

    python bench/bench_cold_match.py                          # 100k outcomes, 150 needs, 2 rounds
    python bench/bench_cold_match.py --code /tmp/base         # the same, alternating with another checkout
    python bench/bench_cold_match.py --profile                # cProfile of the pages, by cumulative time
    python bench/bench_cold_match.py --stages                 # mean ms per stage, timed without a profiler
    python bench/bench_cold_match.py --again-after 75          # ... and the same pages re-made 75 s later
    python bench/bench_cold_match.py --search                 # free-text searches instead, each text new
    python bench/bench_cold_match.py --search --shared-encoder   # ... encoded in a shared encoder process

Uses the synthetic service of bench/bench_serving.py (built once per size under data/bench). Each round
runs in a fresh process per code tree (``PYTHONPATH`` = that tree), fills its sentence memory as a serving
worker does after start (code that has one), makes 20 pages to warm the process up, then times
``make_page`` for needs no earlier run asked: ranking, explanations and serialisation, exactly what a
first view pays. ``--again-after S`` times the same needs again S seconds later, what the
page warmer pays re-making pages after a write (these machines page out file pages left untouched for
about a minute, so the wait decides whether the data comes from memory). Rounds alternate between the trees,
so a busy neighbour slows both alike, and each round starts with the next tree (with a fixed order, two
copies of one tree came out 1.11x apart on 2026-12-01: use a multiple of the number of trees as rounds).
Prints medians and percentiles per tree, their ratio, and the 4 kB pages each page read from the disk
(``/proc/self/io``: the kernel's file cache does not count); nothing here asserts a time.

``--stages`` wraps the page's main steps (:data:`STAGES`: BM25, tokens, vector search, database reads,
explanations...) in wall-clock timers and prints each one's mean ms per page, for this repository's rounds.
cProfile's per-call overhead inflates the many small calls (SQLAlchemy, jieba) relative to compiled ones;
timers on the eighteen functions cost microseconds. Stages nest (``candidates`` holds ``query_tokens``), so they
do not add up to the page.

``--search`` times ``search_text`` instead: the texts of bench_serving.py's search load, each with a tag
no earlier text had, so every query is encoded: by the process's own encoder, or with ``--shared-encoder``
by a shared encoder process started once for the run (as ``matcher serve --workers N`` does), so the local
socket is included; HTTP is not.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import synthetic  # noqa: E402
from bench.bench_serving import prepare_indexes, search_queries  # noqa: E402

_CHILD = r"""
import cProfile, io, json, pstats, sys, time
from sqlalchemy import select
from matcher.context import build_context
from matcher import matching
from matcher.matching import PageRecipe, make_page
from matcher.models import Need
from matcher.schemas import MatchFilters
from matcher.settings import Settings

args = json.loads(sys.argv[1])

def disk_pages():
    # Bytes this process had read from the disk itself (kernel file cache hits not included), in 4 kB pages.
    with open("/proc/self/io") as io_counts:
        for line in io_counts:
            if line.startswith("read_bytes"):
                return int(line.split()[1]) / 4096

stage_ms = {}

def timed_stage(owner, name, label):
    # A wall-clock timer around one function: what the stage costs inside a real page, caches and all.
    inner = getattr(owner, name)

    def timer(*a, **kw):
        start = time.perf_counter()
        try:
            return inner(*a, **kw)
        finally:
            stage_ms[label] = stage_ms.get(label, 0.0) + (time.perf_counter() - start) * 1000

    setattr(owner, name, timer)

if args["stages"]:
    import importlib
    for module, owner, name in args["stages"]:
        target = importlib.import_module(module)
        timed_stage(getattr(target, owner) if owner else target, name, f"{owner + '.' if owner else ''}{name}")

ctx = build_context(Settings())
if hasattr(ctx.indexes, "fill_memory"):
    ctx.indexes.fill_memory()  # as a serving worker does in the background after start
elif hasattr(ctx.indexes, "fill_sentences"):
    ctx.indexes.fill_sentences()
with ctx.sessions() as s:
    ids = list(s.scalars(select(Need.id).order_by(Need.id).offset(args["offset"]).limit(20 + args["needs"])))

def page(need_id):
    with ctx.sessions() as s:
        return make_page(ctx, s, PageRecipe("needs", need_id, 10, MatchFilters(), None))

def search(text):
    with ctx.sessions() as s:
        return matching.search_text(ctx, s, text, "outcomes", 10)  # through the module: --stages may wrap it

if args["texts"]:
    # A tag per text and process: no query vector comes from an earlier round's cache.
    ids = [f"{t} {time.time_ns()}-{n}" for n, t in enumerate(args["texts"])]
    page = search

for i in ids[:20]:
    page(i)
stage_ms.clear()
profile = cProfile.Profile() if args["profile"] else None

def timed(profile=None):
    times, pages = [], []
    for i in ids[20:]:
        if profile:
            profile.enable()
        t, d = time.perf_counter(), disk_pages()
        page(i)
        times.append((time.perf_counter() - t) * 1000)
        pages.append(disk_pages() - d)
        if profile:
            profile.disable()
    return {"ms": times, "pages": pages}

out = {"first": timed(profile)}
if args["stages"]:
    out["stages"] = {label: ms / len(out["first"]["ms"]) for label, ms in stage_ms.items()}
if args["again_after"]:
    # The page warmer's case: the same pages re-made a while later (after a write), data read once already.
    time.sleep(args["again_after"])
    out["again"] = timed()
if profile:
    text = io.StringIO()
    pstats.Stats(profile, stream=text).sort_stats("cumulative").print_stats(40)
    out["profile"] = text.getvalue()
ctx.close()
print("RESULT " + json.dumps(out))
"""


# (module, class or "" for a module function, function): the steps --stages times. Patched where they are
# looked up: matching.py calls its own helpers by module global, and methods through their class.
STAGES = [
    ("matcher.matching", "", "readable_need"),
    ("matcher.matching", "", "rank_scored"),
    ("matcher.retrieval", "Retriever", "candidates"),
    ("matcher.tokens", "TermTokenizer", "query_tokens"),
    ("embeddings.lexical", "LexicalIndex", "query"),
    ("embeddings.lexical", "LexicalScores", "top"),
    ("matcher.search_index", "SearchIndexes", "search"),
    ("matcher.matching", "", "_candidate_records"),
    ("matcher.retrieval", "Retriever", "score"),
    ("matcher.matching", "", "_best"),
    ("matcher.matching", "", "_load"),
    ("matcher.matching", "", "_pairings_for"),
    ("matcher.matching", "", "explained"),
    ("matcher.explain", "", "related_terms"),
    ("matcher.explain", "", "best_sentences"),
    ("matcher.matching", "", "match_need"),
    ("matcher.matching", "", "search_text"),
    ("embeddings.cached_encoder", "CachedEncoder", "encode"),
]


def run_round(service: synthetic.BenchService, code: Path, needs: int, profile: bool, texts: list[str],
              encoder_env: dict[str, str], offset: int = 0, again_after: float = 0, stages: bool = False) -> dict:
    env = {**service.env(), **encoder_env, "PYTHONPATH": str(code)}
    payload = {"needs": needs, "profile": profile, "texts": texts, "offset": offset, "again_after": again_after,
               "stages": STAGES if stages else []}
    done = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(payload, ensure_ascii=False)],
                          env=env, cwd=code, capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if not lines:
        raise SystemExit(f"子进程失败（{code}）：\n{done.stderr[-3000:]}")
    return json.loads(lines[-1][7:])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=100_000, help="成果条数")
    parser.add_argument("--data-root", type=Path, default=synthetic.REPO / "data" / "bench")
    parser.add_argument("--needs", type=int, default=150, help="每轮计时的需求数（各不相同，进程内首次）")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--code", type=Path, action="append", default=[],
                        help="对比的另一份代码（可重复）；本仓库总在其中")
    parser.add_argument("--profile", action="store_true", help="打印本仓库一轮的 cProfile（按累计时间）")
    parser.add_argument("--stages", action="store_true",
                        help="打印本仓库各轮每页在各主要步骤的平均耗时（计时器，不用 cProfile）")
    parser.add_argument("--search", action="store_true", help="计时自由文本检索（每条文本都是新的，含查询编码）")
    parser.add_argument("--shared-encoder", action="store_true",
                        help="查询由共享编码进程编码（与 matcher serve --workers N 相同），而非子进程自己加载的模型")
    parser.add_argument("--again-after", type=float, default=0, metavar="S",
                        help="S 秒后再计时同一批需求一次（写入后页面预热器重做页面的情形；这些机器会换出约一分钟未访问的文件页）")
    args = parser.parse_args()
    if args.search and args.again_after:
        parser.error("--again-after 只用于匹配页：检索文本再问一次时查询向量已在内存里")
    service = synthetic.load_or_build(args.data_root / str(args.size), args.size, None)
    prepare_indexes(service, synthetic.REPO, sync=False)
    trees = [synthetic.REPO, *(c.resolve() for c in args.code)]
    # Per pass ("first", and "again" with --again-after) and tree: the child's "ms" and "pages" lists, joined.
    got_all: dict[str, dict[Path, dict[str, list[float]]]] = {}
    runs = 0
    stages: dict[str, list[float]] = {}  # --stages: each round's mean ms per page, by stage
    texts = search_queries(20 + args.needs) if args.search else []
    shared = None
    if args.shared_encoder:
        from embeddings.encoder_service import SharedEncoderProcess
        from matcher.settings import Settings

        settings = Settings()  # the model and backend the children would load (MATCHER_* variables)
        shared = SharedEncoderProcess(settings.embedding_model, service.data_dir, settings.embedding_backend).start()
    try:
        for r in range(args.rounds):
            # Each round starts with the next tree: a fixed order measured two copies of one tree 1.11x apart.
            for tree in trees[r % len(trees):] + trees[: r % len(trees)]:
                # Each run its own needs: none was read by an earlier run, whose pages the kernel may still hold.
                offset = 0 if args.search else (runs * (20 + args.needs)) % max(1, len(service.need_ids) - 20 - args.needs)
                got = run_round(service, tree, args.needs, args.profile and r == 0 and tree == synthetic.REPO, texts,
                                shared.env() if shared else {}, offset, args.again_after,
                                args.stages and tree == synthetic.REPO)
                runs += 1
                for name in ("first", "again"):
                    for key, values in got.get(name, {}).items():
                        got_all.setdefault(name, {}).setdefault(tree, {}).setdefault(key, []).extend(values)
                if "profile" in got:
                    print(got["profile"])
                for label, ms in got.get("stages", {}).items():
                    stages.setdefault(label, []).append(ms)
    finally:
        if shared is not None:
            shared.stop()
    what = "自由文本检索（新文本，含查询编码）" if args.search else "首次生成匹配页"
    print(f"{what}（进程内，{args.size:,} 条成果，每轮 {args.needs} 个{'文本' if args.search else '需求'}"
          f" × {args.rounds} 轮，轮间交替）：")
    _report(trees, got_all["first"])
    if args.again_after:
        print(f"{args.again_after:.0f} s 后同一批需求再生成一次：")
        _report(trees, got_all["again"])
    if stages:
        print(f"各步骤每页平均耗时（{synthetic.REPO}，{len(next(iter(stages.values())))} 轮的均值；步骤相互嵌套，不可相加）：")
        for label, values in sorted(stages.items(), key=lambda kv: -statistics.mean(kv[1])):
            print(f"  {label:32s} {statistics.mean(values):7.2f} ms")
    return 0


def _report(trees: list[Path], got: dict[Path, dict[str, list[float]]]) -> None:
    base = statistics.median(got[trees[0]]["ms"])
    for tree in trees:
        ms = got[tree]["ms"]
        q = statistics.quantiles(ms, n=20)
        print(f"  {tree}: p50 {statistics.median(ms):.1f} ms  p95 {q[18]:.1f} ms  均值 {statistics.mean(ms):.1f} ms"
              f"  每次从磁盘读 {statistics.mean(got[tree]['pages']):.1f} 页（4 kB）"
              + ("" if tree == trees[0] else f"  （本仓库 p50 为其 {base / statistics.median(ms):.2f} 倍）"))


if __name__ == "__main__":
    sys.exit(main())
