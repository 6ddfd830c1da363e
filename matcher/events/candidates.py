"""Who takes part in an event, and how well each of its needs fits each of its outcomes.

Scores are the service's own ranking (:mod:`matcher.matching`: text relevance,
then the structured factors), run for each need over the participating
outcomes only. Nothing here scores a pair by itself.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import matching
from ..context import MatcherContext
from ..documents import document_text
from ..errors import Invalid
from ..models import Need, Outcome, Pairing
from ..records import get_enterprise, get_institution, get_need, get_outcome
from ..scoring import DEFAULT_WEIGHTS, Scored
from .requests import EventIn

# One event is a district's half-day 对接会 or a city's day; past these a single
# request would take minutes to score and solve. Split the event instead.
MAX_NEEDS = 200
MAX_OUTCOMES = 2000


@dataclass
class Participants:
    """The needs and outcomes taking part after expanding firms and institutions, and what was left out."""

    needs: list[Need]
    outcomes: list[Outcome]
    skipped: list[dict] = field(default_factory=list)


@dataclass
class RankedPair:
    """A candidate meeting as the matcher ranks it, with what its explanation needs."""

    need: Need
    outcome: Outcome
    scored: Scored
    query: matching.Query
    pairing: matching.PairingMark | None


def gather(session: Session, data: EventIn) -> Participants:
    """Needs (listed, or a firm's open needs) and outcomes (listed, or an institution's available outcomes).

    Unknown ids are a 404 with the usual codes; an event without needs or
    without outcomes, or past the size bounds, is a coded 422.
    """
    skipped: list[dict] = []
    needs: dict[int, Need] = {n: get_need(session, n) for n in data.need_ids}
    for eid in dict.fromkeys(data.enterprise_ids):
        firm = get_enterprise(session, eid)
        rows = list(session.scalars(select(Need).where(Need.enterprise_id == eid, Need.deleted_at.is_(None),
                                                       Need.status == "open")).unique())
        if not rows:
            skipped.append({"kind": "enterprise", "id": eid, "reason": f"{firm.name}没有征集中的技术需求"})
        for n in rows:
            needs.setdefault(n.id, n)
    outcomes: dict[int, Outcome] = {o: get_outcome(session, o) for o in data.outcome_ids}
    for iid in dict.fromkeys(data.institution_ids):
        inst = get_institution(session, iid)
        rows = list(session.scalars(select(Outcome).where(Outcome.institution_id == iid, Outcome.deleted_at.is_(None),
                                                          Outcome.status == "available")).unique())
        if not rows:
            skipped.append({"kind": "institution", "id": iid, "reason": f"{inst.name}没有可转化的科技成果"})
        for o in rows:
            outcomes.setdefault(o.id, o)
    if not needs:
        raise Invalid("no_needs", "没有参会的技术需求：请提供 need_ids，或提供有征集中需求的 enterprise_ids")
    if not outcomes:
        raise Invalid("no_outcomes", "没有参会的科技成果：请提供 outcome_ids，或提供有可转化成果的 institution_ids")
    if len(needs) > MAX_NEEDS or len(outcomes) > MAX_OUTCOMES:
        raise Invalid("event_too_large",
                      f"参会需求 {len(needs)} 条、成果 {len(outcomes)} 项，超过单场上限（需求 {MAX_NEEDS}、成果 {MAX_OUTCOMES}）："
                      "请拆分为几场或缩小参会范围")
    return Participants([needs[k] for k in sorted(needs)], [outcomes[k] for k in sorted(outcomes)], skipped)


def _need_query(ctx: MatcherContext, need: Need) -> matching.Query:
    return matching.Query(document_text(need), matching.stored_vector(ctx, "needs", need), need=need)


def _rank_for_need(ctx: MatcherContext, session: Session, query: matching.Query, outcome_ids: list[int],
                   k: int) -> list[tuple]:
    # The planner's one call into the ranking: the call the match API
    # makes for its top k, restricted to the event's outcomes and without
    # explanations (explaining every pair would cost seconds; only scheduled
    # meetings are explained). Its cost depends on k, not on the outcome count.
    return matching.rank_scored(ctx, session, query, "outcomes", k, outcome_ids, DEFAULT_WEIGHTS)


def rank_pairs(ctx: MatcherContext, session: Session, parts: Participants, excluded: set[tuple[int, int]],
               per_need: int, min_score: float | None) -> tuple[list[RankedPair], list[dict]]:
    """Each need's best ``per_need`` participating outcomes by the service's ranking, and what was left out.

    A need's candidates are exactly the top ``per_need`` the match API would
    list for it if only this event's outcomes existed.

    Outcomes not in the search index (withdrawn) and pairs a broker declined
    never become candidates; excluded pairs are dropped before the cut so they
    do not take a candidate's place.
    """
    skipped: list[dict] = []
    indexed = []
    for o in parts.outcomes:
        if ctx.indexes.vector_of("outcomes", o.id) is None:
            skipped.append({"kind": "outcome", "id": o.id, "reason": f"成果「{o.title}」已撤回或不在检索索引中，不参与匹配"})
        else:
            indexed.append(o.id)
    need_ids = [n.id for n in parts.needs]
    declined = set(session.execute(select(Pairing.need_id, Pairing.outcome_id).where(
        Pairing.stage == "declined", Pairing.need_id.in_(need_ids), Pairing.outcome_id.in_(indexed))).all()) \
        if indexed else set()
    for need_id, outcome_id in sorted(declined):
        skipped.append({"kind": "pair", "need_id": need_id, "outcome_id": outcome_id,
                        "reason": "经纪人已将该需求与成果的对接标记为未成功，不再安排"})
    pairs: list[RankedPair] = []
    if not indexed:
        return pairs, skipped
    excluded_per_need = Counter(n for n, _ in excluded)
    for need in parts.needs:
        query = _need_query(ctx, need)
        kept = 0
        # Ask for as many more as this need has exclusions, so an excluded pair never costs a candidate.
        k = min(len(indexed), per_need + excluded_per_need[need.id])
        for result, outcome, pairing in _rank_for_need(ctx, session, query, indexed, k):
            if (need.id, outcome.id) in excluded or (min_score is not None and result.score < min_score):
                continue
            pairs.append(RankedPair(need, outcome, result, query, pairing))
            kept += 1
            if kept >= per_need:
                break
    return pairs, skipped


def explain_summary(ctx: MatcherContext, pair: RankedPair) -> str:
    """The Chinese one-line reason of the match API for this pair (used on agendas)."""
    item = matching.explained(ctx, pair.query, "outcomes", [(pair.scored, pair.outcome, pair.pairing)],
                               DEFAULT_WEIGHTS)[0]
    return item["explanation"]["summary"]
