"""Pydantic schemas: what comes in and goes out, apart from the ORM models.

Input schemas validate and clean (strip whitespace, refuse empty titles,
check vocabularies); output schemas are read from ORM objects.
"""
from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from .clock import as_utc
from .imports.values import clean_prose as clean_text
from .vocab import COOPERATION_MODES, INDUSTRY_CHAINS, INSTITUTION_KINDS, STAGES


def _clean(value: str | None) -> str | None:
    if value is None:
        return None
    return clean_text(value)


def _required(value: str) -> str:
    value = clean_text(value)
    if not value:
        raise ValueError("不能为空或只有空白")
    return value


def _chain(value: str | None) -> str | None:
    value = _clean(value)
    if value and value not in INDUSTRY_CHAINS:
        raise ValueError(f"产业链须为以下之一：{'、'.join(INDUSTRY_CHAINS)}")
    return value or None


def _modes(value: list[str]) -> list[str]:
    bad = [m for m in value if m not in COOPERATION_MODES]
    if bad:
        raise ValueError(f"合作方式「{'、'.join(bad)}」无效，可选：{'、'.join(COOPERATION_MODES)}")
    return list(dict.fromkeys(value))


def _keywords(value: list[str]) -> list[str]:
    return list(dict.fromkeys(k for k in (clean_text(v) for v in value) if k))


Name = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_required)]
Title = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_required)]
LongText = Annotated[str, Field(max_length=5000), AfterValidator(lambda v: clean_text(v))]
ShortText = Annotated[str | None, Field(default=None, max_length=200), AfterValidator(_clean)]
Chain = Annotated[str | None, Field(default=None, max_length=50), AfterValidator(_chain)]
Modes = Annotated[list[Annotated[str, Field(max_length=20)]], Field(default_factory=list, max_length=10),
                  AfterValidator(_modes)]
Keywords = Annotated[list[Annotated[str, Field(max_length=50)]], Field(default_factory=list, max_length=30),
                     AfterValidator(_keywords)]
Money = Annotated[float | None, Field(default=None, ge=0, le=1_000_000)]
# Database ids: positive and within a 32-bit integer column on every backend.
Id = Annotated[int, Field(ge=1, le=2_147_483_647)]
# A stored timestamp as answered: SQLite returns UTC without a zone, and a zone-less time is no RFC 3339
# date-time (a client would read it as its own local time), so every answer carries the UTC offset.
UtcDateTime = Annotated[datetime, AfterValidator(as_utc)]
Mode = Literal[COOPERATION_MODES]  # type: ignore[valid-type]  # one list, in vocab.py


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_max_length=5000)


# -- records in ------------------------------------------------------------
class EnterpriseIn(_In):
    name: Name
    credit_code: Annotated[str | None, Field(default=None, pattern=r"^[0-9A-HJ-NPQRTUWXY]{18}$")]
    region: ShortText = None
    industry_chain: Chain = None
    size: Annotated[Literal["大型", "中型", "小型", "微型"] | None, Field(default=None)]
    contact: ShortText = None
    phone: Annotated[str | None, Field(default=None, max_length=50)]


class EnterpriseUpdate(EnterpriseIn):
    name: Name | None = None


class InstitutionIn(_In):
    name: Name
    kind: Literal["university", "institute", "new_rd"] | None = None
    location: ShortText = None
    contact: ShortText = None
    phone: Annotated[str | None, Field(default=None, max_length=50)]


class InstitutionUpdate(InstitutionIn):
    name: Name | None = None


class _Budget(_In):
    @model_validator(mode="after")
    def _range(self):
        low, high = self._bounds()
        if low is not None and high is not None and low > high:
            raise ValueError("金额下限不能大于上限")
        return self

    def _bounds(self):  # pragma: no cover - overridden
        return None, None


class NeedIn(_Budget):
    enterprise_id: Id
    title: Title
    description: LongText = ""
    keywords: Keywords
    field: ShortText = None
    industry_chain: Chain = None
    budget_min: Money = None
    budget_max: Money = None
    budget_negotiable: bool = False
    cooperation_modes: Modes
    deadline: date | None = None
    visibility: Literal["public", "brokers"] = "public"
    status: Literal["open", "matched", "closed"] = "open"
    contact: ShortText = None
    phone: Annotated[str | None, Field(default=None, max_length=50)]
    external_id: ShortText = None

    def _bounds(self):
        return self.budget_min, self.budget_max


