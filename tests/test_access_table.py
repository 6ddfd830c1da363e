"""docs/security.md's route table is the truth: every route has a row, the code declares the same rule, and every
role gets exactly what its cell says (walked request by request, on every backend)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi import APIRouter, FastAPI

from api.deps import is_api_route, iter_routes, rule_of
from api.main import _rules

DOC = Path(__file__).resolve().parents[1] / "docs" / "security.md"
ROLES = ("anonymous", "admin", "broker", "enterprise", "institution")
ALLOWED = {"✓", "本方"}
MISSING_ID = 999_999  # ids nothing has: allowed callers get 404/422, never a change


def _table() -> dict[tuple[str, str], dict[str, str]]:
    rows = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 7 and re.fullmatch(r"GET|POST|PUT|PATCH|DELETE", cells[0]):
            key = (cells[0], cells[1].strip("`"))
            assert key not in rows, f"{key} listed twice in docs/security.md"
            rows[key] = dict(zip(ROLES, cells[2:7]))
    return rows


TABLE = _table()


def _served(app) -> set[tuple[str, str]]:
    return {(m, r.path) for r in iter_routes(app) for m in (r.methods or ()) if m != "HEAD"}


def test_every_route_has_exactly_one_row(app):
    served, documented = _served(app), set(TABLE)
    assert served - documented == set(), "routes missing from docs/security.md"
    assert documented - served == set(), "docs/security.md lists routes that do not exist"


def test_the_code_declares_what_the_table_says(app):
    for route in iter_routes(app):
        for method in route.methods - {"HEAD"}:
            row = TABLE[(method, route.path)]
            rule = rule_of(route) if is_api_route(route) else None
            declared = set(ROLES[1:]) | {"anonymous"} if rule is None or rule.roles is None else set(rule.roles)
            assert {r for r in ROLES if row[r] in ALLOWED} == declared, (method, route.path)


def test_a_route_without_a_rule_stops_the_app():
    bare = FastAPI()
    router = APIRouter()

    @router.get("/forgotten")
    def forgotten():
        return {}

    bare.include_router(router)
    with pytest.raises(RuntimeError, match="/forgotten"):
        _rules(bare)


def test_openapi_states_every_rule(client):
    schema = client.get("/openapi.json").json()
    for path, ops in schema["paths"].items():
        for method, op in ops.items():
            assert "**权限**" in op.get("description", ""), (method, path)
            if TABLE[(method.upper(), path)]["anonymous"] not in ALLOWED:
                assert {"401", "403"} <= set(op["responses"]), (method, path)


def _path(template: str, own: dict[str, int]) -> str:
    # A party user's own enterprise/institution where the rule is about "own"; a missing id everywhere else.
    return re.sub(r"\{(\w+)\}", lambda m: str(own.get(m.group(1), MISSING_ID)), template)


def test_walk_the_table_for_every_role(client, accounts):
    firm = client.post("/enterprises", json={"name": "权限测试企业"}).json()["id"]
    school = client.post("/institutions", json={"name": "权限测试大学"}).json()["id"]
    clients = {
        "anonymous": accounts.client(None),
        "admin": client,
        "broker": accounts.client("broker"),
        "enterprise": accounts.client("enterprise", enterprise_id=firm),
        "institution": accounts.client("institution", institution_id=school),
    }
    own = {"enterprise": {"enterprise_id": firm}, "institution": {"institution_id": school}}
    failures = []
    # Reads first, then writes: every write is sent with an empty body or a missing id, so nothing changes.
    for (method, template), row in sorted(TABLE.items(), key=lambda kv: (kv[0][0] != "GET", kv[0])):
        for role in ROLES:
            path = _path(template, own.get(role, {}))
            kwargs = {"json": {}} if method in ("POST", "PUT", "PATCH") and not template.startswith("/auth/token") else {}
            r = clients[role].request(method, path, **kwargs)
            if row[role] in ALLOWED:
                ok = r.status_code not in (401, 403)
            else:
                expected = 401 if role == "anonymous" else 403
                code = "not_authenticated" if expected == 401 else "forbidden"
                ok = r.status_code == expected and r.json().get("code") == code and r.json().get("message")
            if not ok:
                failures.append(f"{role} {method} {path}: {r.status_code} {r.text[:120]}")
    assert failures == []
