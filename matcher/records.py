"""Create, read, update and delete enterprises, institutions, needs and outcomes.

Every write of a need or outcome encodes first (slow, may fail, touches
nothing), then writes the record and its index-change entry in one
transaction, then brings this worker's index up to date.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .context import MatcherContext
from .documents import side_of
from .errors import Conflict, Invalid, NotFound
from .imports.values import normalize_title
from .models import Enterprise, IndexChange, Institution, Need, Outcome, utcnow
from .schemas import (
    EnterpriseIn,
    EnterpriseUpdate,
    InstitutionIn,
    InstitutionUpdate,
    NeedIn,
    NeedUpdate,
    OutcomeIn,
    OutcomeUpdate,
)
from .explain import explain_terms, query_terms
from .vocab import locality_tier, stage_for_trl

_CONTENT_FIELDS = {
    Need: ("title", "description", "keywords", "field", "industry_chain", "budget_min", "budget_max",
           "budget_negotiable", "cooperation_modes", "deadline", "visibility", "status", "contact", "phone",
           "external_id"),
    Outcome: ("title", "abstract", "keywords", "field", "industry_chain", "team", "trl", "stage", "ip_type",
              "ip_number", "cooperation_modes", "price_min", "price_max", "price_negotiable", "status", "contact",
              "phone", "external_id"),
}
LABELS = {"needs": "需求", "outcomes": "成果", "enterprises": "企业", "institutions": "高校/院所"}


def content_hash(record: Need | Outcome) -> str:
    """A fingerprint of everything a user can change, to tell "unchanged" on re-import."""
    columns = type(record).__table__.c
    data = {}
    for f in _CONTENT_FIELDS[type(record)]:
        value = getattr(record, f)
        if value is None and columns[f].default is not None:
            # A new record has no column defaults until flushed; hash what will be stored.
            default = columns[f].default.arg
            value = default({}) if callable(default) else default
        data[f] = value
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str, ensure_ascii=False).encode()).hexdigest()


def log_change(session: Session, record: Need | Outcome) -> None:
    """Queue the record for every worker's index (same transaction as the write)."""
    session.add(IndexChange(side=side_of(record), record_id=record.id))


# -- lookups ---------------------------------------------------------------
def get_enterprise(session: Session, enterprise_id: int) -> Enterprise:
    obj = session.get(Enterprise, enterprise_id)
    if obj is None:
        raise NotFound("enterprise_not_found", f"企业 {enterprise_id} 不存在")
    return obj


def get_institution(session: Session, institution_id: int) -> Institution:
    obj = session.get(Institution, institution_id)
    if obj is None:
        raise NotFound("institution_not_found", f"高校/院所 {institution_id} 不存在")
    return obj


def get_need(session: Session, need_id: int) -> Need:
    obj = session.get(Need, need_id)
    if obj is None or obj.deleted_at is not None:
        raise NotFound("need_not_found", f"需求 {need_id} 不存在或已删除")
    return obj


def get_outcome(session: Session, outcome_id: int) -> Outcome:
    obj = session.get(Outcome, outcome_id)
    if obj is None or obj.deleted_at is not None:
        raise NotFound("outcome_not_found", f"成果 {outcome_id} 不存在或已删除")
    return obj


def list_records(session: Session, model, *, q: str | None = None, offset: int = 0, limit: int = 50,
                 where: Sequence = (), **equals: Any) -> tuple[int, list]:
    """A page of records of ``model``, filtered by equal fields, a title substring and extra ``where`` clauses
    (what the caller may see, see :mod:`matcher.access`)."""
    from sqlalchemy import func

    stmt = select(model).where(*where)
    if hasattr(model, "deleted_at"):
        stmt = stmt.where(model.deleted_at.is_(None))
    for name, value in equals.items():
        if value is not None:
            stmt = stmt.where(getattr(model, name) == value)
    if q:
        column = model.title if hasattr(model, "title") else model.name
        # autoescape: a "%" or "_" typed by a user is a character to find, not a LIKE wildcard.
        stmt = stmt.where(column.contains(q, autoescape=True))
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = session.scalars(stmt.order_by(model.id).offset(offset).limit(limit)).unique().all()
    return total, list(rows)


# -- enterprises and institutions -------------------------------------------
def _commit_unique(session: Session, what: str) -> None:
    try:
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        raise Conflict("duplicate", f"{what}已存在（名称或编码重复）") from exc


def create_enterprise(session: Session, data: EnterpriseIn) -> Enterprise:
    obj = Enterprise(**data.model_dump())
    session.add(obj)
    _commit_unique(session, "企业")
    return obj


def update_enterprise(session: Session, enterprise_id: int, data: EnterpriseUpdate) -> Enterprise:
    obj = get_enterprise(session, enterprise_id)
    for key, value in data.model_dump(exclude_unset=True).items():
        if key == "name" and value is None:
            continue
        setattr(obj, key, value)
    _commit_unique(session, "企业")
    return obj


def create_institution(session: Session, data: InstitutionIn) -> Institution:
    obj = Institution(**data.model_dump())
    obj.locality = locality_tier(obj.location, obj.name)
    session.add(obj)
    _commit_unique(session, "高校/院所")
    return obj


