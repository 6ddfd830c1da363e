"""Every change is in the append-only audit log: who, when, what, each field before and after."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from api.deps import iter_routes
from matcher.models import AuditEntry

from .helpers import OUTCOME_HEADER, OUTCOMES, upload, xlsx


def _entries(client, **params):
    r = client.get("/audit", params={"limit": 500, **params})
    assert r.status_code == 200, r.text
    return r.json()["items"]


def test_need_lifecycle_names_the_actor_and_the_fields(client, accounts):
    firm = client.post("/enterprises", json={"name": "审计测试企业"}).json()["id"]
    user = accounts.user("enterprise", enterprise_id=firm)
    c = accounts.client("enterprise", enterprise_id=firm)
    need = c.post("/needs", json={"enterprise_id": firm, "title": "注塑件翘曲变形控制", "budget_max": 50}).json()
    c.patch(f"/needs/{need['id']}", json={"budget_max": 80, "visibility": "brokers"})
    c.delete(f"/needs/{need['id']}")
    create, update, delete = reversed(_entries(client, entity="need", entity_id=need["id"]))
    for e in (create, update, delete):
        assert (e["actor_id"], e["actor_role"], e["actor_name"]) == (user.id, "enterprise", user.display_name)
    assert create["action"] == "create" and create["via"] == "POST /needs"
    assert create["changes"]["title"] == {"before": None, "after": "注塑件翘曲变形控制"}
    assert update["action"] == "update" and update["via"] == f"PATCH /needs/{need['id']}"
    assert update["changes"] == {"budget_max": {"before": 50.0, "after": 80.0},
                                 "visibility": {"before": "public", "after": "brokers"}}
    assert delete["action"] == "delete" and delete["changes"]["deleted_at"]["before"] is None


def test_pairings_targets_projects_users_and_imports(client, accounts):
    upload(client, "outcomes", xlsx([OUTCOME_HEADER, OUTCOMES[0]]))
    outcome = client.get("/outcomes").json()["items"][0]
    firm = client.post("/enterprises", json={"name": "银泽审计", "region": "文登区"}).json()["id"]
    need = client.post("/needs", json={"enterprise_id": firm, "title": "海马苗种繁育"}).json()
    broker = accounts.client("broker")
    p = broker.post("/pairings", json={"need_id": need["id"], "outcome_id": outcome["id"]}).json()
    broker.post(f"/pairings/{p['id']}/moves", json={"to_stage": "contacted", "version": p["version"]})
    moves = _entries(client, entity="pairing", entity_id=p["id"])
    assert [e["action"] for e in moves] == ["update", "create"]
    assert moves[0]["changes"]["stage"] == {"before": "proposed", "after": "contacted"}
    assert moves[1]["changes"]["broker"]["after"] == "测试broker"  # the signed-in broker owns it by default

    t = client.post("/targets", json={"region": "文登区", "year_start": 2030, "year_end": 2030, "count": 20}).json()
    client.put(f"/targets/{t['id']}", json={"region": "文登区", "year_start": 2030, "year_end": 2030, "count": 25})
    client.delete(f"/targets/{t['id']}")
    actions = [(e["action"], e["changes"].get("count")) for e in _entries(client, entity="target")]
    assert actions == [("delete", {"before": 25, "after": None}), ("update", {"before": 20, "after": 25}),
                       ("create", {"before": None, "after": 20})]

    project = broker.post("/projects", json={"enterprise_id": firm, "institution_id": outcome["institution"]["id"],
                                             "title": "直接录入的项目", "contract_type": "技术转让",
                                             "signed_date": "2025-03-01"}).json()
    assert _entries(client, entity="project", entity_id=project["id"])[0]["actor_role"] == "broker"

    user = client.post("/users", json={"username": "newbie", "password": "a-long-password", "role": "broker"}).json()
    created = _entries(client, entity="user", entity_id=user["id"])[0]
    assert created["changes"]["password_hash"]["after"] == "（已修改，不记录内容）"

    imported = [e for e in _entries(client, entity="outcome") if e["via"] == "POST /imports/outcomes"]
    assert len(imported) == 1 and imported[0]["actor_role"] == "admin"


def test_refused_and_failed_writes_leave_no_entry(client, accounts):
    firm = client.post("/enterprises", json={"name": "失败写入企业"}).json()["id"]
    rival = client.post("/enterprises", json={"name": "另一家企业"}).json()["id"]
    need = client.post("/needs", json={"enterprise_id": firm, "title": "同名需求"}).json()
    other = accounts.client("enterprise", enterprise_id=rival)
    before = len(_entries(client))
    assert client.post("/needs", json={"enterprise_id": firm, "title": "同名需求"}).status_code == 409
    assert other.patch(f"/needs/{need['id']}", json={"title": "改"}).status_code == 403
    assert client.post("/needs", json={"enterprise_id": firm, "title": "空字符", "phone": "0631\x00"}).status_code == 422
    assert len(_entries(client)) == before


def test_audit_reading_is_for_admins_with_filters_and_paging(client, accounts):
    for i in range(3):
        client.post("/enterprises", json={"name": f"分页企业{i}"})
    assert accounts.client("broker").get("/audit").json()["code"] == "forbidden"
    page = client.get("/audit", params={"entity": "enterprise", "limit": 2}).json()
    assert page["total"] == 3 and len(page["items"]) == 2
    assert page["items"][0]["id"] > page["items"][1]["id"]  # newest first
    rest = client.get("/audit", params={"entity": "enterprise", "limit": 2, "offset": 2}).json()["items"]
    assert len(rest) == 1
    assert client.get("/audit", params={"action": "delete", "entity": "enterprise"}).json()["total"] == 0
    assert client.get("/audit", params={"since": "2000-01-01", "until": "2000-12-31"}).json()["total"] == 0
    assert client.get("/audit", params={"since": "2000-01-01"}).json()["total"] >= 3
    r = client.get("/audit", params={"entity": "password"})
    assert r.status_code == 422 and r.json()["code"] == "invalid_input"


def test_no_route_can_change_the_log(client, app):
    audit_routes = {(m, r.path) for r in iter_routes(app) for m in r.methods if r.path.startswith("/audit")}
    assert audit_routes <= {("GET", "/audit"), ("HEAD", "/audit")}
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        assert client.request(method, "/audit").status_code == 405
        assert client.request(method, "/audit/1").status_code in (404, 405)


def test_the_database_refuses_to_change_or_delete_entries(client, ctx):
    client.post("/enterprises", json={"name": "触发器测试"})
    for statement in ("UPDATE audit_log SET actor_name = 'x'", "DELETE FROM audit_log"):
        with ctx.engine.connect() as conn, pytest.raises(DBAPIError, match="append-only"):
            conn.execute(text(statement))
    with ctx.sessions() as s:
        assert s.scalar(select(func.count(AuditEntry.id))) >= 1
        assert "x" not in set(s.scalars(select(AuditEntry.actor_name)))


def test_writes_outside_requests_are_the_system(ctx):
    from matcher import records
    from matcher.schemas import EnterpriseIn

    with ctx.sessions() as s:
        records.create_enterprise(s, EnterpriseIn(name="系统写入企业"))
        entry = s.scalars(select(AuditEntry).where(AuditEntry.entity == "enterprise")).one()
    assert (entry.actor_id, entry.actor_name, entry.via) == (None, "系统", None)


def test_every_new_sessionmaker_is_audited_even_where_an_old_ones_id_is_reused(db_url):
    import gc

    from matcher.db import make_engine, make_sessionmaker, upgrade
    from matcher.models import Region

    engine = make_engine(db_url)
    upgrade(engine)
    for n in range(30):  # makers come and go as contexts do in a long-running test session
        with make_sessionmaker(engine)() as s:
            s.add(Region(name=f"审计测试区{n}"))
            s.commit()
            assert s.scalar(select(func.count(AuditEntry.id)).where(AuditEntry.entity == "region")) == n + 1
        gc.collect()
    engine.dispose()
