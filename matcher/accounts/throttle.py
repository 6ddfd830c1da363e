"""Sign-in throttling: failed attempts per user name and per client address, counted in the database.

The failures live in ``login_failures`` rather than in a worker's memory, so the limit holds across
every worker and machine that shares the database and survives a restart; per-process counters would
give an attacker N guesses per worker. A failure adds one row for the user name and one for the
address; a sign-in is refused (429 ``too_many_attempts``, with ``Retry-After``) while either key has
its limit of failures within the sliding window, before the password is even checked. A successful
sign-in clears the user name's failures, not the address's: one known account must not buy an
address fresh guesses at other accounts. Rows older than the window are deleted as failures arrive.

Two guesses racing through the check at the same instant may both be counted after it, so the limit
can be overshot by the number of concurrent requests, never more.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from ..clock import as_utc
from ..errors import DomainError
from ..models import LoginFailure, utcnow


class TooManyAttempts(DomainError):
    """Too many failed sign-ins (429); ``Retry-After`` says how many seconds until the next try counts."""

    status = 429

    def __init__(self, retry_after: int):
        minutes = max(1, math.ceil(retry_after / 60))
        super().__init__("too_many_attempts", f"登录失败次数过多，请 {minutes} 分钟后再试",
                         details={"retry_after": retry_after})
        self.headers = {"Retry-After": str(retry_after)}


@dataclass(frozen=True)
class Limits:
    per_user: int
    per_ip: int
    window: timedelta

    @classmethod
    def of(cls, settings) -> "Limits":
        """The limits a service's settings give (``MATCHER_LOGIN_*``)."""
        return cls(settings.login_max_failures_per_user, settings.login_max_failures_per_ip,
                   timedelta(minutes=settings.login_failure_window_minutes))


def _user_key(username: str) -> str:
    # The same spelling rule as sign-in itself: "Admin" and "admin" are one account, so one counter.
    return "user:" + username.strip().lower()[:150]


def _keys(limits: Limits, username: str, address: str | None) -> list[tuple[str, int]]:
    keys = [(_user_key(username), limits.per_user)]
    if address:
        keys.append(("ip:" + address[:150], limits.per_ip))
    return keys


def check(session: Session, limits: Limits, username: str, address: str | None,
          now: datetime | None = None) -> None:
    """Raise :class:`TooManyAttempts` if the user name or the address has used up its failures."""
    now = now or utcnow()
    for key, limit in _keys(limits, username, address):
        recent = session.scalars(
            select(LoginFailure.at).where(LoginFailure.key == key, LoginFailure.at > now - limits.window)
            .order_by(LoginFailure.at.desc()).limit(limit)).all()
        if len(recent) >= limit:
            # Below the limit again once the limit-th most recent failure leaves the window.
            wait = as_utc(recent[-1]) + limits.window - as_utc(now)
            raise TooManyAttempts(max(1, math.ceil(wait.total_seconds())))


def record_failure(session: Session, limits: Limits, username: str, address: str | None,
                   now: datetime | None = None) -> None:
    """Count one failed sign-in against the user name and the address (committed)."""
    now = now or utcnow()
    session.add_all(LoginFailure(key=key, at=now) for key, _ in _keys(limits, username, address))
    session.execute(delete(LoginFailure).where(LoginFailure.at <= now - limits.window))
    session.commit()


def reset(session: Session, username: str) -> None:
    """Forget the user name's failures after a successful sign-in (committed)."""
    session.execute(delete(LoginFailure).where(LoginFailure.key == _user_key(username)))
    session.commit()
