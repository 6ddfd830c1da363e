"""Structured fit never rewards missing data; explanations name shared and related terms."""
import itertools

import pytest

from matcher.scoring import DEFAULT_WEIGHTS, Factor, combine
from matcher.textutil import related_terms, shared_terms

NEED = {"title": "动力电池包热管理", "description": "新能源汽车锂电池包夏季温升过高，需要液冷散热方案，控制电芯温差。",
        "industry_chain": "新能源新材料", "cooperation_modes": ["技术开发"], "budget_min": 50, "budget_max": 80}
ABSTRACT = "开发了锂离子电池包液冷板与热管理控制策略，电芯温差控制在3℃以内。适用于新能源汽车动力电池包。"


def test_a_record_with_empty_fields_cannot_outrank_the_same_record_with_fitting_fields(client):
    ent = client.post("/enterprises", json={"name": "威海某汽车零部件有限公司", "region": "文登区"}).json()
    need = client.post("/needs", json={"enterprise_id": ent["id"], **NEED}).json()
    filled_inst = client.post("/institutions", json={"name": "山东大学（威海）", "location": "山东省威海市"}).json()
    empty_inst = client.post("/institutions", json={"name": "某高校"}).json()
    title = "锂离子动力电池液冷散热技术"
    filled = client.post("/outcomes", json={
        "institution_id": filled_inst["id"], "title": title, "abstract": ABSTRACT, "industry_chain": "新能源新材料",
        "stage": "中试", "cooperation_modes": ["技术开发"], "price_min": 30, "price_max": 60}).json()
    empty = client.post("/outcomes", json={"institution_id": empty_inst["id"], "title": title, "abstract": ABSTRACT}).json()

    results = client.get(f"/needs/{need['id']}/matches", params={"k": 5}).json()["results"]
    by_id = {r["outcome"]["id"]: r for r in results}
    top, other = by_id[filled["id"]], by_id[empty["id"]]
    assert top["text_score"] == pytest.approx(other["text_score"], abs=1e-6)  # same text, same relevance
    assert top["rank"] < other["rank"] and top["score"] > other["score"]
    assert other["confidence"] < top["confidence"]
    assert all(f["contribution"] == 0 for f in other["explanation"]["factors"]), other["explanation"]["factors"]
    assert {"产业链", "成熟度", "合作方式", "报价"} <= set(other["explanation"]["missing_fields"])
    assert "信息不全" in other["explanation"]["summary"] or other["confidence"] >= 0.5


@pytest.mark.parametrize("values", list(itertools.product([None, 0.0, 0.5, 1.0], repeat=3)))
def test_replacing_any_factor_value_by_missing_never_raises_the_score(values):
    names = ["industry_chain", "maturity", "locality"]
    fs = [Factor(n, v, "") for n, v in zip(names, values)]
    base = combine(0.8, fs, DEFAULT_WEIGHTS)
    for i in range(len(fs)):
        emptied = [Factor(f.name, None if j == i else f.value, "") for j, f in enumerate(fs)]
        worse = combine(0.8, emptied, DEFAULT_WEIGHTS)
        assert worse.score <= base.score
        assert worse.confidence <= base.confidence


def test_related_terms_catch_abbreviations_not_just_identical_words():
    query = "锂电池热管理与空气源热泵"
    doc = "本成果提出一种锂离子电池液冷系统，用于电动汽车热泵空调，提升热管理效率。"
    shared = shared_terms(query, doc)
    assert "热泵" in shared
    assert "锂电池≈锂离子电池" in related_terms(query, doc, shared)
    assert related_terms("海马人工繁育", doc, shared_terms("海马人工繁育", doc)) == []


def test_when_nothing_fits_every_result_is_weak_and_the_answer_says_so(client):
    from .helpers import load_small

    load_small(client)
    body = client.post("/search", json={"text": "量子色动力学格点计算与强子谱", "k": 3}).json()
    assert body["results"] and all(r["weak"] for r in body["results"])
    assert "没有匹配度高的结果" in body["note"]
    good = client.post("/search", json={"text": "海马苗种成活率低，人工养殖病害多", "k": 3}).json()
    assert not good["results"][0]["weak"]
    assert good["note"] is None or "较强匹配" in good["note"]


def test_stored_explain_terms_explain_exactly_as_segmenting_the_text(seeded):
    """Records keep their terms at write (needs also the terms they ask with); explanations from them equal those
    from segmenting each result and each need's text again."""
    from sqlalchemy import select
    from sqlalchemy.orm import undefer

    from matcher.documents import document_text
    from matcher.explain import explain_body
    from matcher.models import Need, Outcome

    with seeded.sessions() as s:
        outcomes = s.scalars(select(Outcome).options(undefer(Outcome.explain_terms))).unique().all()
        needs = s.scalars(select(Need).options(undefer(Need.explain_terms), undefer(Need.query_terms))).unique().all()
    assert outcomes and all(o.explain_terms for o in outcomes) and all(n.explain_terms for n in needs)
    assert all(n.query_terms for n in needs)
    compared = related = 0
    for need in needs[:12]:
        query = document_text(need)
        for o in outcomes:
            body = explain_body(o)
            shared = shared_terms(query, body)
            assert shared_terms(query, body, doc_terms=o.explain_terms) == shared
            assert shared_terms(query, body, doc_terms=o.explain_terms, query_terms=need.query_terms) == shared
            segmented = related_terms(query, body, shared)
            assert related_terms(query, body, shared, doc_terms=o.explain_terms) == segmented
            assert related_terms(query, body, shared, doc_terms=o.explain_terms, query_terms=need.query_terms) == segmented
            compared += bool(shared)
            related += bool(segmented)
    assert compared > 50 and related > 0, related
