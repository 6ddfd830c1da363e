"""CRUD round trips, matching, deletes, and bad input through the API."""
from __future__ import annotations

import pytest

from .helpers import by_title, load_small


def _is_chinese(text: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in text)


def test_crud_round_trip_and_matches(client):
    ent = client.post("/enterprises", json={"name": "威海迪嘉药业有限公司", "region": "文登区", "size": "中型"}).json()
    inst = client.post("/institutions", json={"name": "天津科技大学", "kind": "university", "location": "天津市"}).json()
    assert inst["locality"] == "other" and inst["kind_label"] == "高校"
    need = client.post("/needs", json={"enterprise_id": ent["id"], "title": "  西洋参皂苷提取工艺优化 ",
                                       "description": "提高人参皂苷提取率，降低溶剂残留。",
                                       "cooperation_modes": ["技术开发"], "industry_chain": "医药及健康食品"})
    assert need.status_code == 201, need.text
    assert need.json()["title"] == "西洋参皂苷提取工艺优化"
    out = client.post("/outcomes", json={"institution_id": inst["id"], "title": "人参皂苷高效提取纯化技术",
                                         "abstract": "采用超声辅助与大孔树脂纯化，皂苷提取率提高30%。溶剂可回收。",
                                         "trl": 6, "cooperation_modes": ["技术开发", "技术转让"],
                                         "industry_chain": "医药及健康食品"}).json()
    assert out["stage"] == "中试"
    patched = client.patch(f"/outcomes/{out['id']}", json={"price_min": 20, "price_max": 40}).json()
    assert patched["price_max"] == 40 and patched["title"] == "人参皂苷高效提取纯化技术"

    matches = client.get(f"/needs/{need.json()['id']}/matches", params={"k": 5}).json()["results"]
    top = matches[0]
    assert top["outcome"]["id"] == out["id"] and top["outcome"]["institution"]["name"] == "天津科技大学"
    exp = top["explanation"]
    assert "人参" in exp["shared_terms"] and "提取" in exp["shared_terms"]
    assert exp["best_sentences"] and exp["best_sentences"][0]["sentence"] in out["abstract"]
    assert _is_chinese(exp["summary"])
    assert {f["name"] for f in exp["factors"]} >= {"industry_chain", "maturity", "cooperation_mode"}

    back = client.get(f"/outcomes/{out['id']}/matches").json()["results"]
    assert back[0]["need"]["id"] == need.json()["id"]


def test_search_both_sides_with_filters(client):
    load_small(client)
    r = client.post("/search", json={"text": "电池散热", "target": "outcomes", "k": 3}).json()
    assert r["results"][0]["outcome"]["title"] == "锂离子动力电池液冷散热技术"
    r = client.post("/search", json={"text": "电池散热", "target": "outcomes", "industry_chain": "海洋生物"}).json()
    assert [x["outcome"]["title"] for x in r["results"]] == ["海马新种质创制及产业化应用"]
    r = client.post("/search", json={"text": "曲轴耐磨", "target": "needs", "k": 1}).json()
    assert r["results"][0]["need"]["title"] == "曲轴表面耐磨强化"
    r = client.post("/search", json={"text": "曲轴", "target": "outcomes", "stage": "产业化"}).json()
    assert {x["outcome"]["stage"] for x in r["results"]} == {"产业化"}
    r = client.post("/search", json={"text": "曲轴", "target": "outcomes", "cooperation_mode": "技术许可"}).json()
    assert [x["outcome"]["title"] for x in r["results"]] == ["激光仿生耦合耐磨抗疲劳技术"]
    r = client.post("/search", json={"text": "曲轴", "target": "outcomes", "region": "文登"}).json()
    assert [x["outcome"]["title"] for x in r["results"]] == ["激光仿生耦合耐磨抗疲劳技术"]


def test_a_typed_search_is_not_written_to_the_vector_cache(client, ctx):
    from uuid import uuid4

    from embeddings.vector_cache import text_key

    # New in every run: the test vector cache outlives runs, so a fixed text could be there from an older one.
    typed = f"一条只在检索框里出现过的文字：耐高温陶瓷涂层 {uuid4().hex[:8]}"
    assert client.post("/search", json={"text": typed, "target": "outcomes"}).status_code == 200
    before = ctx.encoder.encoded_count
    assert client.post("/search", json={"text": typed, "target": "outcomes"}).status_code == 200
    assert ctx.encoder.encoded_count == before  # asked again: the worker's memory answers
    assert ctx.encoder.cache.get_many(ctx.encoder.model_id, [text_key(typed, "query")]) == {}


