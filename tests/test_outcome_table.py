"""The worker's outcome table: ranking reads it instead of ~100 candidate rows, and pages stay the same.

Each test compares against the database: a page ranked from the table must equal the page ranked from
records read through the ORM, and the table must follow every write the change log carries.
"""
from datetime import date

import pytest
from sqlalchemy import event, select, update

from matcher import records
from matcher.context import build_context
from matcher.matching import PageRecipe, make_page, match_need, search_text
from matcher.models import Need, Outcome
from matcher.outcome_table import InstitutionFacts, OutcomeTable
from matcher.projects import ProjectIn, create_project
from matcher.schemas import EnterpriseIn, InstitutionIn, InstitutionUpdate, MatchFilters, NeedIn, OutcomeIn, OutcomeUpdate
from matcher.scoring import Weights


@pytest.fixture(scope="module")
def worker(seeded, encoder):
    """A worker started from the seeded service's index files, with its outcome table filled."""
    seeded.indexes.save()
    context = build_context(seeded.settings, encoder=encoder)
    context.indexes.fill_outcome_table()
    yield context
    context.close()


def _loaded_outcomes(session) -> list[int]:
    """Ids of the Outcome rows the ORM builds in ``session`` from now on."""
    loaded: list[int] = []
    event.listen(session, "loaded_as_persistent", lambda _s, obj: isinstance(obj, Outcome) and loaded.append(obj.id))
    return loaded


def _page(ctx, need_id: int, **filters) -> bytes:
    with ctx.sessions() as session:
        return make_page(ctx, session, PageRecipe("needs", need_id, 10, MatchFilters(**filters), None))


def _with_table(ctx, table, fn):
    held = ctx.indexes.outcome_table
    ctx.indexes.outcome_table = table
    try:
        return fn()
    finally:
        ctx.indexes.outcome_table = held


def test_the_fill_holds_every_indexed_outcome(worker):
    table = worker.indexes.outcome_table
    assert table.filled and len(table) == len(worker.indexes.indexes["outcomes"]) > 100
    with worker.sessions() as session:
        outcomes = list(session.scalars(select(Outcome)).unique())
    rows = table.rows([o.id for o in outcomes])
    for o in outcomes:
        row = rows[o.id]
        assert (row.industry_chain, row.stage, row.trl, set(row.cooperation_modes), row.price_min, row.price_max,
                row.price_negotiable, row.body_length, row.content_hash, row.institution.locality) == (
            o.industry_chain, o.stage, o.trl, set(o.cooperation_modes or []), o.price_min, o.price_max,
            o.price_negotiable, len(o.abstract or ""), o.content_hash, o.institution.locality)


def test_pages_ranked_from_the_table_equal_pages_ranked_from_the_database(worker):
    with worker.sessions() as session:
        need_ids = list(session.scalars(select(Need.id).order_by(Need.id)))
    assert len(need_ids) >= 20
    for need_id in need_ids:
        from_table = _page(worker, need_id)
        from_db = _with_table(worker, OutcomeTable(), lambda: _page(worker, need_id))
        assert from_table == from_db, need_id
    # Filters and free text take the same path.
    assert _page(worker, need_ids[0], stage="中试") == _with_table(
        worker, OutcomeTable(), lambda: _page(worker, need_ids[0], stage="中试"))
    with worker.sessions() as session:
        def search():
            return [(r["outcome"].id, r["score"], r["explanation"]) for r in
                    search_text(worker, session, "锂电池热管理与储能安全", "outcomes", 10)]
        assert search() == _with_table(worker, OutcomeTable(), search)


def test_a_first_view_loads_only_the_outcomes_it_shows(worker):
    with worker.sessions() as session:
        need_id = session.scalars(select(Need.id).order_by(Need.id)).first()
        loaded = _loaded_outcomes(session)
        results = match_need(worker, session, need_id, k=10)
    assert len(results) == 10 and sorted(loaded) == sorted(r["outcome"].id for r in results)
    with worker.sessions() as session:
        loaded = _loaded_outcomes(session)
        _with_table(worker, OutcomeTable(), lambda: match_need(worker, session, need_id, k=10))
    assert len(loaded) >= 50  # without the table every candidate is read


def test_factors_are_not_skipped_when_a_weight_is_negative(worker):
    # The bound that skips hopeless candidates assumes factors only add; a harness experiment may subtract.
    weights = Weights(industry_chain=-0.05)
    with worker.sessions() as session:
        need_id = session.scalars(select(Need.id).order_by(Need.id)).first()
        ranked = [(r["outcome"].id, r["score"]) for r in match_need(worker, session, need_id, k=5, weights=weights)]
        from_db = _with_table(worker, OutcomeTable(), lambda: [
            (r["outcome"].id, r["score"]) for r in match_need(worker, session, need_id, k=5, weights=weights)])
    assert ranked == from_db


@pytest.fixture
def institution(ctx):
    with ctx.sessions() as session:
        return records.create_institution(session, InstitutionIn(name="测试大学", location="济南")).id


