"""Accounts: signing in, tokens that end, API keys, user management, the command line, secrets kept secret."""
from __future__ import annotations

import logging
from datetime import timedelta

import jwt
import pytest
from pydantic import SecretStr
from sqlalchemy import select
from typer.testing import CliRunner

from matcher import cli
from matcher.accounts.bearer import issue_token
from matcher.accounts.signing import signing_key
from matcher.models import AuditEntry, User, utcnow
from matcher.settings import get_settings

runner = CliRunner()


def _login(client, username, password):
    return client.post("/auth/token", data={"username": username, "password": password})


def _make(client, **body):
    r = client.post("/users", json={"password": "correct-horse-1", **body})
    assert r.status_code == 201, r.text
    return r.json()


def test_password_flow_issues_a_working_token(client, accounts):
    anon = accounts.client(None)
    _make(client, username="Broker.Zhang", role="broker", display_name="张红娘")
    r = _login(anon, "broker.zhang", "correct-horse-1")  # names are not case-sensitive
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 12 * 3600
    assert body["user"]["role"] == "broker" and body["user"]["role_label"] == "技术经理人"
    me = anon.get("/auth/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.json()["display_name"] == "张红娘"
    assert anon.get("/auth/me").json()["code"] == "not_authenticated"


@pytest.mark.parametrize("username,password", [("nobody", "correct-horse-1"), ("zhao", "wrong-password")])
def test_bad_credentials_get_one_answer(client, accounts, username, password):
    _make(client, username="zhao", role="broker")
    r = _login(accounts.client(None), username, password)
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert r.json() == {"code": "invalid_credentials", "message": "用户名或密码错误", "details": None}


def test_tokens_end_when_the_account_changes(client, accounts):
    user = _make(client, username="wang", role="broker")
    anon = accounts.client(None)
    token = _login(anon, "wang", "correct-horse-1").json()["access_token"]
    auth = {"Authorization": f"Bearer {token}"}
    assert anon.get("/needs", headers=auth).status_code == 200
    # A password change answers a new token; the old one stops working.
    r = anon.post("/auth/password", headers=auth, json={"old_password": "correct-horse-1", "new_password": "new-horse-22"})
    assert r.status_code == 200, r.text
    assert anon.get("/needs", headers=auth).json()["code"] == "not_authenticated"
    auth = {"Authorization": f"Bearer {r.json()['access_token']}"}
    assert anon.get("/needs", headers=auth).status_code == 200
    # Switched off by an admin: refused at once, and cannot sign in again.
    assert client.patch(f"/users/{user['id']}", json={"active": False}).status_code == 200
    assert anon.get("/needs", headers=auth).status_code == 401
    assert _login(anon, "wang", "new-horse-22").status_code == 401


def test_forged_expired_and_garbage_tokens(client, accounts, ctx):
    anon = accounts.client(None)
    user = accounts.user("broker")
    with ctx.sessions() as s:
        key = signing_key(ctx.settings, s)
    forged, _ = issue_token(user, "not-the-key-" + "x" * 40, 60)
    expired = jwt.encode({"sub": str(user.id), "tv": 1, "exp": utcnow() - timedelta(minutes=1)}, key, algorithm="HS256")
    unsigned = jwt.encode({"sub": str(user.id), "tv": 1, "exp": utcnow() + timedelta(hours=1)}, None, algorithm="none")
    for token in (forged, expired, unsigned, "garbage", "a.b.c", "x" * 5000):
        r = anon.get("/needs", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401 and r.json()["code"] == "not_authenticated", token[:20]
    assert "过期" in anon.get("/needs", headers={"Authorization": f"Bearer {expired}"}).json()["message"]


def test_api_keys(client, accounts):
    user = _make(client, username="script", role="broker")
    r = client.post(f"/users/{user['id']}/api-keys", json={"name": "夜间同步"})
    assert r.status_code == 201
    key = r.json()["key"]
    anon = accounts.client(None)
    assert anon.get("/pairings", headers={"X-API-Key": key}).status_code == 200
    assert anon.get("/pairings", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    assert anon.get("/users", headers={"X-API-Key": key}).json()["code"] == "forbidden"  # the user's role, no more
    listed = client.get(f"/users/{user['id']}/api-keys").json()
    assert listed[0]["prefix"] == key[:10] and "key" not in listed[0]
    assert client.delete(f"/users/{user['id']}/api-keys/{listed[0]['id']}").status_code == 204
    assert anon.get("/pairings", headers={"X-API-Key": key}).json()["code"] == "not_authenticated"
    assert anon.get("/pairings", headers={"X-API-Key": "cxy_made-up"}).status_code == 401


def test_user_rules(client):
    firm = client.post("/enterprises", json={"name": "绑定测试企业"}).json()["id"]
    cases = [
        ({"username": "ent1", "role": "enterprise"}, 422, "invalid_binding"),
        ({"username": "ent1", "role": "broker", "enterprise_id": firm}, 422, "invalid_binding"),
        ({"username": "ent1", "role": "enterprise", "enterprise_id": 999}, 404, "enterprise_not_found"),
        ({"username": "ent1", "role": "institution", "enterprise_id": firm}, 422, "invalid_binding"),
        ({"username": "a b", "role": "broker"}, 422, "invalid_input"),
        ({"username": "ent1", "role": "root"}, 422, "invalid_input"),
        ({"username": "ent1", "role": "broker", "password": "short"}, 422, "invalid_input"),
    ]
    for body, status, code in cases:
        r = client.post("/users", json={"password": "long-enough-1", **body})
        assert (r.status_code, r.json()["code"]) == (status, code), body
        assert r.json()["message"]
    ok = _make(client, username="ent1", role="enterprise", enterprise_id=firm)
    assert ok["enterprise_id"] == firm
    assert client.post("/users", json={"username": "ENT1", "password": "long-enough-1", "role": "broker"}).json()["code"] \
        == "username_taken"
    # Becoming a broker drops the binding; the last admin cannot be switched off or demoted.
    assert client.patch(f"/users/{ok['id']}", json={"role": "broker"}).json()["enterprise_id"] is None
    admins = client.get("/users", params={"role": "admin"}).json()["items"]
    assert len(admins) == 1
    for change in ({"active": False}, {"role": "broker"}):
        r = client.patch(f"/users/{admins[0]['id']}", json=change)
        assert r.status_code == 409 and r.json()["code"] == "last_admin"
    assert client.get("/auth/me").status_code == 200  # still an admin, still signed in


def test_secret_key_is_shared_through_the_database(ctx):
    with ctx.sessions() as s:
        first = signing_key(ctx.settings, s)
    with ctx.sessions() as s:
        assert signing_key(ctx.settings, s) == first and len(first) == 64
    explicit = ctx.settings.model_copy(update={"secret_key": SecretStr("from-the-environment")})
    with ctx.sessions() as s:
        assert signing_key(explicit, s) == "from-the-environment"


def test_secrets_never_reach_logs_or_the_audit_log(client, accounts, ctx, caplog):
    caplog.set_level(logging.DEBUG)
    user = _make(client, username="secretive", role="broker", password="hunter2-hunter2")
    _login(accounts.client(None), "secretive", "hunter2-hunter2")
    client.patch(f"/users/{user['id']}", json={"password": "hunter3-hunter3"})
    key = client.post(f"/users/{user['id']}/api-keys", json={"name": "k"}).json()["key"]
    with ctx.sessions() as s:
        stored = s.scalar(select(User).where(User.username == "secretive")).password_hash
        audit = " ".join(str(e.changes) for e in s.scalars(select(AuditEntry)))
    for secret in ("hunter2-hunter2", "hunter3-hunter3", key, stored):
        assert secret not in caplog.text
        assert secret not in audit
    assert stored.startswith("scrypt$")


def test_cli_creates_users(tmp_path, monkeypatch, db_url):
    monkeypatch.setenv("MATCHER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DATABASE_URL", db_url)
    get_settings.cache_clear()
    try:
        r = runner.invoke(cli.app, ["user", "create", "--role", "admin", "--username", "root"],
                          input="a-good-password\na-good-password\n")
        assert r.exit_code == 0, r.output
        assert "已创建用户 root（管理员" in r.output
        r = runner.invoke(cli.app, ["user", "create", "--role", "enterprise", "--username", "firm",
                                    "--password", "a-good-password"])
        assert r.exit_code == 2 and "invalid_binding" in r.output
        r = runner.invoke(cli.app, ["user", "create", "--role", "broker", "--username", "x", "--password", "p"])
        assert r.exit_code == 2 and "invalid_input" in r.output
        r = runner.invoke(cli.app, ["user", "api-key", "root", "--name", "备份"])
        assert r.exit_code == 0 and "cxy_" in r.output
        r = runner.invoke(cli.app, ["user", "list"])
        assert "root" in r.output and "管理员" in r.output
        r = runner.invoke(cli.app, ["user", "password", "root", "--password", "another-password"])
        assert r.exit_code == 0
        from matcher.accounts.passwords import verify_password
        from matcher.db import make_engine, make_sessionmaker

        engine = make_engine(db_url)
        with make_sessionmaker(engine)() as s:
            root = s.scalar(select(User).where(User.username == "root"))
            assert verify_password("another-password", root.password_hash)
            entries = s.scalars(select(AuditEntry).where(AuditEntry.entity == "user")).all()
            assert {e.actor_name for e in entries} == {"命令行"}
        engine.dispose()
    finally:
        get_settings.cache_clear()


def test_demo_accounts_one_per_role(client, ctx, accounts):
    from matcher.demo_accounts import DEMO_ACCOUNTS, load_demo_accounts

    firm = client.post("/enterprises", json={"name": "天润工业技术股份有限公司"}).json()["id"]
    school = client.post("/institutions", json={"name": "吉林大学威海仿生研究院"}).json()["id"]
    with ctx.sessions() as s:
        assert [status for _, status in load_demo_accounts(s)] == ["created"] * 4
    anon = accounts.client(None)
    for account in DEMO_ACCOUNTS:
        r = _login(anon, account.username, account.password)
        assert r.status_code == 200 and r.json()["user"]["role"] == account.role
    me = {a.username: _login(anon, a.username, a.password).json()["user"] for a in DEMO_ACCOUNTS}
    assert me["tianrun"]["enterprise_id"] == firm and me["jlu-bionic"]["institution_id"] == school
    # Loading again changes nobody's password.
    client.patch(f"/users/{me['broker']['id']}", json={"password": "changed-by-her"})
    with ctx.sessions() as s:
        assert [status for _, status in load_demo_accounts(s)] == ["exists"] * 4
    assert _login(anon, "broker", "broker-demo").status_code == 401
