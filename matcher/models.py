"""SQLAlchemy ORM models: the database is the one source of truth.

Needs and outcomes are soft-deleted (``deleted_at``) so that the pairings and
projects that refer to them keep their history; a deleted record is gone from
every API answer and from the indexes.
"""
from __future__ import annotations

from datetime import date, datetime, timezone

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    pass


class Timestamps:
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class ServiceMeta(Base):
    """Key/value facts about this database (its instance id, for index files)."""

    __tablename__ = "service_meta"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(200))


class Enterprise(Timestamps, Base):
    __tablename__ = "enterprises"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    credit_code: Mapped[str | None] = mapped_column(String(18), unique=True)
    region: Mapped[str | None] = mapped_column(String(100))
    industry_chain: Mapped[str | None] = mapped_column(String(50))
    size: Mapped[str | None] = mapped_column(String(20))
    contact: Mapped[str | None] = mapped_column(String(100))
    phone: Mapped[str | None] = mapped_column(String(50))


class Institution(Timestamps, Base):
    __tablename__ = "institutions"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str | None] = mapped_column(String(20))  # university / institute / new_rd
    location: Mapped[str | None] = mapped_column(String(100))
    locality: Mapped[str | None] = mapped_column(String(20))  # local / weihai / shandong / other
    contact: Mapped[str | None] = mapped_column(String(100))
    phone: Mapped[str | None] = mapped_column(String(50))


