"""Pairings and their stage machine: proposed → contacted → negotiating → signed | declined."""
from __future__ import annotations

import json
from datetime import date, datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from .clock import as_utc, local_date
from .errors import Conflict, Invalid, NotFound
from .models import Pairing, PairingEvent, Project, utcnow
from .projects import ProjectTerms, create_project_for_pairing
from .records import get_need, get_outcome
from .schemas import Id, Name
from .vocab import DECLINE_REASONS, PAIRING_STAGES

MAX_EXPLANATION_CHARS = 20_000

# Which stage may follow which; declined is reachable from every open stage.
TRANSITIONS = {
    "proposed": ("contacted", "declined"),
    "contacted": ("negotiating", "declined"),
    "negotiating": ("signed", "declined"),
    "signed": (),
    "declined": (),
}


class PairingCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    need_id: Id
    outcome_id: Id
    broker: Annotated[Name | None, Field(default=None, max_length=100,
                                         description="负责的技术经理人；不填则为当前登录用户")]
    note: str | None = Field(default=None, max_length=2000)
    score: float | None = Field(default=None, ge=-10, le=10)
    explanation: dict | None = None

    @field_validator("explanation")
    @classmethod
    def _small(cls, value: dict | None) -> dict | None:
        # Kept as sent in the pairing row: bound it like every other text field.
        if value is not None and len(json.dumps(value, ensure_ascii=False, default=str)) > MAX_EXPLANATION_CHARS:
            raise ValueError(f"匹配解释过长（最多{MAX_EXPLANATION_CHARS}字）")
        return value


class PairingMove(BaseModel):
    model_config = ConfigDict(extra="forbid")
    to_stage: str = Field(max_length=20)
    actor: Annotated[Name | None, Field(default=None, max_length=100,
                                        description="经办人；不填则为当前登录用户")]
    version: int = Field(ge=1, description="The version the caller last read; a stale version is refused.")
    note: str | None = Field(default=None, max_length=2000)
    decline_reason: str | None = Field(default=None, max_length=30)
    decline_note: str | None = Field(default=None, max_length=2000)
    project: ProjectTerms | None = None


def get_pairing(session: Session, pairing_id: int) -> Pairing:
    obj = session.get(Pairing, pairing_id)
    if obj is None:
        raise NotFound("pairing_not_found", f"对接记录 {pairing_id} 不存在")
    return obj


def propose(session: Session, data: PairingCreate, at: datetime | None = None) -> Pairing:
    """Add a proposed pairing to the caller's transaction (not committed).

    The same need–outcome pair is never proposed twice. ``at`` backdates the
    proposal (seeded history); by default it is now.
    """
    need = get_need(session, data.need_id)
    outcome = get_outcome(session, data.outcome_id)
    existing = session.scalar(select(Pairing).where(Pairing.need_id == need.id, Pairing.outcome_id == outcome.id))
    if existing is not None:
        raise Conflict("pairing_exists",
                       f"该需求与成果已有对接记录（编号{existing.id}，{PAIRING_STAGES[existing.stage]}），不能重复推荐",
                       details={"pairing_id": existing.id})
    when = at or utcnow()
    pairing = Pairing(need_id=need.id, outcome_id=outcome.id, institution_id=outcome.institution_id,
                      broker=data.broker.strip(), note=data.note, score=data.score, explanation=data.explanation,
                      stage="proposed", created_at=when, stage_changed_at=when)
    pairing.events.append(PairingEvent(actor=data.broker.strip(), at=when, from_stage=None, to_stage="proposed",
                                       note=data.note))
    session.add(pairing)
    return pairing


def _named(value: str | None, fallback: str | None, field: str) -> str:
    name = (value or fallback or "").strip()
    if not name:
        raise Invalid(f"{field}_required", "须填写经办的技术经理人" if field == "actor" else "须填写负责的技术经理人")
    return name


def create_pairing(session: Session, data: PairingCreate, by: str | None = None) -> Pairing:
    """Propose a need–outcome pairing and commit it; the same pair is never proposed twice.

    ``by`` (the signed-in user's name) owns the pairing unless ``data.broker`` names someone.
    """
    data = data.model_copy(update={"broker": _named(data.broker, by, "broker")})
    pairing = propose(session, data)
    session.commit()
    return pairing


