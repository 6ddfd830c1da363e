"""Targets per region and year (or span of years), and progress against them."""
from __future__ import annotations

from datetime import date

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .errors import Conflict, Invalid, NotFound
from .models import Project, Target
from .regions import regions_within


class TargetIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    region: str = Field(min_length=1, max_length=100)
    year_start: int = Field(ge=2000, le=2100)
    year_end: int = Field(ge=2000, le=2100)
    count: int = Field(ge=1, le=100_000)

    @model_validator(mode="after")
    def _order(self):
        if self.year_end < self.year_start:
            raise ValueError("结束年不能早于起始年")
        return self


def create_target(session: Session, data: TargetIn) -> Target:
    target = Target(**data.model_dump())
    session.add(target)
    try:
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        raise Conflict("target_exists", f"{data.region} {data.year_start}–{data.year_end} 的目标已存在，请修改而非新建") from exc
    return target


def get_target(session: Session, target_id: int) -> Target:
    obj = session.get(Target, target_id)
    if obj is None:
        raise NotFound("target_not_found", f"目标 {target_id} 不存在")
    return obj


def update_target(session: Session, target_id: int, data: TargetIn) -> Target:
    target = get_target(session, target_id)
    for key, value in data.model_dump().items():
        setattr(target, key, value)
    try:
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        raise Conflict("target_exists", "同一区域同一期间的目标已存在") from exc
    return target


def delete_target(session: Session, target_id: int) -> None:
    session.delete(get_target(session, target_id))
    session.commit()


# The years a target or a report may cover (the same bounds as TargetIn).
MIN_YEAR, MAX_YEAR = 2000, 2100


def parse_period(year: int | None, period: str | None) -> tuple[int, int]:
    """(start, end) years from ``year=2025`` or ``period=2024-2026``; anything else is a coded 422."""
    if period:
        try:
            start, end = (int(p) for p in period.replace("–", "-").replace("—", "-").split("-"))
        except ValueError as exc:
            raise Invalid("invalid_period", "期间格式须为 起始年-结束年，例如 2024-2026") from exc
        if end < start:
            raise Invalid("invalid_period", "结束年不能早于起始年")
        if start < MIN_YEAR or end > MAX_YEAR:
            raise Invalid("invalid_period", f"期间须在 {MIN_YEAR} 至 {MAX_YEAR} 年之间")
        return start, end
    if year is None:
        raise Invalid("year_required", "须提供 year（如 2025）或 period（如 2024-2026）")
    return year, year


def clean_region(region: str) -> str:
    """The region a report is for, stripped; blank is a coded 422."""
    region = region.strip()
    if not region:
        raise Invalid("region_required", "须提供区域，如 文登区 或 威海市")
    return region


def signed_in(regions: set[str], start: date, until: date) -> list:
    """Where-clauses for the projects a report counts: in ``regions``, signed from ``start`` to ``until``."""
    return [Project.region.in_(regions), Project.signed_date >= start, Project.signed_date <= until]


def progress(session: Session, region: str, start_year: int, end_year: int, today: date | None = None) -> dict:
    """Signed so far against the target, the even-pace expectation for today, and the gap."""
    today = today or date.today()
    target = session.scalar(select(Target).where(Target.region == region, Target.year_start == start_year,
                                                 Target.year_end == end_year))
    start, end = date(start_year, 1, 1), date(end_year, 12, 31)
    counted_until = min(today, end)
    regions = regions_within(region, session)
    signed = 0
    if counted_until >= start:
        signed = session.scalar(select(func.count(Project.id)).where(*signed_in(regions, start, counted_until))) or 0
    total_days = (end - start).days + 1
    elapsed_days = max(0, min(total_days, (today - start).days + 1))
    fraction = elapsed_days / total_days
    count = target.count if target else None
    expected = round(count * fraction, 2) if count is not None else None
    return {
        "region": region,
        "regions_counted": sorted(regions),
        "period": {"start": start.isoformat(), "end": end.isoformat()},
        "as_of": today.isoformat(),
        "target": count,
        "signed": signed,
        "elapsed_fraction": round(fraction, 4),
        "expected_by_now": expected,
        "behind_pace": round(expected - signed, 2) if expected is not None else None,
        "gap_to_target": max(0, count - signed) if count is not None else None,
        "note": None if target else f"{region} {start_year}–{end_year} 尚未设定目标",
    }