class Need(Timestamps, Base):
    """An enterprise's technical need (企业技术需求)."""

    __tablename__ = "needs"
    __table_args__ = (UniqueConstraint("enterprise_id", "title_key", name="uq_need_enterprise_title"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    enterprise_id: Mapped[int] = mapped_column(ForeignKey("enterprises.id"), index=True)
    external_id: Mapped[str | None] = mapped_column(String(100))
    title: Mapped[str] = mapped_column(String(500))
    title_key: Mapped[str] = mapped_column(String(500))
    description: Mapped[str] = mapped_column(Text, default="")
    keywords: Mapped[list] = mapped_column(JSON, default=list)
    field: Mapped[str | None] = mapped_column(String(100))
    industry_chain: Mapped[str | None] = mapped_column(String(50), index=True)
    budget_min: Mapped[float | None] = mapped_column(Float)
    budget_max: Mapped[float | None] = mapped_column(Float)
    budget_negotiable: Mapped[bool] = mapped_column(Boolean, default=False)
    cooperation_modes: Mapped[list] = mapped_column(JSON, default=list)
    deadline: Mapped[date | None] = mapped_column(Date)
    visibility: Mapped[str] = mapped_column(String(20), default="public")
    status: Mapped[str] = mapped_column(String(20), default="open")
    contact: Mapped[str | None] = mapped_column(String(100))
    phone: Mapped[str | None] = mapped_column(String(50))
    content_hash: Mapped[str] = mapped_column(String(64), default="")
    # The explained text's terms (matcher.explain.explain_terms), kept at write so a match never segments it.
    # Deferred: ranking loads ~100 candidates and explains ~10 (matching.explained loads theirs in one query).
    explain_terms: Mapped[list | None] = mapped_column(JSON, deferred=True)
    # The terms of the text the need asks with (textutil.terms of documents.document_text), kept at write so its
    # match page never segments it (a first view's mean fell by about a fifth at 10^5 outcomes). Needs only: an
    # outcome's list would cost ~1 KB a row at 10^6 outcomes, and outcome pages are not the ones brokers open most.
    query_terms: Mapped[list | None] = mapped_column(JSON, deferred=True)
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)

    enterprise: Mapped[Enterprise] = relationship(lazy="joined")

    @property
    def body_length(self) -> int:
        """Characters of the description (what sentence-level scoring compares with its threshold)."""
        return len(self.description or "")


class Outcome(Timestamps, Base):
    """A university or institute research outcome (科技成果)."""

    __tablename__ = "outcomes"
    __table_args__ = (UniqueConstraint("institution_id", "title_key", name="uq_outcome_institution_title"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    institution_id: Mapped[int] = mapped_column(ForeignKey("institutions.id"), index=True)
    external_id: Mapped[str | None] = mapped_column(String(100))
    title: Mapped[str] = mapped_column(String(500))
    title_key: Mapped[str] = mapped_column(String(500))
    abstract: Mapped[str] = mapped_column(Text, default="")
    keywords: Mapped[list] = mapped_column(JSON, default=list)
    field: Mapped[str | None] = mapped_column(String(100))
    industry_chain: Mapped[str | None] = mapped_column(String(50), index=True)
    team: Mapped[str | None] = mapped_column(String(200))
    trl: Mapped[int | None] = mapped_column(Integer)
    stage: Mapped[str | None] = mapped_column(String(20), index=True)
    ip_type: Mapped[str | None] = mapped_column(String(50))
    ip_number: Mapped[str | None] = mapped_column(String(100))
    cooperation_modes: Mapped[list] = mapped_column(JSON, default=list)
    price_min: Mapped[float | None] = mapped_column(Float)
    price_max: Mapped[float | None] = mapped_column(Float)
    price_negotiable: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(20), default="available")
    contact: Mapped[str | None] = mapped_column(String(100))
    phone: Mapped[str | None] = mapped_column(String(50))
    content_hash: Mapped[str] = mapped_column(String(64), default="")
    # The explained text's terms (matcher.explain.explain_terms), kept at write so a match never segments it.
    # Deferred: ranking loads ~100 candidates and explains ~10 (matching.explained loads theirs in one query).
    explain_terms: Mapped[list | None] = mapped_column(JSON, deferred=True)
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)

    institution: Mapped[Institution] = relationship(lazy="joined")

    @property
    def body_length(self) -> int:
        """Characters of the abstract (what sentence-level scoring compares with its threshold)."""
        return len(self.abstract or "")


class IndexChange(Base):
    """An append-only log of which need/outcome changed, in commit order.

    Every worker applies the log to its in-memory indexes; the sequence number
    of the last applied entry is the index's data version. Writes to pairings,
    projects, parties and regions log a ``facts`` entry (no index work): the
    version then also says when a cached match page went out of date.
    """

    __tablename__ = "index_changes"
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    side: Mapped[str] = mapped_column(String(10))  # needs / outcomes / facts
    record_id: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Pairing(Timestamps, Base):
    """A proposed need–outcome (or need–institution) match followed to its end."""

    __tablename__ = "pairings"
    id: Mapped[int] = mapped_column(primary_key=True)
    need_id: Mapped[int] = mapped_column(ForeignKey("needs.id"), index=True)
    outcome_id: Mapped[int | None] = mapped_column(ForeignKey("outcomes.id"), index=True)
    institution_id: Mapped[int] = mapped_column(ForeignKey("institutions.id"), index=True)
    broker: Mapped[str] = mapped_column(String(100))
    stage: Mapped[str] = mapped_column(String(20), default="proposed", index=True)
    decline_reason: Mapped[str | None] = mapped_column(String(30))
    decline_note: Mapped[str | None] = mapped_column(Text)
    score: Mapped[float | None] = mapped_column(Float)
    explanation: Mapped[dict | None] = mapped_column(JSON)
    note: Mapped[str | None] = mapped_column(Text)
    version: Mapped[int] = mapped_column(Integer, default=1)
    stage_changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    need: Mapped[Need] = relationship(lazy="joined")
    outcome: Mapped[Outcome | None] = relationship(lazy="joined")
    institution: Mapped[Institution] = relationship(lazy="joined")
    events: Mapped[list["PairingEvent"]] = relationship(
        back_populates="pairing", order_by="PairingEvent.id", cascade="all, delete-orphan"
    )

    __mapper_args__ = {"version_id_col": version}


class PairingEvent(Base):
    """One change of a pairing: who moved it from which stage to which, and why."""

    __tablename__ = "pairing_events"
    id: Mapped[int] = mapped_column(primary_key=True)
    pairing_id: Mapped[int] = mapped_column(ForeignKey("pairings.id"), index=True)
    actor: Mapped[str] = mapped_column(String(100))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    from_stage: Mapped[str | None] = mapped_column(String(20))
    to_stage: Mapped[str] = mapped_column(String(20))
    note: Mapped[str | None] = mapped_column(Text)

    pairing: Mapped[Pairing] = relationship(back_populates="events")


class Project(Timestamps, Base):
    """A signed cooperation project (合作项目): what the target counts."""

    __tablename__ = "projects"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(500))
    enterprise_id: Mapped[int] = mapped_column(ForeignKey("enterprises.id"), index=True)
    institution_id: Mapped[int] = mapped_column(ForeignKey("institutions.id"), index=True)
    pairing_id: Mapped[int | None] = mapped_column(ForeignKey("pairings.id"), unique=True)
    contract_type: Mapped[str] = mapped_column(String(30))
    amount_wan: Mapped[float | None] = mapped_column(Float)
    signed_date: Mapped[date] = mapped_column(Date, index=True)
    region: Mapped[str] = mapped_column(String(100), index=True)
    industry_chain: Mapped[str | None] = mapped_column(String(50))
    broker: Mapped[str | None] = mapped_column(String(100))
    landed: Mapped[bool] = mapped_column(Boolean, default=False)
    landed_date: Mapped[date | None] = mapped_column(Date)

    enterprise: Mapped[Enterprise] = relationship(lazy="joined")
    institution: Mapped[Institution] = relationship(lazy="joined")