def apply_move(session: Session, pairing: Pairing, move: PairingMove, today: date | None = None,
               at: datetime | None = None) -> None:
    """Check a move against the stage machine and apply it in the caller's transaction (not committed).

    The caller's ``version`` must be the current one: two brokers editing the
    same pairing cannot silently overwrite each other. ``at`` backdates the
    event (seeded history); by default it is now.
    """
    if move.version != pairing.version:
        raise Conflict("version_conflict",
                       f"对接记录已被他人修改（当前版本 {pairing.version}，您提交的是 {move.version}），请刷新后重试",
                       details={"current_version": pairing.version})
    if move.to_stage not in PAIRING_STAGES:
        raise Invalid("invalid_stage", f"阶段「{move.to_stage}」无效，可选：{'、'.join(PAIRING_STAGES)}")
    if at is not None and pairing.events and as_utc(at) < as_utc(pairing.events[-1].at):
        # Stage durations are read from consecutive events; they must not run backwards.
        raise Invalid("history_out_of_order", "对接历史的时间不能早于上一步")
    allowed = TRANSITIONS[pairing.stage]
    if move.to_stage not in allowed:
        nexts = "、".join(PAIRING_STAGES[s] for s in allowed) or "无（已结束）"
        raise Conflict("illegal_transition",
                       f"不能从「{PAIRING_STAGES[pairing.stage]}」转到「{PAIRING_STAGES[move.to_stage]}」；可转到：{nexts}")
    if move.to_stage == "declined":
        if move.decline_reason not in DECLINE_REASONS:
            raise Invalid("decline_reason_required",
                          f"标记未成功须选择原因：{'、'.join(f'{k}（{v}）' for k, v in DECLINE_REASONS.items())}")
        if move.decline_reason == "other" and not (move.decline_note or "").strip():
            raise Invalid("decline_note_required", "原因为「其他」时须填写说明")
        pairing.decline_reason = move.decline_reason
        pairing.decline_note = move.decline_note
    if move.to_stage == "signed":
        if move.project is None:
            raise Invalid("project_required", "签约须填写项目信息（合同类型、签约日期等）")
        create_project_for_pairing(session, pairing, move.project, move.actor, today=today)
    when = at or utcnow()
    from_stage = pairing.stage
    pairing.stage = move.to_stage
    pairing.stage_changed_at = when
    pairing.events.append(PairingEvent(actor=move.actor, at=when, from_stage=from_stage, to_stage=move.to_stage,
                                       note=move.note or move.decline_note))


def move_pairing(session: Session, pairing_id: int, move: PairingMove, today: date | None = None,
                 by: str | None = None) -> Pairing:
    """Move a pairing to its next stage, keeping history; signing records the project (committed).

    ``by`` (the signed-in user's name) is the event's actor unless ``move.actor`` names someone.
    """
    move = move.model_copy(update={"actor": _named(move.actor, by, "actor")})
    pairing = get_pairing(session, pairing_id)
    try:
        # Autoflush inside apply_move can already meet a concurrent move's newer version.
        apply_move(session, pairing, move, today=today)
        session.commit()
    except StaleDataError as exc:
        session.rollback()
        raise Conflict("version_conflict", "对接记录已被他人同时修改，请刷新后重试") from exc
    return pairing


def record_history(session: Session, need_id: int, outcome_id: int, broker: str, steps: list[dict],
                   note: str | None = None) -> Pairing:
    """Add a pairing with an already dated history to the caller's transaction (seed data, back-filled records).

    ``steps`` run from the proposal on, each ``{"stage", "at"}`` (an aware
    datetime) plus what that move needs (``decline_reason``, ``decline_note``,
    ``contract_type`` for signing; optional ``actor``, ``note``). Every step goes
    through the same checks as a live move; a signed step records its project,
    dated the local day it was signed.
    """
    first, *moves = steps
    pairing = propose(session, PairingCreate(need_id=need_id, outcome_id=outcome_id, broker=broker, note=note),
                      at=first["at"])
    session.flush()  # signing needs the pairing's id
    for step in moves:
        project = None
        if step["stage"] == "signed":
            project = ProjectTerms(contract_type=step.get("contract_type", ""), signed_date=local_date(step["at"]))
        apply_move(session, pairing, PairingMove(
            to_stage=step["stage"], actor=step.get("actor") or broker, version=pairing.version, note=step.get("note"),
            decline_reason=step.get("decline_reason"), decline_note=step.get("decline_note"), project=project),
            at=step["at"])
        session.flush()  # one version per move, as moves made one by one leave it
    return pairing


def check_stage_filter(stage: str | None) -> str | None:
    """A stage used as a list filter must be one of the known stages (else 422, not an empty list)."""
    if stage is not None and stage not in PAIRING_STAGES:
        raise Invalid("invalid_stage", f"阶段「{stage}」无效，可选：{'、'.join(PAIRING_STAGES)}")
    return stage


def project_of(session: Session, pairing_id: int) -> Project | None:
    return session.scalar(select(Project).where(Project.pairing_id == pairing_id))
