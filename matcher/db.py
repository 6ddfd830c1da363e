"""Engines, sessions and schema migrations."""
from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from functools import partial
from pathlib import Path

from sqlalchemy import create_engine, event, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from .errors import Invalid
from .models import ServiceMeta

_MIGRATIONS = Path(__file__).parent / "migrations"


def _has_nul(params) -> bool:
    if isinstance(params, str):
        return "\x00" in params
    if isinstance(params, dict):
        return any(_has_nul(v) for v in params.values())
    if isinstance(params, (list, tuple)):
        return any(_has_nul(v) for v in params)
    return False


def _refuse_nul(_conn, _cursor, statement, parameters, _context, executemany):
    """No text with a NUL character reaches the database.

    PostgreSQL cannot store one (psycopg2 raises a bare ValueError, a 500), SQLite
    would; refusing it here gives one coded 422 on both, whichever field or
    query parameter carried it.
    """
    if _has_nul(parameters):
        raise Invalid("nul_character", "文本中不能包含空字符（\\u0000），请删除后重试")
    return statement, parameters


# Database pages an SQLite process keeps in its own memory, all connections together (SQLite's soft heap
# limit). The operating system's file cache would hold them too, but these machines page out file pages
# left untouched for a minute (DAMON reclaim), and a match page re-made after a write then read ~35 of them
# from disk again: at 100k outcomes, 2026-12-01, p95 56–267 ms against 47 ms with 256 MB here. Since
# 2026-12-02 sentence vectors, a good part of those pages, come from the worker's own memory
# (matcher.sentence_memory), and 128 MB keeps a 100k worker under 1.5 GB (docs/benchmarks.md).
SQLITE_CACHE_MB = 128
# JSON columns hold Chinese as UTF-8 (3 bytes a character) rather than \uXXXX escapes (6): an outcome's
# explanation terms were 3.8 kB escaped, which pushed its row past one 4 kB SQLite page, so every fetch of
# the row read an overflow page too. Rows written before keep their escapes until their next write.
_JSON_UTF8 = partial(json.dumps, ensure_ascii=False)


def make_engine(url: str, sqlite_cache_mb: int = SQLITE_CACHE_MB) -> Engine:
    """Create an engine; SQLite gets WAL, foreign keys, a busy timeout and a page cache of its own.

    WAL lets readers run while a writer commits, and the busy timeout makes a
    second writer wait instead of failing at once. SQLite keeps up to
    ``sqlite_cache_mb`` of pages read in this process's memory (0: SQLite's
    default of 2 MB per connection). Every engine writes JSON as UTF-8 and
    refuses text containing NUL characters (:func:`_refuse_nul`).
    """
    engine = _make_engine(url, sqlite_cache_mb)
    event.listen(engine, "before_cursor_execute", _refuse_nul, retval=True)
    return engine


def _make_engine(url: str, sqlite_cache_mb: int) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # Last in, first out: at low concurrency one connection serves most requests, so its cache stays warm.
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, pool_use_lifo=True,
                               json_serializer=_JSON_UTF8)

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            if sqlite_cache_mb:
                # Each connection may cache up to the whole amount; the process-wide soft heap limit makes
                # SQLite recycle the least recently used pages once all connections together reach it.
                cur.execute(f"PRAGMA cache_size=-{int(sqlite_cache_mb) * 1024}")
                cur.execute(f"PRAGMA soft_heap_limit={int(sqlite_cache_mb) * 1024 * 1024}")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10, json_serializer=_JSON_UTF8)


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """Sessions for ``engine``; every change they flush is audited (see :mod:`matcher.audit`)."""
    from .audit import install

    maker = sessionmaker(bind=engine, expire_on_commit=False)
    install(maker)
    return maker


def alembic_config(url: str):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(engine: Engine) -> None:
    """Bring the schema to the newest migration (safe to call on every start)."""
    from alembic import command

    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def shared_value(session: Session, key: str, mint: Callable[[], str]) -> str:
    """The ``service_meta`` value under ``key``, minted with ``mint()`` and committed if there is none.

    Workers starting together on a new database may all mint one: the primary
    key lets the first commit win and the others read its value back (never a
    crash at start-up).
    """
    row = session.scalar(select(ServiceMeta).where(ServiceMeta.key == key))
    if row is not None:
        return row.value
    try:
        session.add(ServiceMeta(key=key, value=mint()))
        session.commit()
    except IntegrityError:
        session.rollback()
    return session.scalar(select(ServiceMeta.value).where(ServiceMeta.key == key))


def instance_id(session: Session) -> str:
    """A random id minted once per database; index files remember it."""
    return shared_value(session, "instance_id", lambda: uuid.uuid4().hex)