class Target(Timestamps, Base):
    """A region's target count of signed projects for a year or a span of years."""

    __tablename__ = "targets"
    __table_args__ = (UniqueConstraint("region", "year_start", "year_end", name="uq_target_region_period"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    region: Mapped[str] = mapped_column(String(100))
    year_start: Mapped[int] = mapped_column(Integer)
    year_end: Mapped[int] = mapped_column(Integer)
    count: Mapped[int] = mapped_column(Integer)


class MatchEvent(Timestamps, Base):
    """A scheduled matchmaking event (对接会): its settings, the solver's result and its meetings."""

    __tablename__ = "match_events"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    held_on: Mapped[date | None] = mapped_column(Date)
    location: Mapped[str | None] = mapped_column(String(200))
    # [{"label", "starts_at", "ends_at"}] in the order the meetings run.
    slots: Mapped[list] = mapped_column(JSON, default=list)
    # Capacities and other knobs as the caller sent them, to read the schedule back against.
    settings: Mapped[dict] = mapped_column(JSON, default=dict)
    # {"need_ids": [...], "outcome_ids": [...]} after expanding firms and institutions.
    participants: Mapped[dict] = mapped_column(JSON, default=dict)
    # Records left out of the event and why (withdrawn outcome, declined pair, ...).
    skipped: Mapped[list] = mapped_column(JSON, default=list)
    candidate_count: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(20))  # optimal / feasible
    solver: Mapped[str] = mapped_column(String(20))
    objective: Mapped[float] = mapped_column(Float)
    greedy_objective: Mapped[float] = mapped_column(Float)
    gap_vs_greedy: Mapped[float] = mapped_column(Float)
    solve_seconds: Mapped[float] = mapped_column(Float)

    meetings: Mapped[list["MatchEventMeeting"]] = relationship(
        back_populates="event", order_by="[MatchEventMeeting.slot_index, MatchEventMeeting.id]",
        cascade="all, delete-orphan", lazy="selectin",
    )


class MatchEventMeeting(Base):
    """One scheduled need–outcome meeting of an event, in one slot."""

    __tablename__ = "match_event_meetings"
    __table_args__ = (UniqueConstraint("event_id", "need_id", "outcome_id", name="uq_event_meeting_pair"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("match_events.id", ondelete="CASCADE"), index=True)
    slot_index: Mapped[int] = mapped_column(Integer)
    slot_label: Mapped[str] = mapped_column(String(50))
    need_id: Mapped[int] = mapped_column(ForeignKey("needs.id"))
    outcome_id: Mapped[int] = mapped_column(ForeignKey("outcomes.id"))
    enterprise_id: Mapped[int] = mapped_column(ForeignKey("enterprises.id"), index=True)
    institution_id: Mapped[int] = mapped_column(ForeignKey("institutions.id"), index=True)
    score: Mapped[float] = mapped_column(Float)
    text_score: Mapped[float] = mapped_column(Float)
    summary: Mapped[str | None] = mapped_column(Text)

    event: Mapped[MatchEvent] = relationship(back_populates="meetings")
    need: Mapped[Need] = relationship(lazy="joined")
    outcome: Mapped[Outcome] = relationship(lazy="joined")
    enterprise: Mapped[Enterprise] = relationship(lazy="joined")
    institution: Mapped[Institution] = relationship(lazy="joined")


class User(Timestamps, Base):
    """A person who signs in: an admin, a broker, or a user speaking for one enterprise or one institution.

    Users are never deleted (the audit log names them); ``active`` switches
    one off. ``token_version`` grows on a password, role or status change so
    that every token issued before it stops working.
    """

    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(50), unique=True)
    display_name: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(20))  # admin / broker / enterprise / institution
    enterprise_id: Mapped[int | None] = mapped_column(ForeignKey("enterprises.id"), index=True)
    institution_id: Mapped[int | None] = mapped_column(ForeignKey("institutions.id"), index=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    token_version: Mapped[int] = mapped_column(Integer, default=1)
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    enterprise: Mapped[Enterprise | None] = relationship(lazy="joined")
    institution: Mapped[Institution | None] = relationship(lazy="joined")


class ApiKey(Base):
    """A long-lived key a script uses instead of a password; only its SHA-256 is stored."""

    __tablename__ = "api_keys"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    user: Mapped[User] = relationship(lazy="joined")


class AuditEntry(Base):
    """One change to a record: who, when, what, and each changed field before and after.

    Append-only: no route writes or deletes it, and the migration adds
    database triggers that refuse UPDATE and DELETE.
    """

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    actor_id: Mapped[int | None] = mapped_column(Integer, index=True)
    actor_name: Mapped[str] = mapped_column(String(100))
    actor_role: Mapped[str | None] = mapped_column(String(20))
    action: Mapped[str] = mapped_column(String(20))  # create / update / delete
    entity: Mapped[str] = mapped_column(String(30), index=True)
    entity_id: Mapped[int | None] = mapped_column(Integer, index=True)
    changes: Mapped[dict] = mapped_column(JSON, default=dict)
    via: Mapped[str | None] = mapped_column(String(200))


class Region(Timestamps, Base):
    """A region of the tree progress reports roll up (district within city within province).

    ``aliases`` are other spellings found in free-text locations ("文登" for 文登区); names and aliases
    share one namespace, so a spelling always means one region.
    """

    __tablename__ = "regions"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("regions.id"), index=True)
    aliases: Mapped[list] = mapped_column(JSON, default=list)


class LoginFailure(Base):
    """One failed sign-in, counted against a user name and against a client address.

    ``key`` is ``user:<name>`` or ``ip:<address>``; rows older than the throttling window are removed as
    new failures arrive, so the table stays small.
    """

    __tablename__ = "login_failures"
    __table_args__ = (Index("ix_login_failures_key_at", "key", "at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