def test_deleted_outcome_is_never_returned(client):
    load_small(client)
    hm = by_title(client, "outcomes", "海马新种质创制及产业化应用")
    need = by_title(client, "needs", "海马人工繁育技术")
    first = client.get(f"/needs/{need['id']}/matches").json()["results"]
    assert first[0]["outcome"]["id"] == hm["id"]
    assert client.delete(f"/outcomes/{hm['id']}").status_code == 204
    assert client.get(f"/outcomes/{hm['id']}").status_code == 404
    after = client.get(f"/needs/{need['id']}/matches").json()["results"]
    assert hm["id"] not in [x["outcome"]["id"] for x in after]
    found = client.post("/search", json={"text": "海马新种质创制", "k": 10}).json()["results"]
    assert hm["id"] not in [x["outcome"]["id"] for x in found]
    assert client.get("/health").json()["indexed"]["outcomes"] == 2


def test_updated_text_is_reindexed(client):
    load_small(client)
    out = by_title(client, "outcomes", "锂离子动力电池液冷散热技术")
    client.patch(f"/outcomes/{out['id']}", json={"title": "海参人工育苗技术", "abstract": "海参苗种繁育与病害防控。"})
    top = client.post("/search", json={"text": "海参育苗", "k": 1}).json()["results"][0]
    assert top["outcome"]["id"] == out["id"]


@pytest.mark.parametrize("method,path,body,code", [
    ("post", "/needs", {"enterprise_id": 1, "title": "   "}, "invalid_input"),
    ("post", "/search", {"text": "  \n "}, "invalid_input"),
    ("post", "/search", {"text": "x", "k": 0}, "invalid_input"),
    ("post", "/search", {"text": "x", "target": "people"}, "invalid_input"),
    ("post", "/search", {"text": "x" * 3000}, "invalid_input"),
    ("post", "/outcomes", {"institution_id": 1, "title": "t", "trl": 12}, "invalid_input"),
    ("post", "/outcomes", {"institution_id": 1, "title": "t", "trl": 2, "stage": "产业化"}, "invalid_input"),
    ("post", "/needs", {"enterprise_id": 1, "title": "t", "budget_min": 9, "budget_max": 1}, "invalid_input"),
    ("post", "/needs", {"enterprise_id": 1, "title": "t", "cooperation_modes": ["白送"]}, "invalid_input"),
    ("post", "/needs", {"enterprise_id": 999, "title": "t"}, "enterprise_not_found"),
    ("get", "/needs/999", None, "need_not_found"),
    ("get", "/outcomes/999/matches", None, "outcome_not_found"),
    ("get", "/needs/abc", None, "invalid_input"),
    ("get", "/no-such-route", None, "not_found"),
    ("post", "/enterprises", {"name": "x", "credit_code": "123"}, "invalid_input"),
    ("get", "/needs/99999999999999999999999", None, "invalid_input"),
    ("get", "/needs/0", None, "invalid_input"),
    ("get", "/needs/1/matches?cooperation_mode=白送", None, "invalid_input"),
    ("get", "/needs/1/matches?industry_chain=火星", None, "invalid_input"),
    ("get", "/outcomes/1/matches?stage=没有", None, "invalid_input"),
    ("get", "/needs?enterprise_id=99999999999", None, "invalid_input"),
    ("post", "/needs", {"enterprise_id": 99999999999, "title": "t"}, "invalid_input"),
    ("post", "/pairings", {"need_id": 1, "outcome_id": 1, "broker": "   "}, "invalid_input"),
])
def test_bad_input_gets_a_coded_chinese_4xx(client, method, path, body, code):
    r = getattr(client, method)(path, json=body) if body is not None else getattr(client, method)(path)
    assert 400 <= r.status_code < 500, r.text
    assert r.json()["code"] == code
    assert _is_chinese(r.json()["message"])


def test_malformed_json_body(client):
    r = client.post("/search", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["code"] == "invalid_input"


def test_duplicate_names_conflict(client):
    client.post("/institutions", json={"name": "鲁东大学"})
    r = client.post("/institutions", json={"name": "鲁东大学"})
    assert r.status_code == 409 and r.json()["code"] == "duplicate"
