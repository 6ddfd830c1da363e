"""Ranked, explained matches: need → outcomes, outcome → needs, free text → either."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sqlalchemy import func, inspect, select
from sqlalchemy.orm import Session, object_session, undefer
from sqlalchemy.orm.attributes import set_committed_value

from .access import Viewer, may_see, need_filters, need_scope, readable_need
from .context import MatcherContext
from .documents import TEXT_KIND, document_text
from .explain import explain
from .models import Enterprise, Institution, Need, Outcome, Pairing, Project
from .outcome_table import OutcomeRow
from .records import get_outcome
from .schemas import MatchFilters, MatchList
from .retrieval import Retriever
from .scoring import DEFAULT_WEIGHTS, LABELS, Weights, combine, factors
from .vocab import PAIRING_STAGES

# Candidates fetched from the index per requested result, so structured
# factors and exclusions can reorder them without running short.
POOL_FACTOR = 5
MIN_POOL = 50
# Results on a match page unless the asker says otherwise (the page a broker sees first).
DEFAULT_K = 10


@dataclass
class Query:
    """What is being matched: a stored record or free text."""

    text: str
    vector: np.ndarray
    need: Need | None = None
    outcome: Outcome | None = None
    terms: list[str] | None = None  # the text's terms where stored (a need's query_terms); else segmented


def _allowed_ids(session: Session, side: str, f: MatchFilters | None, viewer: Viewer | None = None) -> list[int] | None:
    """Ids passing the filters and visible to ``viewer``, or None when nothing restricts (search everything).

    A viewer who may not see every need (anyone but staff) gets an explicit id
    list on the needs side, so a brokers-only need is never even a candidate.
    """
    restricted = side == "needs" and bool(need_filters(viewer))
    if not restricted and (f is None or not any(f.model_dump().values())):
        return None
    f = f or MatchFilters()
    if side == "outcomes":
        stmt = select(Outcome.id).join(Institution).where(Outcome.deleted_at.is_(None))
        if f.industry_chain:
            stmt = stmt.where(Outcome.industry_chain == f.industry_chain)
        if f.stage:
            stmt = stmt.where(Outcome.stage == f.stage)
        if f.institution_id:
            stmt = stmt.where(Outcome.institution_id == f.institution_id)
        if f.region:
            stmt = stmt.where(func.coalesce(Institution.location, "").contains(f.region, autoescape=True))
        model = Outcome
    else:
        stmt = select(Need.id).join(Enterprise).where(Need.deleted_at.is_(None), *need_filters(viewer))
        if f.industry_chain:
            stmt = stmt.where(Need.industry_chain == f.industry_chain)
        if f.enterprise_id:
            stmt = stmt.where(Need.enterprise_id == f.enterprise_id)
        if f.region:
            stmt = stmt.where(func.coalesce(Enterprise.region, "").contains(f.region, autoescape=True))
        model = Need
    ids = list(session.scalars(stmt))
    if f.cooperation_mode:
        # JSON list membership differs per database; the id list is small, so filter here.
        modes = dict(session.execute(select(model.id, model.cooperation_modes).where(model.id.in_(ids))).all()) if ids else {}
        ids = [i for i in ids if f.cooperation_mode in (modes.get(i) or [])]
    return ids


def _signed_counts(ctx: MatcherContext, session: Session, institution_ids: set[int]) -> dict[int, int]:
    """Signed projects of each institution that has any: as of the worker's sync, from its outcome table."""
    if not institution_ids:
        return {}
    held = ctx.indexes.outcome_table.signed_counts(institution_ids)
    if held is not None:
        return held
    rows = session.execute(
        select(Project.institution_id, func.count()).where(Project.institution_id.in_(institution_ids))
        .group_by(Project.institution_id)
    ).all()
    return {i: n for i, n in rows}


@dataclass(frozen=True)
class PairingMark:
    """What a match row shows of the pairing its pair already has: id, stage, decline reason (no ORM row)."""

    id: int
    stage: str
    decline_reason: str | None


