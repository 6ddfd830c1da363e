"""The audit log: every change to the records people care about, written in the same transaction.

A session listener (installed on every session the service makes) looks at
what each flush creates, changes and deletes, and appends one ``audit_log``
row per record with the changed fields before and after. The actor is whoever
the session acts for (``session.info["actor"]``, set from the request's
credentials); writes outside a request are recorded as the system. Because the
rows go into the writing transaction, a rolled-back change leaves no entry and
a committed one always has its entry.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import event, func, inspect, insert, select
from sqlalchemy.orm import Session, sessionmaker

from .clock import end_of_local_day
from .models import (
    ApiKey,
    AuditEntry,
    Enterprise,
    Institution,
    MatchEvent,
    Need,
    Outcome,
    Pairing,
    Project,
    Region,
    Target,
    User,
    utcnow,
)

# Audited models and the entity name their entries carry.
ENTITIES: dict[type, str] = {
    Need: "need", Outcome: "outcome", Pairing: "pairing", Project: "project", Target: "target", User: "user",
    Enterprise: "enterprise", Institution: "institution", ApiKey: "api_key", MatchEvent: "event",
    Region: "region",
}
# Bookkeeping that changes with every write and says nothing about what a person changed.
_NOISE = frozenset({"created_at", "updated_at", "content_hash", "explain_terms", "query_terms", "title_key", "version",
                    "stage_changed_at", "token_version", "last_login_at", "solve_seconds"})
# Secrets: the entry says that they changed, never what they are.
_SECRETS = frozenset({"password_hash", "key_hash"})
_REDACTED = "（已修改，不记录内容）"
# Who changed records outside any request (seed data, the command line without a user).
SYSTEM_NAME = "系统"


def set_actor(session: Session, actor, via: str | None = None) -> None:
    """Record the session's later changes as made by ``actor`` (through ``via``, e.g. "PATCH /needs/3").

    ``actor`` is a :class:`matcher.access.Viewer`; ``None`` means the system.
    """
    session.info["actor"] = actor
    if via is not None:
        session.info["via"] = via[:200]


def _plain(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def _columns(obj) -> list[str]:
    return [a.key for a in inspect(obj).mapper.column_attrs if a.key not in _NOISE]


def _created(obj) -> dict:
    out = {}
    for key in _columns(obj):
        value = getattr(obj, key)
        if value is None or value == [] or key == "id":
            continue
        out[key] = {"before": None, "after": _REDACTED if key in _SECRETS else _plain(value)}
    return out


def _changed(obj) -> dict:
    state = inspect(obj)
    out = {}
    for key in _columns(obj):
        hist = state.attrs[key].history
        if not hist.has_changes():
            continue
        before = hist.deleted[0] if hist.deleted else None
        after = hist.added[0] if hist.added else None
        if before == after:
            continue
        if key in _SECRETS:
            out[key] = {"before": _REDACTED, "after": _REDACTED}
        else:
            out[key] = {"before": _plain(before), "after": _plain(after)}
    return out


def _deleted(obj) -> dict:
    return {key: {"before": _REDACTED if key in _SECRETS else _plain(getattr(obj, key)), "after": None}
            for key in _columns(obj) if key != "id" and getattr(obj, key) is not None}


def _entries(session: Session) -> list[dict]:
    rows = []
    for action, objects, describe in (("create", session.new, _created), ("update", session.dirty, _changed),
                                      ("delete", session.deleted, _deleted)):
        for obj in objects:
            entity = ENTITIES.get(type(obj))
            if entity is None:
                continue
            changes = describe(obj)
            if not changes:
                continue  # touched but nothing a person changed (or only bookkeeping)
            kind = action
            if action == "update" and "deleted_at" in changes and changes["deleted_at"]["before"] is None:
                kind = "delete"  # needs and outcomes are soft-deleted
            elif action == "update" and "revoked_at" in changes:
                kind = "revoke"
            rows.append({"entity": entity, "entity_id": getattr(obj, "id", None), "action": kind, "changes": changes})
    return rows


def _after_flush(session: Session, _flush_context) -> None:
    rows = _entries(session)
    if not rows:
        return
    actor = session.info.get("actor")
    who = ((actor.user_id, actor.display_name[:100], actor.role) if actor is not None
           else (None, SYSTEM_NAME, None))
    via = session.info.get("via")
    now = utcnow()
    for row in rows:
        row.update(at=now, actor_id=who[0], actor_name=who[1], actor_role=who[2], via=via)
    # Straight onto the flush's connection: same transaction, and no new objects mid-flush.
    session.connection().execute(insert(AuditEntry.__table__), rows)


def install(sessions: sessionmaker) -> None:
    """Audit every session ``sessions`` makes (once, however often it is called)."""
    # Marked on the maker itself: event.contains() answers by id(), and a new maker that reuses a collected
    # one's id "contains" a listener it never got, so its sessions went unaudited (seen in CI, both backends).
    if not getattr(sessions, "_audited", False):
        event.listen(sessions, "after_flush", _after_flush)
        sessions._audited = True


def list_entries(session: Session, *, entity: str | None = None, entity_id: int | None = None,
                 actor_id: int | None = None, action: str | None = None, since: date | None = None,
                 until: date | None = None, offset: int = 0, limit: int = 50) -> tuple[int, list[AuditEntry]]:
    """A page of audit entries, newest first, filtered by any of the arguments."""
    stmt = select(AuditEntry)
    if entity:
        stmt = stmt.where(AuditEntry.entity == entity)
    if entity_id is not None:
        stmt = stmt.where(AuditEntry.entity_id == entity_id)
    if actor_id is not None:
        stmt = stmt.where(AuditEntry.actor_id == actor_id)
    if action:
        stmt = stmt.where(AuditEntry.action == action)
    if since is not None:
        stmt = stmt.where(AuditEntry.at > end_of_local_day(since - timedelta(days=1)))
    if until is not None:
        stmt = stmt.where(AuditEntry.at <= end_of_local_day(until))
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = session.scalars(stmt.order_by(AuditEntry.id.desc()).offset(offset).limit(limit)).all()
    return total, list(rows)
