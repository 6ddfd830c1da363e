"""The pairing funnel, read from each pairing's history of stage changes.

Every figure is computed from ``pairing_events`` as they stood at the end of the
local day ``as_of``: a later move is ignored, so a report for a past day reads
the same tomorrow. A pairing belongs to the region its signed project counts in,
or else to the region of the firm behind its need (the rule a project's region
follows by default).
"""
from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from .clock import as_utc, end_of_local_day, local_date
from .models import Pairing, Project
from .regions import region_of, regions_within
from .vocab import DECLINE_REASONS, PAIRING_STAGES

OPEN_STAGES = ("proposed", "contacted", "negotiating")
FUNNEL_STAGES = (*OPEN_STAGES, "signed")
CLOSED_STAGES = ("signed", "declined")
_DAY_SECONDS = 86_400


@dataclass
class Track:
    """One pairing's history up to the cut-off: (stage entered, when) in order."""

    pairing_id: int
    region: str
    broker: str
    steps: list[tuple[str, datetime]]
    decline_reason: str | None

    @property
    def stage(self) -> str:
        return self.steps[-1][0]

    @property
    def proposed_on(self) -> date:
        return local_date(self.steps[0][1])

    def reached(self, stage: str) -> bool:
        return any(s == stage for s, _ in self.steps)

    def stays(self) -> list[tuple[str, float]]:
        """(stage, days spent in it) for every stage the pairing has already left."""
        return [(s, (b - a).total_seconds() / _DAY_SECONDS) for (s, a), (_, b) in zip(self.steps, self.steps[1:])]


def load_tracks(session: Session, regions: set[str], as_of: date) -> list[Track]:
    """Every pairing counted in ``regions`` as it stood at the end of local day ``as_of``.

    Pairings proposed after that day are left out; moves after it are ignored.
    """
    cutoff = end_of_local_day(as_of)
    project_region = dict(session.execute(
        select(Project.pairing_id, Project.region).where(Project.pairing_id.is_not(None))).all())
    tracks = []
    for p in session.scalars(select(Pairing).options(selectinload(Pairing.events))).unique():
        region = project_region.get(p.id) or region_of(p.need.enterprise.region if p.need else None, session)
        if region not in regions:
            continue
        events = sorted(p.events, key=lambda e: (as_utc(e.at), e.id))
        steps = [(e.to_stage, as_utc(e.at)) for e in events if as_utc(e.at) <= cutoff]
        if not steps:
            continue
        declined = steps[-1][0] == "declined"
        tracks.append(Track(p.id, region, p.broker, steps, p.decline_reason if declined else None))
    return tracks


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def conversion_rates(tracks: list[Track]) -> dict[str, dict]:
    """For each open stage: of the pairings that reached it and have since ended, the share that signed.

    Only ended (signed or declined) pairings count: an open one has not failed
    yet, and counting it as a failure would bias the rate down. ``sample`` is
    how many ended pairings the rate rests on.
    """
    ended = [t for t in tracks if t.stage in CLOSED_STAGES]
    out = {}
    for stage in OPEN_STAGES:
        reached = [t for t in ended if t.reached(stage)]
        signed = sum(1 for t in reached if t.stage == "signed")
        out[stage] = {"sample": len(reached), "signed": signed, "rate": _rate(signed, len(reached))}
    return out


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 1) if values else None


def funnel(tracks: list[Track], start: date, end: date) -> dict:
    """The funnel of the pairings proposed from ``start`` to ``end`` (the cohort).

    Per stage: how many reached it, how many sit in it now, the conversion to
    the next stage and to signed (reached next ÷ reached this), and the median
    days spent in it (stays already finished, with their count).
    """
    cohort = [t for t in tracks if start <= t.proposed_on <= end]
    reached = {s: sum(1 for t in cohort if t.reached(s)) for s in PAIRING_STAGES}
    current = Counter(t.stage for t in cohort)
    stays: dict[str, list[float]] = {s: [] for s in OPEN_STAGES}
    declined_from: Counter = Counter()
    for t in cohort:
        for stage, days in t.stays():
            if stage in stays:
                stays[stage].append(days)
        if t.stage == "declined" and len(t.steps) > 1:
            declined_from[t.steps[-2][0]] += 1
    stages = []
    for i, stage in enumerate(FUNNEL_STAGES):
        nxt = FUNNEL_STAGES[i + 1] if i + 1 < len(FUNNEL_STAGES) else None
        open_stage = stage in OPEN_STAGES
        stages.append({
            "stage": stage,
            "label": PAIRING_STAGES[stage],
            "reached": reached[stage],
            "current": current[stage],
            "conversion_to_next": _rate(reached[nxt], reached[stage]) if nxt else None,
            "conversion_to_signed": _rate(reached["signed"], reached[stage]) if open_stage else None,
            "median_days": _median(stays[stage]) if open_stage else None,
            "median_days_sample": len(stays[stage]) if open_stage else None,
            "declined_here": declined_from[stage] if open_stage else None,
        })
    reasons = Counter(t.decline_reason for t in cohort if t.stage == "declined")
    return {
        "cohort": {"proposed_from": start.isoformat(), "proposed_to": end.isoformat(), "pairings": len(cohort)},
        "stages": stages,
        "declined": {
            "count": reached["declined"],
            "by_reason": [{"reason": r, "label": DECLINE_REASONS.get(r or "", "未填写"), "count": n}
                          for r, n in sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0] or ""))],
        },
    }


def funnel_report(session: Session, region: str, start_year: int, end_year: int, as_of: date) -> dict:
    """The funnel of ``region`` (its districts included) for pairings proposed in the period up to ``as_of``."""
    regions = regions_within(region, session)
    start, end = date(start_year, 1, 1), date(end_year, 12, 31)
    tracks = load_tracks(session, regions, as_of)
    return {
        "region": region,
        "regions_counted": sorted(regions),
        "period": {"start": start.isoformat(), "end": end.isoformat()},
        "as_of": as_of.isoformat(),
        **funnel(tracks, start, min(end, as_of)),
    }
