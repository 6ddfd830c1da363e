"""Dates as the bureau reads them: China Standard Time, whatever the database returns.

Timestamps are stored in UTC. SQLite hands them back without a zone, PostgreSQL
with one; every comparison goes through :func:`as_utc` so both agree, and a
day boundary ("as of 2025-07-01") is the local (UTC+8) day.
"""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone

# China has one zone and no daylight saving: a fixed offset needs no tz database.
LOCAL_TZ = timezone(timedelta(hours=8), "CST")


def as_utc(value: datetime) -> datetime:
    """``value`` as an aware UTC datetime (a naive value is taken to be UTC, as stored)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def local_date(value: datetime) -> date:
    """The local (UTC+8) calendar day of a stored timestamp."""
    return as_utc(value).astimezone(LOCAL_TZ).date()


def end_of_local_day(day: date) -> datetime:
    """The last instant of local ``day``, in UTC: everything up to it counts as "by ``day``"."""
    start_next = datetime.combine(day + timedelta(days=1), time.min, tzinfo=LOCAL_TZ)
    return (start_next - timedelta(microseconds=1)).astimezone(timezone.utc)


def today_local() -> date:
    """Today in China, the default "as of" day of every report."""
    return datetime.now(LOCAL_TZ).date()