def _pairings_for(session: Session, need_id: int | None = None, outcome_id: int | None = None
                  ) -> dict[tuple[int, int | None], PairingMark]:
    """Every pairing of the one need (or the one outcome), by (need id, outcome id).

    A record has a handful of pairings, so reading all of them by its id costs less than naming the
    ~100 candidates in the query; rows for other records are never looked up.
    """
    stmt = select(Pairing.need_id, Pairing.outcome_id, Pairing.id, Pairing.stage, Pairing.decline_reason)
    stmt = stmt.where(Pairing.need_id == need_id) if need_id is not None else stmt.where(Pairing.outcome_id == outcome_id)
    rows = session.execute(stmt.order_by(Pairing.id))
    return {(n, o): PairingMark(i, stage, reason) for n, o, i, stage, reason in rows}


def _load(session: Session, side: str, ids, shown: bool = False) -> dict[int, object]:
    """Records ``ids`` of ``side`` from the database, by id (a missing id is left out).

    ``shown``: they are results, so their (deferred) explanation terms are read in the same query.
    """
    if not ids:
        return {}
    model = Outcome if side == "outcomes" else Need
    stmt = select(model).where(model.id.in_(list(ids)))
    if shown:
        stmt = stmt.options(undefer(model.explain_terms))
    return {r.id: r for r in session.scalars(stmt).unique()}


def _candidate_records(ctx: MatcherContext, session: Session, side: str, ids: list[int], weights: Weights,
                       method: str) -> tuple[dict[int, object], dict[int, np.ndarray]]:
    """What scoring reads of each candidate, by id: a row of the worker's outcome table where it can
    answer (:mod:`matcher.outcome_table`), else the record from the database; and the sentence vectors
    of the long rows, which carry no text to read them by."""
    rows = ctx.indexes.outcome_table.rows(ids) if side == "outcomes" else {}
    sentences: dict[int, np.ndarray] = {}
    if rows and method == "full" and weights.sentence > 0:
        long_rows = {i: r.content_hash for i, r in rows.items() if r.body_length >= weights.long_text_chars}
        sentences = ctx.indexes.sentences.held(side, long_rows)
        for i in long_rows.keys() - sentences.keys():
            del rows[i]  # its sentences are not in memory: reading them needs the record's text
    missing = [i for i in ids if i not in rows]
    return {**rows, **_load(session, side, missing)}, sentences


def _max_bonus(weights: Weights) -> float | None:
    """The most the structured factors can add to a text score (each factor's value is in [0, 1]),
    or None when a negative weight (a harness experiment) lets them subtract."""
    ws = [getattr(weights, name) for name in LABELS]
    return sum(ws) if min(ws) >= 0 else None


