"""Property-based API tests: schemathesis sends generated requests to every operation of the OpenAPI schema.

Each operation gets a bounded number of generated cases (valid and invalid), in process (ASGI), against one
small database per module (two firms' needs and three institutions' outcomes imported through the API; the
generated writes pile up on it, as they would on a real service). Every answer must not be a server error
and must conform to the schema: a documented status code, a documented content type, and a body matching
the documented response model. Signed in as an admin (every route is open to them), then once anonymously
(every protected route must answer its documented 401).

SQLite only: the generated traffic would be the same on PostgreSQL, the routes' behaviour on both backends
is what the API tests cover, and the CI budget is better spent there.
"""
from __future__ import annotations

import os

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.main import create_app
from matcher.accounts.bearer import issue_token
from matcher.accounts.signing import signing_key
from matcher.context import build_context
from matcher.models import User

from .conftest import Accounts, make_settings
from .helpers import load_small

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
# Random cases per operation, on top of the coverage phase's boundary cases (each field's limits, types and
# missing values): enough to reach every route's branches, few enough that the file takes ~2–3 minutes.
# MATCHER_FUZZ_EXAMPLES=200 MATCHER_FUZZ_SEED=<n> makes a deeper local run with other cases.
ADMIN_EXAMPLES = int(os.environ.get("MATCHER_FUZZ_EXAMPLES", 12))
ANONYMOUS_EXAMPLES = 3
# A fixed seed: CI sees the same cases every run, so a red run is a regression, never bad luck.
SEED = int(os.environ.get("MATCHER_FUZZ_SEED", 20261124))
_SETTINGS = dict(deadline=None, database=None, suppress_health_check=list(HealthCheck))

# The schema is read once from an app without a context (building the document needs none); every case is
# sent to the module's app over the small database (``app=`` below), so collection loads no model.
_DOC = create_app().openapi()
schema = schemathesis.openapi.from_dict(_DOC, config=schemathesis.Config.from_dict({"seed": SEED}))
schema.app = create_app()  # picks the in-process ASGI transport; never called itself
# Anonymous callers meet the sign-in check before any field is looked at, so the coverage phase (every
# boundary of every field) would only repeat the same 401: random cases are enough.
anonymous_schema = schemathesis.openapi.from_dict(
    _DOC, config=schemathesis.Config.from_dict({"seed": SEED, "phases": {"coverage": {"enabled": False}}}))
anonymous_schema.app = schema.app


class Service:
    """The module's app, and fresh admin credentials for every case.

    Generated requests may change the admin's own password (``POST /auth/password``) or, once they have
    created another admin, demote or switch theirs off (``PATCH /users/{id}``). Each case therefore starts
    with the account restored and a token for its current ``token_version``, so the run keeps exercising
    admin routes instead of collecting 401s.
    """

    def __init__(self, accounts: Accounts):
        self.ctx, self.app = accounts.ctx, accounts.app
        self.admin_id = accounts.user("admin", username="fuzz-admin").id

    def admin_headers(self) -> dict[str, str]:
        with self.ctx.sessions() as s:
            user = s.get(User, self.admin_id)
            user.role, user.active, user.enterprise_id, user.institution_id = "admin", True, None, None
            s.commit()
            token, _ = issue_token(user, signing_key(self.ctx.settings, s), 60)
        return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def service(tmp_path_factory, encoder, vector_cache_url, password_hash):
    data_dir = tmp_path_factory.mktemp("schemathesis")
    context = build_context(make_settings(data_dir, f"sqlite:///{data_dir / 'matcher.db'}", vector_cache_url),
                            encoder=encoder)
    accounts = Accounts(context, create_app(ctx=context), password_hash)
    svc = Service(accounts)
    with TestClient(svc.app) as c:
        c.headers.update(svc.admin_headers())
        load_small(c)
    yield svc
    context.close()


@schema.parametrize()
@settings(max_examples=ADMIN_EXAMPLES, **_SETTINGS)
def test_signed_in_as_admin(case, service):
    case.call_and_validate(app=service.app, headers=service.admin_headers(), checks=CHECKS)


@anonymous_schema.parametrize()
@settings(max_examples=ANONYMOUS_EXAMPLES, **_SETTINGS)
def test_anonymous(case, service):
    case.call_and_validate(app=service.app, checks=CHECKS)


def test_what_it_found_stays_fixed(service):
    """The bugs schemathesis found, as plain requests (the generated cases may change with the library)."""
    with TestClient(service.app) as c:
        c.headers.update(service.admin_headers())
        # An offset past SQLite's 64-bit integers was a 500 (OverflowError) on every list.
        r = c.get("/needs", params={"offset": 2**63})
        assert r.status_code == 422 and r.json()["code"] == "invalid_input"
        # SQLite hands back timestamps without a zone; answers said "2026-11-22T03:41:39" (no RFC 3339
        # date-time, read as local time by clients) instead of naming UTC.
        for user in c.get("/users").json()["items"]:
            assert user["created_at"].endswith(("+00:00", "Z")), user
        # A validation error's 422 is documented in our error shape, not FastAPI's {"detail": ...}.
        doc = c.get("/openapi.json").json()
        assert doc["paths"]["/needs"]["get"]["responses"]["422"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/ErrorOut"}
        assert "HTTPValidationError" not in doc["components"]["schemas"]
        # "aliases": null on a region was a 500 (TypeError). (Its own region: the fuzzing may have renamed any.)
        assert c.post("/regions", json={"name": "回归测试区", "aliases": ["回归"]}).status_code == 201
        assert c.patch("/regions/回归测试区", json={"aliases": None}).json()["aliases"] == ["回归"]
