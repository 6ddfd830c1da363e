"""Every vector ever computed, keyed by model and text, in a SQL table.

Re-imports and index rebuilds look vectors up here instead of encoding again;
encoding is by far the dominant cost. The table lives in the service's database
by default, so every worker that rebuilds its index from the database finds the
vectors there too.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable

import numpy as np
from sqlalchemy import Column, Integer, LargeBinary, MetaData, String, Table, func, inspect, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.schema import CreateTable

metadata = MetaData()

embedding_cache = Table(
    "embedding_cache",
    metadata,
    Column("model", String(200), primary_key=True),
    Column("text_hash", String(64), primary_key=True),
    Column("dim", Integer, nullable=False),
    Column("vector", LargeBinary, nullable=False),
)

_LOOKUP_CHUNK = 500


def text_key(text: str, kind: str) -> str:
    """Stable key of a text as encoded for ``kind`` ("query" or "passage")."""
    return hashlib.sha256(f"{kind}\x00{text}".encode("utf-8")).hexdigest()


def create_table(engine: Engine) -> None:
    """Create ``embedding_cache`` if it is missing, also when other processes do the same at the same moment.

    Every worker of a service with its own cache database creates the table at start. ``create_all`` looks first
    and creates after, so two workers on a fresh file could both look, and the second to create failed ("table
    embedding_cache already exists"; seen once in the test suite's parallel workers). ``IF NOT EXISTS`` makes the
    statement itself safe; PostgreSQL can still fail a simultaneous one on its catalogue, so a failure is
    forgiven when the table is there afterwards.
    """
    try:
        with engine.begin() as conn:
            conn.execute(CreateTable(embedding_cache, if_not_exists=True))
    except DBAPIError:
        if not inspect(engine).has_table(embedding_cache.name):
            raise


class VectorCache:
    """Get and put float32 vectors by (model, text key) in ``embedding_cache``."""

    def __init__(self, engine: Engine, create: bool = False):
        self.engine = engine
        if create:
            create_table(engine)

    def get_many(self, model: str, keys: Iterable[str]) -> dict[str, np.ndarray]:
        """Return the cached vectors among ``keys`` (missing keys are absent)."""
        keys = list(dict.fromkeys(keys))
        found: dict[str, np.ndarray] = {}
        with self.engine.connect() as conn:
            for i in range(0, len(keys), _LOOKUP_CHUNK):
                chunk = keys[i : i + _LOOKUP_CHUNK]
                rows = conn.execute(
                    select(embedding_cache.c.text_hash, embedding_cache.c.vector).where(
                        embedding_cache.c.model == model, embedding_cache.c.text_hash.in_(chunk)
                    )
                )
                for key, blob in rows:
                    found[key] = np.frombuffer(blob, dtype=np.float32)
        return found

    def count(self, model: str, cap: int) -> int:
        """How many vectors are filed under ``model``, counted up to ``cap`` (0 where the table does not exist yet).

        Capped so that asking costs the same at 10^6 vectors as at 10^3: callers compare models, not sizes.
        """
        if not inspect(self.engine).has_table(embedding_cache.name):
            return 0
        held = select(embedding_cache.c.text_hash).where(embedding_cache.c.model == model).limit(cap).subquery()
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(held)).scalar_one())

    def put_many(self, model: str, vectors: dict[str, np.ndarray]) -> None:
        """Store vectors; a key already present is left as it is (same text, same vector)."""
        if not vectors:
            return
        existing = set(self.get_many(model, vectors.keys()))
        rows = [
            {"model": model, "text_hash": k, "dim": int(v.shape[0]), "vector": np.asarray(v, np.float32).tobytes()}
            for k, v in vectors.items()
            if k not in existing
        ]
        if not rows:
            return
        dialect = self.engine.dialect.name
        if dialect in ("sqlite", "postgresql"):
            if dialect == "sqlite":
                from sqlalchemy.dialects.sqlite import insert
            else:
                from sqlalchemy.dialects.postgresql import insert
            stmt = insert(embedding_cache).on_conflict_do_nothing()
        else:
            stmt = embedding_cache.insert()
        with self.engine.begin() as conn:
            conn.execute(stmt, rows)
