"""Sign-in throttling: failures counted per user name and per client address, in the database (so every
worker shares the count), refused with 429 and Retry-After, cleared by a successful sign-in."""
from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from api.main import create_app
from matcher.accounts import throttle
from matcher.context import build_context
from matcher.models import LoginFailure, utcnow

from .conftest import make_settings

PER_USER, PER_IP, WINDOW_MINUTES = 3, 6, 15


@pytest.fixture
def settings(tmp_path, db_url, vector_cache_url):
    return make_settings(tmp_path / "data", db_url, vector_cache_url, login_max_failures_per_user=PER_USER,
                         login_max_failures_per_ip=PER_IP, login_failure_window_minutes=WINDOW_MINUTES)


def _client(app, address: str = "198.51.100.7") -> TestClient:
    return TestClient(app, client=(address, 40000))


def _login(client, username: str, password: str):
    return client.post("/auth/token", data={"username": username, "password": password})


@pytest.fixture
def wang(client):
    r = client.post("/users", json={"username": "wang", "password": "correct-horse-1", "role": "broker"})
    assert r.status_code == 201, r.text
    return "wang"


def _assert_throttled(r) -> int:
    assert r.status_code == 429, r.text
    body = r.json()
    assert body["code"] == "too_many_attempts" and "登录失败次数过多" in body["message"]
    retry = int(r.headers["retry-after"])
    assert 0 < retry <= WINDOW_MINUTES * 60 and body["details"] == {"retry_after": retry}
    return retry


def test_guessing_one_password_stops_after_the_limit(app, wang):
    c = _client(app)
    for _ in range(PER_USER):
        assert _login(c, wang, "wrong-guess").json()["code"] == "invalid_credentials"
    _assert_throttled(_login(c, wang, "wrong-guess"))
    # Locked means locked: the right password is not even checked until the window has moved on,
    # and the user name is the same account whatever its case or surrounding spaces.
    _assert_throttled(_login(c, wang, "correct-horse-1"))
    _assert_throttled(_login(_client(app, "203.0.113.9"), " WANG ", "correct-horse-1"))


def test_unknown_names_are_throttled_the_same(app):
    c = _client(app)
    answers = [_login(c, "nobody", "x").status_code for _ in range(PER_USER + 1)]
    assert answers == [401] * PER_USER + [429]


def test_a_successful_sign_in_clears_the_user_name(app, wang):
    c = _client(app)
    for _ in range(PER_USER - 1):
        _login(c, wang, "wrong-guess")
    assert _login(c, wang, "correct-horse-1").status_code == 200
    for _ in range(PER_USER - 1):
        assert _login(c, wang, "wrong-guess").status_code == 401
    assert _login(c, wang, "correct-horse-1").status_code == 200


def test_one_address_spraying_many_names_is_stopped(app, wang):
    sprayer = _client(app, "192.0.2.66")
    for i in range(PER_IP):
        assert _login(sprayer, f"user{i}", "Password1").status_code == 401
    _assert_throttled(_login(sprayer, "someone-else", "Password1"))
    # A success elsewhere does not reopen the address; other addresses are untouched.
    assert _login(_client(app), wang, "correct-horse-1").status_code == 200
    _assert_throttled(_login(sprayer, wang, "correct-horse-1"))
    assert _login(_client(app, "192.0.2.67"), wang, "correct-horse-1").status_code == 200


def test_the_count_is_shared_by_every_worker(ctx, settings, encoder, app, wang):
    # A second worker: its own app and context, the same database.
    other = build_context(settings, encoder=encoder)
    try:
        first, second = _client(app), _client(create_app(ctx=other))
        for c in (first, second, first):
            assert _login(c, wang, "wrong-guess").status_code == 401
        _assert_throttled(_login(second, wang, "correct-horse-1"))
    finally:
        other.close()


def test_the_window_slides_and_old_failures_are_removed(ctx):
    limits = throttle.Limits(per_user=2, per_ip=100, window=timedelta(minutes=10))
    start = utcnow()
    with ctx.sessions() as s:
        throttle.record_failure(s, limits, "li", "192.0.2.1", now=start)
        throttle.record_failure(s, limits, "li", "192.0.2.1", now=start + timedelta(minutes=4))
        with pytest.raises(throttle.TooManyAttempts) as refused:
            throttle.check(s, limits, "li", "192.0.2.1", now=start + timedelta(minutes=5))
        # Open again when the older failure leaves the window: 10 − 5 minutes later.
        assert refused.value.status == 429 and refused.value.headers == {"Retry-After": "300"}
        throttle.check(s, limits, "li", "192.0.2.1", now=start + timedelta(minutes=10, seconds=1))
        # A failure after the window deletes the rows the window has left behind.
        throttle.record_failure(s, limits, "li", "192.0.2.1", now=start + timedelta(minutes=20))
        assert s.scalar(select(func.count(LoginFailure.id))) == 2  # the new one, per user name and address


def test_the_answer_is_documented(client):
    op = client.get("/openapi.json").json()["paths"]["/auth/token"]["post"]
    assert "Retry-After" in op["responses"]["429"]["headers"]
    assert "too_many_attempts" in op["description"]