def rank_scored(ctx: MatcherContext, session: Session, query: Query, side: str, k: int,
                allowed: list[int] | None, weights: Weights, method: str = "full") -> list[tuple]:
    """The top ``k`` as (Scored, record, pairing), best first, unexplained.

    Text relevance by ``method`` (see :mod:`matcher.retrieval`), then the
    structured factors; ``allowed`` restricts the candidates; deleted records
    and pairs a broker declined are never returned. Candidates are scored from the worker's outcome
    table where it has them; the records returned are always read from the database.
    """
    pool = max(k * POOL_FACTOR, MIN_POOL)
    retriever = Retriever(ctx.indexes, ctx.encoder, weights, method)
    cands = retriever.candidates(side, query.text, query.vector, pool, allowed)
    ids = [c.id for c in cands]
    records, sentences = _candidate_records(ctx, session, side, ids, weights, method)
    cands = retriever.score(side, query.text, cands, records.get, sentences)
    with_factors = method == "full"
    if side == "outcomes":
        institutions = {r.institution_id for r in records.values()}
    else:
        institutions = {query.outcome.institution_id} if query.outcome else set()
    signed = _signed_counts(ctx, session, institutions) if with_factors else {}
    if query.need is not None:
        pairings = _pairings_for(session, need_id=query.need.id)
    elif query.outcome is not None:
        pairings = _pairings_for(session, outcome_id=query.outcome.id)
    else:
        pairings = {}

    def result_of(cand, record):
        need, outcome = (query.need, record) if side == "outcomes" else (record, query.outcome)
        if with_factors and outcome is not None:
            fs = factors(need, outcome, signed.get(outcome.institution_id, 0))
            result = combine(cand.text_score, fs, weights, relational=need is not None and outcome is not None)
        else:
            result = combine(cand.text_score, [], weights, relational=False)
        result.evidence = cand
        return result

    def pairing_of(record):
        need, outcome = (query.need, record) if side == "outcomes" else (record, query.outcome)
        return pairings.get((need.id if need else None, outcome.id if outcome else None))

    results: dict[int, object] = {}  # Scored by candidate id, computed once per record read
    while True:
        top = _best(cands, records, pairing_of, result_of, results, k, weights if with_factors else None)
        rows = [record.id for _, record, _ in top if isinstance(record, OutcomeRow)]
        if not rows:
            return top
        # The results shown are read from the database: fields, explanation texts, and deletions since
        # the last sync. Their scores are made again from what was read, and the top chosen again.
        fresh = _load(session, side, rows, shown=True)
        if with_factors and side == "outcomes":
            moved = {r.institution_id for r in fresh.values()} - institutions
            institutions |= moved
            signed.update(_signed_counts(ctx, session, moved))
        for i in rows:
            results.pop(i, None)
            if i in fresh:
                records[i] = fresh[i]
            else:
                del records[i]


def _best(cands, records, pairing_of, result_of, results: dict, k: int, factor_weights: Weights | None) -> list[tuple]:
    """The ``k`` best of ``cands`` (ordered by text score, best first) as (Scored, record, pairing).

    A candidate whose text score plus the most the factors can add is below the text score of the
    k-th eligible candidate cannot reach the top ``k``, so its factors are never computed.
    """
    eligible = []
    for cand in cands:
        record = records.get(cand.id)
        if record is None or record.deleted_at is not None:
            continue  # deleted since the index was read: never served
        pairing = pairing_of(record)
        if pairing is not None and pairing.stage == "declined":
            continue  # a broker already ruled this pair out
        eligible.append((cand, record, pairing))
    floor = None
    bonus = _max_bonus(factor_weights) if factor_weights is not None else None
    if bonus is not None and len(eligible) > k and factor_weights.text > 0:
        # Scores are rounded to 6 decimals: a margin keeps a rounded tie from being cut.
        floor = factor_weights.text * eligible[k - 1][0].text_score - bonus - 1e-5
    scored = []
    for cand, record, pairing in eligible:
        if floor is not None and factor_weights.text * cand.text_score < floor:
            break  # and so is every later one
        result = results.get(cand.id)
        if result is None:
            result = results[cand.id] = result_of(cand, record)
        scored.append((result, record, pairing))
    scored.sort(key=lambda t: -t[0].score)
    return scored[:k]


def _load_explain_terms(records) -> None:
    """Load the (deferred) stored explanation terms of the records to explain, one query per side."""
    by_model: dict[type, dict[int, object]] = {}
    for r in records:
        if "explain_terms" in inspect(r).unloaded:
            by_model.setdefault(type(r), {})[r.id] = r
    for model, wanted in by_model.items():
        session = object_session(next(iter(wanted.values())))
        if session is None:
            continue  # detached: each record loads its own on access
        for rid, terms in session.execute(select(model.id, model.explain_terms).where(model.id.in_(wanted))):
            set_committed_value(wanted[rid], "explain_terms", terms)


