"""The migrations build exactly the schema the ORM models describe, and 0002 goes down and up again."""
from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import MetaData, inspect

from embeddings.vector_cache import metadata as cache_metadata
from matcher.db import alembic_config, make_engine, upgrade
from matcher.models import Base


def _diff(engine):
    merged = MetaData()
    for meta in (Base.metadata, cache_metadata):
        for table in meta.tables.values():
            table.to_metadata(merged)
    with engine.connect() as conn:
        return compare_metadata(MigrationContext.configure(conn), merged)


def test_models_and_migrations_agree(db_url):
    engine = make_engine(db_url)
    upgrade(engine)
    assert _diff(engine) == []
    cfg = alembic_config(db_url)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0001")
    assert "match_events" not in inspect(engine).get_table_names()
    upgrade(engine)
    assert {"match_events", "match_event_meetings"} <= set(inspect(engine).get_table_names())
    engine.dispose()
