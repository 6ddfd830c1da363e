"""The bureau's progress report: target, signed, pace, two period-end projections, breakdowns.

Builds on :func:`matcher.targets.progress` (target, signed, even-pace expectation,
gap) and adds what the monthly report needs. Both projections state their method
and their inputs, so a reader can redo the arithmetic by hand.
"""
from __future__ import annotations

import calendar
from collections import Counter
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from .funnel import OPEN_STAGES, Track, conversion_rates, load_tracks
from .models import Project
from .regions import regions_within
from .targets import progress, signed_in
from .vocab import PAIRING_STAGES

UNFILLED = "未填写"


def counted_projects(session: Session, region: str, start_year: int, end_year: int, as_of: date) -> list[Project]:
    """The signed projects the report counts: in the region or below it, signed in the period up to ``as_of``."""
    start, end = date(start_year, 1, 1), date(end_year, 12, 31)
    until = min(as_of, end)
    if until < start:
        return []
    stmt = select(Project).where(*signed_in(regions_within(region, session), start, until))
    return list(session.scalars(stmt.order_by(Project.signed_date, Project.id)).unique())


def _shortfall(target: int | None, projection: float | None) -> float | None:
    if target is None or projection is None:
        return None
    return round(max(0.0, target - projection), 2)


def run_rate_projection(signed: int, as_of: date, start: date, end: date, target: int | None) -> dict:
    """Period-end count if signing goes on at the pace so far: signed ÷ elapsed share of the period."""
    total = (end - start).days + 1
    elapsed = max(0, min(total, (as_of - start).days + 1))
    out = {"method": "run_rate", "label": "按签约速度",
           "description": "期末预测 = 已签约数 ÷ 期间已过比例（已过天数 ÷ 期间总天数，含当天）",
           "inputs": {"signed": signed, "elapsed_days": elapsed, "total_days": total}}
    if as_of >= end:
        value, formula, note = float(signed), f"期间已结束：{signed}", "期间已结束，预测即实际签约数"
    elif elapsed == 0:
        value, formula, note = None, None, "期间尚未开始，无法按签约速度预测"
    else:
        value = round(signed * total / elapsed, 2)
        formula, note = f"{signed} ÷ ({elapsed}/{total}) = {value}", None
    return {**out, "projection": value, "formula": formula, "projected_shortfall": _shortfall(target, value),
            "note": note}


def pipeline_projection(signed: int, tracks: list[Track], as_of: date, end: date, target: int | None) -> dict:
    """Period-end count from the open pipeline: signed + Σ open pairings per stage × that stage's conversion rate.

    Rates come from :func:`matcher.funnel.conversion_rates` over every ended
    pairing of the region up to ``as_of``; each stage shows its sample size.
    """
    rates = conversion_rates(tracks)
    open_counts = Counter(t.stage for t in tracks if t.stage in OPEN_STAGES)
    stages, expected, unrated = [], 0.0, []
    for stage in OPEN_STAGES:
        rate = rates[stage]["rate"]
        n_open = open_counts[stage]
        add = round(n_open * rate, 4) if rate is not None else None
        if add is not None:
            expected += n_open * rate
        elif n_open:
            unrated.append(f"「{PAIRING_STAGES[stage]}」阶段在途 {n_open} 条没有已结束的历史对接可算转化率，未计入")
        stages.append({"stage": stage, "label": PAIRING_STAGES[stage], "open": n_open,
                       "sample": rates[stage]["sample"], "sample_signed": rates[stage]["signed"],
                       "conversion_to_signed": rate, "expected_signed": add})
    out = {"method": "pipeline", "label": "按在途对接转化",
           "description": ("期末预测 = 已签约数 + Σ（各阶段在途对接数 × 该阶段历史签约转化率）；"
                           "转化率 = 曾到达该阶段且已结束（签约或未成功）的对接中签约的比例，样本数见各阶段"),
           "stages": stages}
    if as_of >= end:
        return {**out, "projection": float(signed), "formula": f"期间已结束：{signed}",
                "projected_shortfall": _shortfall(target, float(signed)), "note": "期间已结束，预测即实际签约数"}
    value = round(signed + expected, 2)
    terms = " + ".join(f"{s['open']}×{s['conversion_to_signed']}" for s in stages if s["expected_signed"] is not None)
    notes = ["假定在途对接在期末前完成签约；直接录入的项目不经过对接流程，此法不预计其新增，结果偏保守"] + unrated
    return {**out, "projection": value, "formula": f"{signed} + {terms or '0'} = {value}",
            "projected_shortfall": _shortfall(target, value), "note": "；".join(notes)}


def _ranked(counter: Counter) -> list[tuple]:
    return sorted(counter.items(), key=lambda kv: (-kv[1], str(kv[0])))


def breakdowns(projects: list[Project], tracks: list[Track]) -> dict:
    """Signed projects by industry chain, institution and broker (with each broker's open pairings)."""
    chains = Counter(p.industry_chain or UNFILLED for p in projects)
    institutions = Counter((p.institution_id, p.institution.name) for p in projects)
    brokers = Counter(p.broker or UNFILLED for p in projects)
    open_by_broker = Counter(t.broker for t in tracks if t.stage in OPEN_STAGES)
    broker_names = sorted(set(brokers) | set(open_by_broker),
                          key=lambda b: (-brokers[b], -open_by_broker[b], b))
    return {
        "industry_chain": [{"name": k, "signed": n} for k, n in _ranked(chains)],
        "institution": [{"id": k[0], "name": k[1], "signed": n}
                        for k, n in sorted(institutions.items(), key=lambda kv: (-kv[1], kv[0][1]))],
        "broker": [{"name": b, "signed": brokers[b], "open_pairings": open_by_broker[b]} for b in broker_names],
    }


def monthly_series(projects: list[Project], start: date, end: date, as_of: date, target: int | None) -> list[dict]:
    """Each month of the period up to ``as_of``: signed that month, cumulative, and the even-pace cumulative."""
    until = min(as_of, end)
    if until < start:
        return []
    per_month = Counter((p.signed_date.year, p.signed_date.month) for p in projects)
    total_days = (end - start).days + 1
    out, cumulative = [], 0
    year, month = start.year, start.month
    while (year, month) <= (until.year, until.month):
        month_end = date(year, month, calendar.monthrange(year, month)[1])
        cumulative += per_month[(year, month)]
        elapsed = (min(month_end, end) - start).days + 1
        out.append({"month": f"{year:04d}-{month:02d}", "signed": per_month[(year, month)], "cumulative": cumulative,
                    "expected_cumulative": round(target * elapsed / total_days, 2) if target is not None else None})
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return out


def progress_report(session: Session, region: str, start_year: int, end_year: int, as_of: date) -> dict:
    """Everything the bureau reads for a region and a year or period, as of a day.

    The fields of :func:`matcher.targets.progress`, plus ``projection`` (run rate
    and pipeline, each with method, formula and inputs), ``breakdowns`` (industry
    chain, institution, broker, cumulative monthly series).
    """
    report = progress(session, region, start_year, end_year, today=as_of)
    start, end = date(start_year, 1, 1), date(end_year, 12, 31)
    projects = counted_projects(session, region, start_year, end_year, as_of)
    tracks = load_tracks(session, regions_within(region, session), as_of)
    target = report["target"]
    report["projection"] = {
        "run_rate": run_rate_projection(report["signed"], as_of, start, end, target),
        "pipeline": pipeline_projection(report["signed"], tracks, as_of, end, target),
    }
    report["breakdowns"] = {**breakdowns(projects, tracks),
                            "month": monthly_series(projects, start, end, as_of, target)}
    return report
