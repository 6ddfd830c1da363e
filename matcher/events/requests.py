"""What a broker sends to plan a matchmaking event (对接会)."""
from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..schemas import Id, Name, ShortText, Title

# Bounds that keep one solve to seconds on a small server (see docs/pipeline.md).
MAX_SLOTS = 48
MAX_LISTED_IDS = 2000

Label = Annotated[Name, Field(max_length=50)]


class SlotIn(BaseModel):
    """One time slot; ``label`` names it on the agenda (e.g. "09:00–09:30")."""

    model_config = ConfigDict(extra="forbid")
    label: Label
    starts_at: datetime | None = None
    ends_at: datetime | None = None

    @model_validator(mode="after")
    def _order(self):
        if self.starts_at and self.ends_at and self.ends_at <= self.starts_at:
            raise ValueError(f"时段「{self.label}」的结束时间须晚于开始时间")
        return self


class PairRef(BaseModel):
    model_config = ConfigDict(extra="forbid")
    need_id: Id
    outcome_id: Id


class Unavailability(BaseModel):
    """A firm or an institution that cannot meet in one slot."""

    model_config = ConfigDict(extra="forbid")
    slot: Label
    enterprise_id: Id | None = None
    institution_id: Id | None = None

    @model_validator(mode="after")
    def _one_party(self):
        if (self.enterprise_id is None) == (self.institution_id is None):
            raise ValueError("不可到场设置须且只能填写 enterprise_id 或 institution_id 之一")
        return self


def _ids(limit: int):
    return Annotated[list[Id], Field(default_factory=list, max_length=limit)]


class EventIn(BaseModel):
    """Participants, slots, capacities and exclusions of an event; scores come from the matcher."""

    model_config = ConfigDict(extra="forbid")
    title: Title
    held_on: date | None = None
    location: ShortText = None
    need_ids: _ids(MAX_LISTED_IDS)
    enterprise_ids: _ids(MAX_LISTED_IDS)
    outcome_ids: _ids(MAX_LISTED_IDS)
    institution_ids: _ids(MAX_LISTED_IDS)
    slots: Annotated[list[SlotIn], Field(min_length=1, max_length=MAX_SLOTS)]
    max_meetings_per_firm: Annotated[int, Field(ge=1, le=MAX_SLOTS)] = 3
    max_meetings_per_institution: Annotated[int, Field(ge=1, le=MAX_SLOTS)] = 3
    max_meetings_per_slot: Annotated[int, Field(ge=1, le=1000)] = 10
    min_meetings_per_firm: Annotated[int, Field(ge=0, le=MAX_SLOTS)] = 0
    candidates_per_need: Annotated[int, Field(ge=1, le=50)] = 10
    min_score: Annotated[float | None, Field(default=None, ge=0, le=2)]
    excluded_pairs: Annotated[list[PairRef], Field(default_factory=list, max_length=10_000)]
    unavailable: Annotated[list[Unavailability], Field(default_factory=list, max_length=10_000)]
    time_limit_s: Annotated[float, Field(ge=0.5, le=30)] = 10.0

    @field_validator("slots", mode="before")
    @classmethod
    def _labels_as_slots(cls, value):
        # A bare string is a slot label without times: ["09:00", "09:30"] is the short form.
        if isinstance(value, list):
            return [{"label": v} if isinstance(v, str) else v for v in value]
        return value
