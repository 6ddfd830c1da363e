"""Plan a matchmaking event end to end: participants → ranked candidates → solver → stored schedule."""
from __future__ import annotations

from collections import Counter

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..context import MatcherContext
from ..errors import Invalid, NotFound
from ..models import MatchEvent, MatchEventMeeting
from .candidates import explain_summary, gather, rank_pairs
from .requests import EventIn
from .solver import Candidate, EventSpec, firm_key, institution_key, solve, validate_spec


def _check_slots(data: EventIn) -> list[str]:
    labels = [s.label for s in data.slots]
    dup = [label for label, n in Counter(labels).items() if n > 1]
    if dup:
        raise Invalid("duplicate_slot", f"时段「{'、'.join(dup)}」重复：每个时段只能列一次", details={"slots": dup})
    return labels


def _check_refs(data: EventIn, labels: list[str], need_ids: set[int], outcome_ids: set[int],
                firm_ids: set[int], institution_ids: set[int]) -> None:
    """Exclusions and unavailability must name this event's participants and slots (a typo is not ignored)."""
    for pair in data.excluded_pairs:
        if pair.need_id not in need_ids or pair.outcome_id not in outcome_ids:
            raise Invalid("excluded_pair_not_in_event",
                          f"排除的对接（需求 {pair.need_id} × 成果 {pair.outcome_id}）不在本场参会的需求与成果中")
    for item in data.unavailable:
        if item.slot not in labels:
            raise Invalid("unknown_slot", f"不可到场设置中的时段「{item.slot}」不在时段列表中")
        if item.enterprise_id is not None and item.enterprise_id not in firm_ids:
            raise Invalid("unavailable_party_not_in_event", f"企业 {item.enterprise_id} 不是本场参会企业")
        if item.institution_id is not None and item.institution_id not in institution_ids:
            raise Invalid("unavailable_party_not_in_event", f"高校/院所 {item.institution_id} 不是本场参会单位")


def _unavailable(data: EventIn) -> dict[str, frozenset]:
    away: dict[str, set] = {}
    for item in data.unavailable:
        key = firm_key(item.enterprise_id) if item.enterprise_id is not None else institution_key(item.institution_id)
        away.setdefault(item.slot, set()).add(key)
    return {slot: frozenset(keys) for slot, keys in away.items()}


def plan_event(ctx: MatcherContext, session: Session, data: EventIn) -> MatchEvent:
    """Schedule an event and store it; the answer holds every meeting, the objective and the greedy baseline.

    Promises: no party meets twice in a slot, every capacity and exclusion holds,
    the solve stops at ``time_limit_s``. An impossible event raises 422
    ``event_infeasible`` whose message names the constraint to relax; nothing
    is stored unless a schedule was found.
    """
    labels = _check_slots(data)
    parts = gather(session, data)
    need_ids = {n.id for n in parts.needs}
    outcome_ids = {o.id for o in parts.outcomes}
    firm_ids = {n.enterprise_id for n in parts.needs}
    institution_ids = {o.institution_id for o in parts.outcomes}
    _check_refs(data, labels, need_ids, outcome_ids, firm_ids, institution_ids)
    excluded = {(p.need_id, p.outcome_id) for p in data.excluded_pairs}

    pairs, skipped = rank_pairs(ctx, session, parts, excluded, data.candidates_per_need, data.min_score)
    if not pairs:
        raise Invalid("no_candidates", "参会需求与成果之间没有可安排的对接（可能都被排除、已标记未成功，或低于最低匹配分）",
                      details={"skipped": parts.skipped + skipped})
    by_pair = {(p.need.id, p.outcome.id): p for p in pairs}
    spec = EventSpec(
        slots=labels,
        # The solver maximises a sum of non-negative scores; a negative cosine cannot help a schedule anyway.
        candidates=[Candidate(p.need.id, p.outcome.id, p.need.enterprise_id, p.outcome.institution_id,
                              max(0.0, p.scored.score)) for p in pairs],
        max_meetings_per_firm=data.max_meetings_per_firm,
        max_meetings_per_institution=data.max_meetings_per_institution,
        max_meetings_per_slot=data.max_meetings_per_slot,
        excluded_pairs=frozenset(excluded),
        unavailable=_unavailable(data),
        min_meetings_per_firm=data.min_meetings_per_firm,
    )
    problems = validate_spec(spec)
    if problems:
        raise Invalid("invalid_event", "；".join(problems), details={"problems": problems})
    schedule = solve(spec, time_limit_s=data.time_limit_s)
    if not schedule.feasible:
        reasons = schedule.infeasible_reasons
        raise Invalid("event_infeasible", "无法排出满足全部硬性约束的日程：" + "；".join(reasons),
                      details={"reasons": reasons, "greedy_objective": schedule.greedy_objective})

    slot_index = {label: i for i, label in enumerate(labels)}
    event = MatchEvent(
        title=data.title, held_on=data.held_on, location=data.location,
        slots=[s.model_dump(mode="json") for s in data.slots],
        settings=data.model_dump(mode="json", include={
            "max_meetings_per_firm", "max_meetings_per_institution", "max_meetings_per_slot", "min_meetings_per_firm",
            "candidates_per_need", "min_score", "time_limit_s", "excluded_pairs", "unavailable"}),
        participants={"need_ids": sorted(need_ids), "outcome_ids": sorted(outcome_ids),
                      "enterprise_ids": sorted(firm_ids), "institution_ids": sorted(institution_ids)},
        skipped=parts.skipped + skipped,
        candidate_count=len(spec.candidates),
        status="optimal" if schedule.optimal else "feasible",
        solver=schedule.solver, objective=schedule.objective, greedy_objective=schedule.greedy_objective,
        gap_vs_greedy=schedule.gap_vs_greedy, solve_seconds=schedule.seconds,
    )
    for m in schedule.meetings:
        pair = by_pair[(m.need_id, m.outcome_id)]
        event.meetings.append(MatchEventMeeting(
            slot_index=slot_index[m.slot], slot_label=m.slot, need_id=m.need_id, outcome_id=m.outcome_id,
            enterprise_id=m.firm_id, institution_id=m.institution_id, score=m.score,
            text_score=pair.scored.text_score, summary=explain_summary(ctx, pair)))
    session.add(event)
    session.commit()
    return get_event(session, event.id)


def get_event(session: Session, event_id: int) -> MatchEvent:
    """A stored event with its meetings in slot order."""
    event = session.get(MatchEvent, event_id)
    if event is None:
        raise NotFound("event_not_found", f"对接会 {event_id} 不存在")
    return event


def list_events(session: Session, offset: int, limit: int) -> tuple[int, list[MatchEvent]]:
    """Stored events, newest first."""
    total = session.scalar(select(func.count(MatchEvent.id))) or 0
    rows = session.scalars(select(MatchEvent).order_by(MatchEvent.id.desc()).offset(offset).limit(limit)).all()
    return total, list(rows)
