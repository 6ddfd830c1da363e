"""Pairings move through their stages; signing records a project that counts toward the target."""
from __future__ import annotations

from datetime import date

from matcher import targets

from .helpers import by_title, load_small


def _pair(client):
    load_small(client)
    need = by_title(client, "needs", "海马人工繁育技术")
    outcome = by_title(client, "outcomes", "海马新种质创制及产业化应用")
    r = client.post("/pairings", json={"need_id": need["id"], "outcome_id": outcome["id"], "broker": "张红娘"})
    assert r.status_code == 201, r.text
    return need, outcome, r.json()


def _move(client, pairing, to, **extra):
    return client.post(f"/pairings/{pairing['id']}/moves",
                       json={"to_stage": to, "actor": "张红娘", "version": pairing["version"], **extra})


def test_full_path_to_signed_records_a_project(client):
    need, outcome, p = _pair(client)
    assert p["stage"] == "proposed" and p["version"] == 1
    for stage in ("contacted", "negotiating"):
        r = _move(client, p, stage)
        assert r.status_code == 200, r.text
        p = r.json()
    r = _move(client, p, "signed", project={"contract_type": "技术转让", "amount_wan": 60, "signed_date": "2025-03-10"})
    assert r.status_code == 200, r.text
    p = r.json()
    assert [e["to_stage"] for e in p["events"]] == ["proposed", "contacted", "negotiating", "signed"]
    assert all(e["actor"] == "张红娘" for e in p["events"])
    project = client.get(f"/pairings/{p['id']}/project").json()
    assert project["region"] == "文登区" and project["contract_type"] == "技术转让"
    assert project["institution_id"] == outcome["institution"]["id"]
    assert _move(client, p, "declined", decline_reason="price").status_code == 409

    client.post("/targets", json={"region": "文登区", "year_start": 2025, "year_end": 2025, "count": 20})
    prog = client.get("/targets/progress", params={"region": "文登区", "year": 2025}).json()
    assert prog["target"] == 20 and prog["signed"] == 1
    city = client.get("/targets/progress", params={"region": "威海市", "year": 2025}).json()
    assert city["signed"] == 1 and city["target"] is None and "尚未设定目标" in city["note"]


def test_illegal_moves_are_refused_with_409(client):
    _, _, p = _pair(client)
    r = _move(client, p, "signed", project={"contract_type": "技术转让"})
    assert r.status_code == 409 and r.json()["code"] == "illegal_transition"
    assert "已推荐" in r.json()["message"]
    r = _move(client, p, "flying")
    assert r.status_code == 422 and r.json()["code"] == "invalid_stage"


def test_decline_needs_a_reason_and_the_pair_never_comes_back(client):
    need, outcome, p = _pair(client)
    r = _move(client, p, "declined")
    assert r.status_code == 422 and r.json()["code"] == "decline_reason_required"
    r = _move(client, p, "declined", decline_reason="other")
    assert r.json()["code"] == "decline_note_required"
    r = _move(client, p, "declined", decline_reason="trl_gap", decline_note="企业要产业化成果")
    assert r.status_code == 200 and r.json()["decline_reason"] == "trl_gap"
    matches = client.get(f"/needs/{need['id']}/matches").json()["results"]
    assert outcome["id"] not in [m["outcome"]["id"] for m in matches]
    from_outcome = client.get(f"/outcomes/{outcome['id']}/matches").json()["results"]
    assert need["id"] not in [m["need"]["id"] for m in from_outcome]
    again = client.post("/pairings", json={"need_id": need["id"], "outcome_id": outcome["id"], "broker": "李"})
    assert again.status_code == 409 and again.json()["code"] == "pairing_exists"


def test_open_pairing_is_shown_on_its_match(client):
    need, outcome, p = _pair(client)
    matches = client.get(f"/needs/{need['id']}/matches").json()["results"]
    hit = next(m for m in matches if m["outcome"]["id"] == outcome["id"])
    assert hit["pairing"] == {"id": p["id"], "stage": "proposed", "stage_label": "已推荐", "decline_reason": None}
    # The outcome's page reads the same pairing from the other end.
    from_outcome = client.get(f"/outcomes/{outcome['id']}/matches").json()["results"]
    back = next(m for m in from_outcome if m["need"]["id"] == need["id"])
    assert back["pairing"] == hit["pairing"]


def test_stale_version_cannot_overwrite(client):
    _, _, p = _pair(client)
    assert _move(client, p, "contacted").status_code == 200
    r = _move(client, p, "declined", decline_reason="price")  # still holds version 1
    assert r.status_code == 409 and r.json()["code"] == "version_conflict"


def test_direct_project_counts_and_progress_arithmetic(client, ctx):
    load_small(client)
    ent = client.get("/enterprises").json()["items"][0]
    inst = client.get("/institutions").json()["items"][0]
    for i, day in enumerate(["2025-02-01", "2025-05-01", "2025-06-30"]):
        r = client.post("/projects", json={"enterprise_id": ent["id"], "institution_id": inst["id"], "title": f"项目{i}",
                                           "contract_type": "技术开发", "signed_date": day})
        assert r.status_code == 201, r.text
    client.post("/targets", json={"region": "文登区", "year_start": 2024, "year_end": 2026, "count": 60})
    client.post("/targets", json={"region": "文登区", "year_start": 2025, "year_end": 2025, "count": 20})
    with ctx.sessions() as s:
        year = targets.progress(s, "文登区", 2025, 2025, today=date(2025, 7, 1))
        period = targets.progress(s, "文登区", 2024, 2026, today=date(2025, 7, 1))
    # 2025-07-01 is day 182 of 365: 20 × 182/365 = 9.97 expected by now.
    assert year["signed"] == 3 and year["expected_by_now"] == 9.97 and year["behind_pace"] == 6.97
    assert year["gap_to_target"] == 17
    # Day 548 of 1096 in 2024–2026 (2024 has 366 days): 60 × 548/1096 = 30.
    assert period["signed"] == 3 and period["expected_by_now"] == 30.0
    r = client.get("/targets/progress", params={"region": "文登区", "period": "2026-2024"})
    assert r.status_code == 422 and r.json()["code"] == "invalid_period"
    r = client.get("/targets/progress", params={"region": "文登区"})
    assert r.status_code == 422 and r.json()["code"] == "year_required"
    dup = client.post("/targets", json={"region": "文登区", "year_start": 2025, "year_end": 2025, "count": 5})
    assert dup.status_code == 409 and dup.json()["code"] == "target_exists"
    future = client.post("/projects", json={"enterprise_id": ent["id"], "institution_id": inst["id"], "title": "x",
                                            "contract_type": "技术开发", "signed_date": "2999-01-01"})
    assert future.status_code == 422 and future.json()["code"] == "future_signed_date"
