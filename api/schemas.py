"""Response shapes specific to HTTP (pages, errors, reports)."""
from __future__ import annotations

from datetime import date, datetime
from typing import Generic, TypeVar

from pydantic import BaseModel, ConfigDict, field_validator

from matcher.clock import as_utc
from matcher.schemas import UtcDateTime

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    total: int
    offset: int
    limit: int
    items: list[T]


class ErrorOut(BaseModel):
    code: str
    message: str
    details: object | None = None


class RejectedRow(BaseModel):
    row: int
    reason: str


class ImportReportOut(BaseModel):
    kind: str
    filename: str
    total_rows: int
    created: int
    updated: int
    unchanged: int
    rejected: list[RejectedRow]
    applied: bool
    partial: bool
    created_owners: list[str]
    ignored_headers: list[str]
    encoded_texts: int
    message: str


class PairingEventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    actor: str
    at: UtcDateTime
    from_stage: str | None
    to_stage: str
    note: str | None


class ProjectOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    title: str
    enterprise_id: int
    institution_id: int
    pairing_id: int | None
    contract_type: str
    amount_wan: float | None
    signed_date: date
    region: str
    industry_chain: str | None
    broker: str | None
    landed: bool
    landed_date: date | None


class PairingOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    need_id: int
    outcome_id: int | None
    institution_id: int
    broker: str
    stage: str
    decline_reason: str | None
    decline_note: str | None
    score: float | None
    explanation: dict | None
    note: str | None
    version: int
    created_at: UtcDateTime
    stage_changed_at: UtcDateTime
    events: list[PairingEventOut]


class TargetOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    region: str
    year_start: int
    year_end: int
    count: int


class NamedRef(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    name: str


class TitledRef(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    title: str


class EventSlotOut(BaseModel):
    label: str
    starts_at: datetime | None = None
    ends_at: datetime | None = None


class MeetingOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    slot_index: int
    slot_label: str
    need: TitledRef
    enterprise: NamedRef
    outcome: TitledRef
    institution: NamedRef
    score: float
    text_score: float
    summary: str | None


class _CreatedUtc(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    @field_validator("created_at", check_fields=False)
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        # SQLite returns stored UTC times without a zone; answer the same instant on every backend.
        return as_utc(value)


class EventOut(_CreatedUtc):
    """A scheduled matchmaking event; ``gap_vs_greedy`` = (objective − greedy) ÷ objective."""

    id: int
    title: str
    held_on: date | None
    location: str | None
    created_at: datetime
    status: str
    solver: str
    objective: float
    greedy_objective: float
    gap_vs_greedy: float
    solve_seconds: float
    candidate_count: int
    slots: list[EventSlotOut]
    settings: dict
    participants: dict
    skipped: list[dict]
    meetings: list[MeetingOut]


class EventBrief(_CreatedUtc):
    id: int
    title: str
    held_on: date | None
    created_at: datetime
    status: str
    objective: float


class TokenOut(BaseModel):
    """What signing in answers (OAuth2 password flow)."""

    access_token: str
    token_type: str = "bearer"
    expires_in: int
    user: dict


class AuditEntryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    at: datetime
    actor_id: int | None
    actor_name: str
    actor_role: str | None
    action: str
    entity: str
    entity_id: int | None
    changes: dict
    via: str | None

    @field_validator("at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return as_utc(value)