def explained(ctx: MatcherContext, query: Query, side: str, scored: list[tuple], weights: Weights) -> list[dict]:
    """API result rows for :func:`rank_scored`'s output, each with its Chinese explanation."""
    out = []
    sentence_vectors = ctx.indexes.sentence_vectors([record for _, record, _ in scored])
    _load_explain_terms([record for _, record, _ in scored])
    for rank, (result, record, pairing) in enumerate(scored, start=1):
        item = {
            "rank": rank,
            "score": result.score,
            "text_score": result.text_score,
            "confidence": result.confidence,
            "weak": result.weak,
            "explanation": explain(ctx.encoder, query.text, query.vector, record, result, weights,
                                   sentence_vectors[record.id], query.terms),
            "pairing": None,
        }
        item["outcome" if side == "outcomes" else "need"] = record
        if pairing is not None:
            item["pairing"] = {"id": pairing.id, "stage": pairing.stage,
                               "stage_label": PAIRING_STAGES[pairing.stage], "decline_reason": pairing.decline_reason}
        out.append(item)
    return out


def stored_vector(ctx: MatcherContext, side: str, record) -> np.ndarray:
    """The record's vector as indexed (encoded on the spot if it is not indexed)."""
    vec = ctx.indexes.vector_of(side, record.id)
    if vec is None:  # closed or withdrawn records are not indexed but can still ask
        vec = ctx.encoder.encode([document_text(record)], TEXT_KIND[side])[0]
    return vec


def _matches(ctx: MatcherContext, session: Session, query: Query, side: str, k: int,
             filters: MatchFilters | None, weights: Weights, viewer: Viewer | None = None) -> list[dict]:
    allowed = _allowed_ids(session, side, filters, viewer)
    scored = rank_scored(ctx, session, query, side, k, allowed, weights)
    # Belt and braces: the candidates were already restricted; nothing unseen is ever explained.
    scored = [row for row in scored if may_see(viewer, row[1])]
    return explained(ctx, query, side, scored, weights)


def match_need(ctx: MatcherContext, session: Session, need_id: int, k: int = 10,
               filters: MatchFilters | None = None, weights: Weights = DEFAULT_WEIGHTS,
               viewer: Viewer | None = None) -> list[dict]:
    """Outcomes ranked for a stored need, best first, each explained.

    ``viewer`` (None: an internal caller) must be able to see the need, else it is not found.
    """
    need = readable_need(session, viewer, need_id)
    # query_terms is deferred, so reading it costs one primary-key query. An undefer option would not save it:
    # the route's access check has already put the need in the session.
    query = Query(document_text(need), stored_vector(ctx, "needs", need), need=need, terms=need.query_terms)
    return _matches(ctx, session, query, "outcomes", k, filters, weights, viewer)


def match_outcome(ctx: MatcherContext, session: Session, outcome_id: int, k: int = 10,
                  filters: MatchFilters | None = None, weights: Weights = DEFAULT_WEIGHTS,
                  viewer: Viewer | None = None) -> list[dict]:
    """Needs ranked for a stored outcome, best first, each explained; only needs ``viewer`` may see."""
    outcome = get_outcome(session, outcome_id)
    query = Query(document_text(outcome), stored_vector(ctx, "outcomes", outcome), outcome=outcome)
    return _matches(ctx, session, query, "needs", k, filters, weights, viewer)


def _text_query(ctx: MatcherContext, text: str, target: str, persist: bool = True) -> Query:
    # Looking for outcomes the text is a question (query); looking for needs it
    # describes a capability (passage), exactly as stored outcomes are.
    kind = "query" if target == "outcomes" else "passage"
    return Query(text, ctx.encoder.encode([text], kind, persist=persist)[0])


def search_text(ctx: MatcherContext, session: Session, text: str, target: str = "outcomes", k: int = 10,
                filters: MatchFilters | None = None, weights: Weights = DEFAULT_WEIGHTS,
                viewer: Viewer | None = None) -> list[dict]:
    """Either side ranked for free text, best first, each explained; only records ``viewer`` may see.

    The text's vector is kept in this worker's memory, not in the database cache: typed text is rarely
    asked twice (:meth:`~embeddings.cached_encoder.CachedEncoder.encode`, ``persist``).
    """
    query = _text_query(ctx, text, target, persist=False)
    return _matches(ctx, session, query, target, k, filters, weights, viewer)


