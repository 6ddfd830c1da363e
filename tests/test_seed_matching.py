"""The seed loads through the import path, once, and its named pairings find each other."""
from __future__ import annotations

import sys

import pytest
from sqlalchemy import func, select

from matcher import matching
from matcher.models import Enterprise, Institution, Need, Outcome
from matcher.seed import SEED_DIR, load_seed

sys.path.insert(0, str(SEED_DIR))
from build_seed import NAMED_PAIRS  # noqa: E402


def test_seed_meets_the_minimums(seeded):
    with seeded.sessions() as s:
        assert s.scalar(select(func.count(Enterprise.id))) >= 17
        assert s.scalar(select(func.count(Institution.id))) >= 11
        assert s.scalar(select(func.count(Need.id))) >= 40
        assert s.scalar(select(func.count(Outcome.id))) >= 150
        chains = set(s.scalars(select(Outcome.industry_chain)))
    assert {"汽车机电", "新能源新材料", "医药及健康食品", "电子信息", "海洋生物", "现代农业"} <= chains


def test_loading_the_seed_twice_changes_nothing(seeded):
    with seeded.sessions() as s:
        before = s.scalar(select(func.count(Outcome.id))), s.scalar(select(func.count(Need.id)))
    reports = load_seed(seeded)
    assert sum(r.created + r.updated for r in reports) == 0
    assert sum(r.unchanged for r in reports) == sum(before)


def _ids(session, need_title, outcome_title):
    need = session.scalar(select(Need).where(Need.title == need_title))
    outcome = session.scalar(select(Outcome).where(Outcome.title == outcome_title))
    return need.id, outcome.id


@pytest.mark.parametrize("firm,need_title,institution,outcome_title", NAMED_PAIRS, ids=[p[0] for p in NAMED_PAIRS])
def test_named_pairings_rank_each_other_in_top_3(seeded, firm, need_title, institution, outcome_title):
    with seeded.sessions() as s:
        need_id, outcome_id = _ids(s, need_title, outcome_title)
        forward = [r["outcome"].id for r in matching.match_need(seeded, s, need_id, 3)]
        backward = [r["need"].id for r in matching.match_outcome(seeded, s, outcome_id, 3)]
    assert outcome_id in forward, f"{institution}「{outcome_title}」not in top 3 for {firm}"
    assert need_id in backward, f"{firm}「{need_title}」not in top 3 for {institution}"


def test_match_answer_explains_itself(seeded_client):
    need = seeded_client.get("/needs", params={"q": "海马人工育苗"}).json()["items"][0]
    body = seeded_client.get(f"/needs/{need['id']}/matches", params={"k": 5}).json()
    top = body["results"][0]
    assert top["outcome"]["title"] == "海马新种质创制及产业化应用"
    assert top["outcome"]["institution"]["name"] == "鲁东大学"
    exp = top["explanation"]
    assert "海马" in exp["shared_terms"]
    assert exp["best_sentences"] and "海马" in "".join(s["sentence"] for s in exp["best_sentences"])
    assert exp["summary"].startswith("技术方向一致")
    assert isinstance(exp["missing_fields"], list)
    assert [r["rank"] for r in body["results"]] == [1, 2, 3, 4, 5]
    scores = [r["score"] for r in body["results"]]
    assert scores == sorted(scores, reverse=True)


def test_filters_by_institution(seeded_client):
    inst = seeded_client.get("/institutions", params={"q": "鲁东大学"}).json()["items"][0]
    body = seeded_client.post("/search", json={"text": "海水养殖", "institution_id": inst["id"], "k": 20}).json()
    assert body["results"] and {r["outcome"]["institution"]["id"] for r in body["results"]} == {inst["id"]}
