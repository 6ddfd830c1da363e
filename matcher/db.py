"""Engines, sessions and schema migrations."""
from __future__ import annotations

import uuid
from collections.abc import Callable
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


def make_engine(url: str) -> Engine:
    """Create an engine; SQLite gets WAL, foreign keys and a busy timeout.

    WAL lets readers run while a writer commits, and the busy timeout makes a
    second writer wait instead of failing at once. Every engine refuses text
    containing NUL characters (:func:`_refuse_nul`).
    """
    engine = _make_engine(url)
    event.listen(engine, "before_cursor_execute", _refuse_nul, retval=True)
    return engine


def _make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)


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