def update_institution(session: Session, institution_id: int, data: InstitutionUpdate) -> Institution:
    obj = get_institution(session, institution_id)
    for key, value in data.model_dump(exclude_unset=True).items():
        if key == "name" and value is None:
            continue
        setattr(obj, key, value)
    obj.locality = locality_tier(obj.location, obj.name)
    _commit_unique(session, "高校/院所")
    return obj


def delete_owner(session: Session, model, owner_id: int) -> None:
    """Delete an enterprise or institution that nothing refers to any more."""
    obj = get_enterprise(session, owner_id) if model is Enterprise else get_institution(session, owner_id)
    child = Need if model is Enterprise else Outcome
    fk = child.enterprise_id if model is Enterprise else child.institution_id
    if session.scalar(select(child.id).where(fk == owner_id).limit(1)) is not None:
        raise Conflict("has_records", f"「{obj.name}」名下仍有需求或成果记录，不能删除")
    session.delete(obj)
    try:
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        raise Conflict("has_records", f"「{obj.name}」仍被对接或项目引用，不能删除") from exc


# -- needs and outcomes ------------------------------------------------------
def _apply(record: Need | Outcome, values: dict) -> None:
    for key, value in values.items():
        setattr(record, key, value)
    if isinstance(record, Outcome) and record.trl is not None and values.get("stage") is None:
        record.stage = stage_for_trl(record.trl)
    record.title_key = normalize_title(record.title)
    fresh = content_hash(record)
    # Only on a real change (a new record has no hash yet): an unchanged re-import neither segments nor loads
    # the terms. A row stored before terms were kept gets them at its next change; until then it is segmented
    # when explained (and a need's own text when its matches are).
    if fresh != record.content_hash:
        _store_terms(record)
    record.content_hash = fresh


def _store_terms(record: Need | Outcome) -> None:
    """Segment the record's texts once, at write, for the explanations of every later match."""
    record.explain_terms = explain_terms(record)
    if isinstance(record, Need):
        record.query_terms = query_terms(record)


def _save_record(ctx: MatcherContext, session: Session, record: Need | Outcome, what: str,
                 reread: bool = False) -> None:
    ctx.indexes.prepare([record])
    try:
        session.flush()
        if reread:
            _rehash_after_concurrent_edits(session, record)
        log_change(session, record)
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        raise Conflict("duplicate_title", f"同一单位下已有同名{what}「{record.title}」") from exc
    ctx.indexes.sync()


def _rehash_after_concurrent_edits(session: Session, record: Need | Outcome) -> None:
    """Recompute the derived columns from the row as it now stands in the database.

    A PATCH writes only the fields it sent, but the hash was computed from the
    row as read before another writer's commit. Once our flush holds the write
    lock (SQLite) or the change-log lock (PostgreSQL), nobody else can commit a
    need or outcome, so the re-read row is the final one.
    """
    session.refresh(record)
    fresh = content_hash(record)
    if fresh != record.content_hash:
        record.title_key = normalize_title(record.title)
        record.content_hash = fresh
        _store_terms(record)
        session.flush()


# How each side finds its owner, and what to call it in messages.
_SIDES = {
    Need: ("enterprise_id", get_enterprise, get_need, "需求"),
    Outcome: ("institution_id", get_institution, get_outcome, "成果"),
}


def _create(ctx: MatcherContext, session: Session, model, data):
    owner_key, get_owner, _get, what = _SIDES[model]
    get_owner(session, getattr(data, owner_key))
    record = model()
    _apply(record, data.model_dump())
    session.add(record)
    _save_record(ctx, session, record, what)
    return record


def _update(ctx: MatcherContext, session: Session, model, record_id: int, data):
    owner_key, get_owner, get_record, what = _SIDES[model]
    record = get_record(session, record_id)
    # PATCH semantics: only sent fields change, and the owner and title cannot be blanked.
    values = {k: v for k, v in data.model_dump(exclude_unset=True).items()
              if not (k in (owner_key, "title") and v is None)}
    if owner_key in values:
        get_owner(session, values[owner_key])
    _apply(record, values)
    _save_record(ctx, session, record, what, reread=True)
    return record


def create_need(ctx: MatcherContext, session: Session, data: NeedIn) -> Need:
    """Create a need and index it."""
    return _create(ctx, session, Need, data)


def update_need(ctx: MatcherContext, session: Session, need_id: int, data: NeedUpdate) -> Need:
    """Change the sent fields of a need and re-index it."""
    return _update(ctx, session, Need, need_id, data)


def create_outcome(ctx: MatcherContext, session: Session, data: OutcomeIn) -> Outcome:
    """Create an outcome and index it."""
    return _create(ctx, session, Outcome, data)


def update_outcome(ctx: MatcherContext, session: Session, outcome_id: int, data: OutcomeUpdate) -> Outcome:
    """Change the sent fields of an outcome and re-index it."""
    return _update(ctx, session, Outcome, outcome_id, data)


def delete_record(ctx: MatcherContext, session: Session, record: Need | Outcome) -> None:
    """Soft-delete a need or outcome and drop it from every index."""
    record.deleted_at = utcnow()
    # A deleted title must not block a new record of the same name.
    record.title_key = f"{record.title_key}#deleted-{record.id}"
    log_change(session, record)
    session.commit()
    ctx.indexes.sync()


def ensure_valid_k(k: int, max_k: int) -> int:
    if not 1 <= k <= max_k:
        raise Invalid("invalid_k", f"k 须在 1 到 {max_k} 之间")
    return k
