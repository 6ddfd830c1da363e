"""SQLite keeps the pages it read in the process's own memory, up to ``MATCHER_SQLITE_CACHE_MB``."""
from __future__ import annotations

import pytest
from sqlalchemy import text

from matcher.context import build_context
from matcher.db import SQLITE_CACHE_MB, make_engine

from .conftest import make_settings

ROWS, ROW_BYTES = 2000, 4000  # ~8 MB: four times SQLite's own default cache of 2 MB


def _chars_read() -> int:
    # rchar counts every byte read() returned, from the disk or from the kernel's file cache alike.
    with open("/proc/self/io") as io:
        for line in io:
            if line.startswith("rchar"):
                return int(line.split()[1])
    raise AssertionError("no rchar in /proc/self/io")


def _scan_twice(url: str, cache_mb: int) -> int:
    """Bytes read from the file by the second of two full scans through the engine's pooled connection."""
    engine = make_engine(url, cache_mb)
    with engine.begin() as c:
        c.execute(text("CREATE TABLE IF NOT EXISTS pages (id INTEGER PRIMARY KEY, body TEXT)"))
        if not c.execute(text("SELECT count(*) FROM pages")).scalar():
            c.execute(text("INSERT INTO pages (body) VALUES (:b)"), [{"b": f"{i:04d}" * (ROW_BYTES // 4)}
                                                                    for i in range(ROWS)])
    try:
        with engine.connect() as c:
            assert c.execute(text("SELECT sum(length(body)) FROM pages")).scalar() == ROWS * ROW_BYTES
        before = _chars_read()
        with engine.connect() as c:
            assert c.execute(text("SELECT sum(length(body)) FROM pages")).scalar() == ROWS * ROW_BYTES
        return _chars_read() - before
    finally:
        engine.dispose()


def test_every_connection_gets_the_cache_and_the_process_limit(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'a.db'}", 64)
    with engine.connect() as c:
        assert c.execute(text("PRAGMA cache_size")).scalar() == -64 * 1024
        assert c.execute(text("PRAGMA soft_heap_limit")).scalar() == 64 * 1024 * 1024
    engine.dispose()
    engine = make_engine(f"sqlite:///{tmp_path / 'b.db'}", 0)
    with engine.connect() as c:
        assert c.execute(text("PRAGMA cache_size")).scalar() == -2000  # SQLite's own default, untouched
    engine.dispose()
    engine = make_engine(f"sqlite:///{tmp_path / 'c.db'}")
    with engine.connect() as c:
        assert c.execute(text("PRAGMA cache_size")).scalar() == -SQLITE_CACHE_MB * 1024
    engine.dispose()


def test_a_second_read_of_the_same_pages_does_not_touch_the_file(tmp_path):
    url = f"sqlite:///{tmp_path / 'scan.db'}"
    assert _scan_twice(url, 64) < ROWS * ROW_BYTES // 10  # the pages came from the process's memory
    assert _scan_twice(url, 0) > ROWS * ROW_BYTES // 2    # 2 MB of cache: read from the file again


def test_the_setting_reaches_the_service_engines(tmp_path, vector_cache_url, encoder):
    if not vector_cache_url.startswith("sqlite"):
        pytest.skip("the vector cache is not SQLite here")
    settings = make_settings(tmp_path / "data", f"sqlite:///{tmp_path / 's.db'}", vector_cache_url,
                             sqlite_cache_mb=48)
    ctx = build_context(settings, encoder=encoder)
    try:
        with ctx.engine.connect() as c:
            assert c.execute(text("PRAGMA cache_size")).scalar() == -48 * 1024
        with ctx.encoder.cache.engine.connect() as c:
            assert c.execute(text("PRAGMA cache_size")).scalar() == -48 * 1024
    finally:
        ctx.close()