def test_the_change_log_keeps_the_table_current(ctx, institution):
    table = ctx.indexes.outcome_table
    with ctx.sessions() as session:
        oid = records.create_outcome(ctx, session, OutcomeIn(
            institution_id=institution, title="高镍正极材料包覆改性", abstract="采用原子层沉积包覆高镍正极。",
            stage="小试", cooperation_modes=["技术转让"], price_min=50)).id
    row = table.rows([oid])[oid]
    assert (row.stage, row.cooperation_modes, row.price_min, row.price_max) == ("小试", ["技术转让"], 50.0, None)
    with ctx.sessions() as session:
        records.update_outcome(ctx, session, oid, OutcomeUpdate(stage="中试", cooperation_modes=["技术许可", "技术转让"],
                                                               price_min=None))
        records.update_institution(session, institution, InstitutionUpdate(location="威海市文登区"))
        ctx.indexes.sync()
        fresh = records.get_outcome(session, oid)
        locality = fresh.institution.locality
    row = table.rows([oid])[oid]
    assert row.stage == "中试" and set(row.cooperation_modes) == {"技术许可", "技术转让"} and row.price_min is None
    assert row.content_hash == fresh.content_hash and row.institution.locality == locality
    # A signed project moves the institution's track record as soon as the worker syncs.
    assert table.signed_counts({institution}) == {}
    with ctx.sessions() as session:
        enterprise = records.create_enterprise(session, EnterpriseIn(name="测试企业"))
        create_project(session, ProjectIn(enterprise_id=enterprise.id, institution_id=institution, title="合作项目",
                                          signed_date=date(2026, 6, 1), contract_type="技术转让"))
        ctx.indexes.sync()
    assert table.signed_counts({institution}) == {institution: 1}
    with ctx.sessions() as session:
        records.delete_record(ctx, session, records.get_outcome(session, oid))
    assert table.rows([oid]) == {}


def test_an_outcome_deleted_behind_the_workers_back_is_never_shown(ctx, institution):
    # The table and the index still hold it (no change was logged): the results are read before shown.
    with ctx.sessions() as session:
        oid = records.create_outcome(ctx, session, OutcomeIn(
            institution_id=institution, title="锂离子电池液冷散热技术", abstract="电芯温差控制在3℃以内。")).id
        records.create_outcome(ctx, session, OutcomeIn(
            institution_id=institution, title="储能电站热管理系统", abstract="液冷板与相变材料结合。"))
        enterprise = records.create_enterprise(session, EnterpriseIn(name="测试企业"))
        need = records.create_need(ctx, session, NeedIn(enterprise_id=enterprise.id, title="电池包液冷散热",
                                                        description="需要锂离子电池液冷散热方案。"))
        assert oid in [r["outcome"].id for r in match_need(ctx, session, need.id, k=2)]
        session.execute(update(Outcome).where(Outcome.id == oid).values(deleted_at=Outcome.created_at))
        session.commit()
        assert oid in ctx.indexes.outcome_table.rows([oid])
        shown = [r["outcome"].id for r in match_need(ctx, session, need.id, k=2)]
    assert oid not in shown and len(shown) == 1


def test_a_fill_never_overwrites_what_the_change_log_wrote():
    table = OutcomeTable()
    table.institutions = {1: table_institution()}
    fresh = (7, 1, "新能源", "中试", 6, ["技术转让"], 10.0, 20.0, False, "新摘要", "new")
    stale = (7, 1, "新能源", "实验室", 2, [], None, None, True, "旧摘要", "old")
    table._set([fresh], from_fill=False)
    table._set([stale, (8, 1, None, None, None, [], None, None, False, "", "h8")], from_fill=True)
    rows = table.rows([7, 8])
    assert rows[7].stage == "中试" and rows[7].content_hash == "new" and rows[8].content_hash == "h8"
    table.drop([8])
    table._set([(8, 1, None, None, None, [], None, None, False, "", "h8")], from_fill=True)
    assert table.rows([8]) == {}  # dropped since the snapshot was read: not brought back


def test_an_outcome_the_table_cannot_hold_is_read_from_the_database():
    table = OutcomeTable()
    table.institutions = {1: table_institution()}
    many_modes = [f"方式{i}" for i in range(70)]
    table._set([(3, 1, None, None, None, many_modes, None, None, False, "", "h3"),
                (4, 2, None, None, None, [], None, None, False, "", "h4")], from_fill=False)
    assert table.rows([3, 4, 99, -1]) == {}  # too many modes for the bit mask; an unknown institution; unknown ids


def test_free_text_fields_may_take_any_number_of_values():
    table = OutcomeTable()
    table.institutions = {1: table_institution()}
    table._set([(i, 1, f"产业链{i}", f"阶段{i}", None, [], None, None, False, "", "h") for i in range(1, 40_001)],
               from_fill=True)
    row = table.rows([40_000])[40_000]
    assert (row.industry_chain, row.stage) == ("产业链40000", "阶段40000")


def table_institution() -> InstitutionFacts:
    return InstitutionFacts("测试大学", "shandong")


def test_skipping_hopeless_candidates_never_changes_the_top_k():
    # Against scoring every candidate: random text scores, factor values and k, many near-ties at the cut.
    import random
    from types import SimpleNamespace

    from matcher.matching import _best
    from matcher.retrieval import Candidate
    from matcher.scoring import LABELS, Factor, combine

    weights = Weights()
    rng = random.Random(7)
    for trial in range(300):
        n, k = rng.randint(1, 60), rng.randint(1, 12)
        cands = sorted((Candidate(i, text_score=round(rng.uniform(0.85, 0.9), rng.choice([2, 3, 6]))) for i in range(n)),
                       key=lambda c: -c.text_score)
        values = {c.id: [rng.choice([None, 0.0, 0.5, 1.0, rng.random()]) for _ in LABELS] for c in cands}
        records = {c.id: SimpleNamespace(id=c.id, deleted_at=None) for c in cands}

        def result_of(cand, _record):
            return combine(cand.text_score, [Factor(name, v, "") for name, v in zip(LABELS, values[cand.id])], weights)

        got = _best(cands, records, lambda _r: None, result_of, {}, k, weights)
        every = sorted(cands, key=lambda c: -result_of(c, None).score)[:k]  # stable: text order breaks ties
        assert [record.id for _, record, _ in got] == [c.id for c in every], trial