def rank_text(ctx: MatcherContext, session: Session, text: str, target: str = "outcomes", k: int = 10,
              method: str = "full", allowed_ids: list[int] | None = None,
              weights: Weights = DEFAULT_WEIGHTS) -> list[tuple[int, float]]:
    """(record id, score) best first for free text, unexplained: what the evaluation harness measures.

    Same ranking as :func:`search_text` for ``method="full"``; ``allowed_ids``
    restricts the candidates (a reranking evaluation). Unlike a search, the text's vector is
    written to the database cache: an evaluation asks the same queries on every run.
    """
    scored = rank_scored(ctx, session, _text_query(ctx, text, target), target, k, allowed_ids, weights, method)
    return [(record.id, result.score) for result, record, _ in scored]


def weak_note(results: list[dict]) -> str | None:
    """A plain-Chinese warning when some or all results are only weak matches (None when all fit well)."""
    weak = sum(1 for r in results if r["weak"])
    if not results:
        return "没有找到候选结果。"
    if weak == len(results):
        return "没有匹配度高的结果：以下结果的文本相关度都低于弱匹配阈值，仅供参考，建议补充描述或放宽筛选条件。"
    if weak:
        return f"前 {len(results) - weak} 条为较强匹配，其余 {weak} 条相关度较弱。"
    return None


@dataclass(frozen=True)
class PageRecipe:
    """How to make a stored record's match page (again): the record's side and id, k, filters, and for whom."""

    side: str            # the record's side: "needs" or "outcomes"
    record_id: int
    k: int
    filters: MatchFilters
    viewer: Viewer | None

    def echo(self) -> dict:
        """The page's ``query`` field: the record, k and every filter set."""
        return {"need_id" if self.side == "needs" else "outcome_id": self.record_id, "k": self.k,
                **self.filters.model_dump(exclude_none=True)}

    def key(self) -> tuple:
        """The page's key in the worker's page memory: what was asked, and what the asker may see of it.

        Every live outcome is public, so a need's page (of outcomes) is the same for everyone who may
        open it; an outcome's page (of needs) differs by :func:`~matcher.access.need_scope`.
        """
        scope = None if self.side == "needs" else need_scope(self.viewer)
        return (self.side, tuple(sorted(self.echo().items())), scope)

    @property
    def ref(self) -> tuple[str, int]:
        """The record the page is of, as :class:`~matcher.page_marks.PageMarks` names it."""
        return (self.side, self.record_id)


def make_page(ctx: MatcherContext, session: Session, recipe: PageRecipe) -> bytes:
    """Rank and explain ``recipe``'s record now; the JSON body of :class:`MatchList`."""
    match = match_need if recipe.side == "needs" else match_outcome
    results = match(ctx, session, recipe.record_id, recipe.k, recipe.filters, viewer=recipe.viewer)
    page = MatchList.model_validate({"query": recipe.echo(), "results": results, "note": weak_note(results)})
    return page.model_dump_json().encode()


def match_page(ctx: MatcherContext, session: Session, side: str, record_id: int, k: int = 10,
               filters: MatchFilters | None = None, viewer: Viewer | None = None) -> bytes:
    """The JSON body of a stored record's matches (``side``: "needs" or "outcomes", the record's side).

    Equal to validating ``{"query", "results", "note"}`` against :class:`MatchList`.
    The page is taken from the worker's :class:`~matcher.match_pages.MatchPages`
    when nothing it shows changed between its making and the version the worker has
    synced to, so a repeated view costs no ranking; its recipe is kept so that the page warmer
    can re-make it after the next write. Access checks stay with the caller and
    run on every request.
    """
    recipe = PageRecipe(side, record_id, k, filters or MatchFilters(), viewer)
    return ctx.pages.get_or_make(ctx.indexes.version, recipe.key(), lambda: make_page(ctx, session, recipe), recipe,
                                 recipe.ref)