class NeedUpdate(NeedIn):
    enterprise_id: Id | None = None
    title: Title | None = None


class OutcomeIn(_Budget):
    institution_id: Id
    title: Title
    abstract: LongText = ""
    keywords: Keywords
    field: ShortText = None
    industry_chain: Chain = None
    team: ShortText = None
    trl: Annotated[int | None, Field(default=None, ge=1, le=9)]
    stage: Literal["实验室", "小试", "中试", "产业化"] | None = None
    ip_type: ShortText = None
    ip_number: ShortText = None
    cooperation_modes: Modes
    price_min: Money = None
    price_max: Money = None
    price_negotiable: bool = False
    status: Literal["available", "transferred", "withdrawn"] = "available"
    contact: ShortText = None
    phone: Annotated[str | None, Field(default=None, max_length=50)]
    external_id: ShortText = None

    def _bounds(self):
        return self.price_min, self.price_max

    @model_validator(mode="after")
    def _stage_agrees(self):
        if self.trl is not None and self.stage is not None:
            low, high = STAGES[self.stage]
            if not low <= self.trl <= high:
                raise ValueError(f"成熟度阶段「{self.stage}」对应 TRL {low}–{high}，与 TRL {self.trl} 不符")
        return self


class OutcomeUpdate(OutcomeIn):
    institution_id: Id | None = None
    title: Title | None = None


# -- records out -----------------------------------------------------------
class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class EnterpriseOut(_Out):
    id: int
    name: str
    credit_code: str | None
    region: str | None
    industry_chain: str | None
    size: str | None
    contact: str | None
    phone: str | None


class InstitutionOut(_Out):
    id: int
    name: str
    kind: str | None
    kind_label: str | None = None
    location: str | None
    locality: str | None
    contact: str | None
    phone: str | None

    @model_validator(mode="after")
    def _label(self):
        self.kind_label = INSTITUTION_KINDS.get(self.kind or "")
        return self


class NeedOut(_Out):
    id: int
    enterprise: EnterpriseOut
    title: str
    description: str
    keywords: list[str]
    field: str | None
    industry_chain: str | None
    budget_min: float | None
    budget_max: float | None
    budget_negotiable: bool
    cooperation_modes: list[str]
    deadline: date | None
    visibility: str
    status: str
    contact: str | None
    phone: str | None
    external_id: str | None
    created_at: UtcDateTime
    updated_at: UtcDateTime


class OutcomeOut(_Out):
    id: int
    institution: InstitutionOut
    title: str
    abstract: str
    keywords: list[str]
    field: str | None
    industry_chain: str | None
    team: str | None
    trl: int | None
    stage: str | None
    ip_type: str | None
    ip_number: str | None
    cooperation_modes: list[str]
    price_min: float | None
    price_max: float | None
    price_negotiable: bool
    status: str
    contact: str | None
    phone: str | None
    external_id: str | None
    created_at: UtcDateTime
    updated_at: UtcDateTime


# -- matching --------------------------------------------------------------
class MatchFilters(_In):
    industry_chain: Chain = None
    stage: Literal["实验室", "小试", "中试", "产业化"] | None = None
    region: ShortText = None
    cooperation_mode: Mode | None = None
    institution_id: Id | None = None
    enterprise_id: Id | None = None


class SearchRequest(MatchFilters):
    text: Annotated[str, Field(min_length=1, max_length=2000), AfterValidator(_required)]
    target: Literal["outcomes", "needs"] = "outcomes"
    k: Annotated[int, Field(ge=1, le=100)] = 10


class SentenceFit(BaseModel):
    sentence: str
    score: float


class FactorOut(BaseModel):
    name: str
    label: str
    value: float | None
    weight: float
    contribution: float
    note: str


class Explanation(BaseModel):
    summary: str
    shared_terms: list[str]
    related_terms: list[str] = []
    best_sentences: list[SentenceFit]
    missing_fields: list[str]
    factors: list[FactorOut] = []


class PairingBrief(BaseModel):
    id: int
    stage: str
    stage_label: str
    decline_reason: str | None


class MatchOut(BaseModel):
    rank: int
    score: float
    text_score: float
    confidence: float
    weak: bool
    need: NeedOut | None = None
    outcome: OutcomeOut | None = None
    explanation: Explanation
    pairing: PairingBrief | None = None


class MatchList(BaseModel):
    query: dict
    results: list[MatchOut]
    note: str | None = None
