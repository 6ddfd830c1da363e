"""Matchmaking events through the API: real match scores, every hard rule, 422s that say what to relax."""
from __future__ import annotations

import io
from collections import Counter

import pytest
from openpyxl import load_workbook

from .helpers import by_title, load_small

SLOTS = ["09:00", "09:30", "10:00", "10:30", "11:00", "11:30"]


def assert_schedule_holds(event: dict) -> None:
    """No party twice in a slot, no pair twice, every capacity respected — read from the returned schedule."""
    s, meetings = event["settings"], event["meetings"]
    labels = [slot["label"] for slot in event["slots"]]
    assert all(m["slot_label"] == labels[m["slot_index"]] for m in meetings)
    assert max(Counter((m["enterprise"]["id"], m["slot_index"]) for m in meetings).values()) == 1
    assert max(Counter((m["institution"]["id"], m["slot_index"]) for m in meetings).values()) == 1
    assert max(Counter((m["need"]["id"], m["outcome"]["id"]) for m in meetings).values()) == 1
    assert max(Counter(m["enterprise"]["id"] for m in meetings).values()) <= s["max_meetings_per_firm"]
    assert max(Counter(m["institution"]["id"] for m in meetings).values()) <= s["max_meetings_per_institution"]
    assert max(Counter(m["slot_index"] for m in meetings).values()) <= s["max_meetings_per_slot"]
    assert event["objective"] == pytest.approx(sum(m["score"] for m in meetings), abs=1e-3)
    assert event["objective"] >= event["greedy_objective"] - 1e-6
    assert event["gap_vs_greedy"] == pytest.approx(
        (event["objective"] - event["greedy_objective"]) / event["objective"], abs=1e-5)


# -- the seeded district: 17 firms, 11 institutions ------------------------------------------
@pytest.fixture(scope="module")
def seeded_event(seeded_client):
    firms = [e["id"] for e in seeded_client.get("/enterprises", params={"limit": 100}).json()["items"]]
    insts = [i["id"] for i in seeded_client.get("/institutions", params={"limit": 100}).json()["items"]]
    body = {"title": "文登区产学研对接会（示例）", "held_on": "2025-05-20", "location": "文登区科技局",
            "enterprise_ids": firms, "institution_ids": insts,
            "slots": [{"label": SLOTS[0], "starts_at": "2025-05-20T09:00:00+08:00", "ends_at": "2025-05-20T09:30:00+08:00"},
                      *SLOTS[1:]],
            "max_meetings_per_firm": 3, "max_meetings_per_institution": 4, "max_meetings_per_slot": 10,
            "time_limit_s": 10}
    r = seeded_client.post("/events", json=body)
    assert r.status_code == 201, r.text
    return body, r.json()


def test_seeded_event_is_scheduled_within_every_rule(seeded_event):
    body, event = seeded_event
    assert event["status"] in ("optimal", "feasible") and event["solver"] in ("cp-sat", "milp")
    assert event["solve_seconds"] <= body["time_limit_s"] + 5
    assert_schedule_holds(event)
    # 17 firms × 3 = 51 wanted, 11 institutions × 4 = 44 possible: the institutions are the bottleneck.
    assert len(event["meetings"]) == 44
    assert event["slots"][0]["starts_at"].startswith("2025-05-20T09:00:00")
    assert all(m["summary"] for m in event["meetings"])
    assert event["participants"]["need_ids"] and len(event["participants"]["enterprise_ids"]) == 17


def test_event_scores_are_the_match_api_scores(seeded_client, seeded_event):
    # With every outcome taking part, a need's candidates are exactly its top 10 on /needs/{id}/matches.
    _, event = seeded_event
    for m in event["meetings"][:8]:
        matches = seeded_client.get(f"/needs/{m['need']['id']}/matches", params={"k": 10}).json()["results"]
        score = {r["outcome"]["id"]: r["score"] for r in matches}
        assert m["outcome"]["id"] in score
        assert m["score"] == pytest.approx(score[m["outcome"]["id"]], abs=1e-6)


def test_event_reads_back_and_exports_agendas(seeded_client, seeded_event):
    _, event = seeded_event
    again = seeded_client.get(f"/events/{event['id']}")
    assert again.status_code == 200 and again.json() == event
    listed = seeded_client.get("/events").json()
    assert listed["total"] >= 1 and listed["items"][0]["id"] == event["id"]

    r = seeded_client.get(f"/events/{event['id']}/agendas.xlsx")
    assert r.status_code == 200, r.text
    wb = load_workbook(io.BytesIO(r.content))
    firms = {m["enterprise"]["name"] for m in event["meetings"]}
    insts = {m["institution"]["name"] for m in event["meetings"]}
    assert wb.sheetnames[0] == "总日程" and len(wb.sheetnames) == 1 + len(firms) + len(insts)
    overview = list(wb["总日程"].iter_rows(values_only=True))
    assert overview[0][:5] == ("时段", "开始时间", "结束时间", "企业", "技术需求")
    assert len(overview) == 1 + len(event["meetings"])
    assert overview[1][1] == "2025-05-20 09:00"

    m = event["meetings"][0]
    firm_sheet = list(wb[m["enterprise"]["name"][:31]].iter_rows(values_only=True))
    assert [row[0] for row in firm_sheet[1:]] == SLOTS  # every slot listed, free ones marked
    mine = [mm for mm in event["meetings"] if mm["enterprise"]["id"] == m["enterprise"]["id"]]
    assert sum(1 for row in firm_sheet[1:] if row[3] != "（空闲）") == len(mine)
    row = firm_sheet[1 + m["slot_index"]]
    assert (row[3], row[4], row[5]) == (m["institution"]["name"], m["need"]["title"], m["outcome"]["title"])

    one = seeded_client.get(f"/events/{event['id']}/agendas.xlsx", params={"party": f"institution:{m['institution']['id']}"})
    assert one.status_code == 200
    wb = load_workbook(io.BytesIO(one.content))
    assert len(wb.sheetnames) == 1 and wb.active.cell(1, 4).value == "对接方"


@pytest.mark.parametrize("party,status,code", [
    ("firm:1", 422, "invalid_party"), ("enterprise:", 422, "invalid_party"), ("enterprise:999999", 404, "party_not_in_event"),
])
def test_agenda_party_errors(seeded_client, seeded_event, party, status, code):
    _, event = seeded_event
    r = seeded_client.get(f"/events/{event['id']}/agendas.xlsx", params={"party": party})
    assert r.status_code == status and r.json()["code"] == code and r.json()["message"]


# -- a small event on every backend ----------------------------------------------------------
def _small(client):
    load_small(client)
    needs = [by_title(client, "needs", t)["id"] for t in ("海马人工繁育技术", "曲轴表面耐磨强化")]
    outcomes = [o["id"] for o in client.get("/outcomes").json()["items"]]
    return {"title": "小型对接会", "need_ids": needs, "outcome_ids": outcomes, "slots": ["上午一", "上午二"],
            "max_meetings_per_firm": 2, "max_meetings_per_institution": 1, "max_meetings_per_slot": 2}


def test_small_event_respects_exclusions_and_unavailability(client):
    body = _small(client)
    seahorse_need = body["need_ids"][0]
    seahorse = by_title(client, "outcomes", "海马新种质创制及产业化应用")
    plain = client.post("/events", json=body)
    assert plain.status_code == 201, plain.text
    event = plain.json()
    assert_schedule_holds(event)
    assert event["status"] == "optimal" and len(event["meetings"]) == 3  # 3 institutions × 1 meeting
    assert (seahorse_need, seahorse["id"]) in {(m["need"]["id"], m["outcome"]["id"]) for m in event["meetings"]}

    firm = event["meetings"][0]["enterprise"]["id"]
    ruled = client.post("/events", json={**body, "excluded_pairs": [{"need_id": seahorse_need, "outcome_id": seahorse["id"]}],
                                         "unavailable": [{"slot": "上午一", "enterprise_id": firm}]})
    assert ruled.status_code == 201, ruled.text
    ruled = ruled.json()
    assert_schedule_holds(ruled)
    pairs = {(m["need"]["id"], m["outcome"]["id"]) for m in ruled["meetings"]}
    assert (seahorse_need, seahorse["id"]) not in pairs
    assert not [m for m in ruled["meetings"] if m["enterprise"]["id"] == firm and m["slot_label"] == "上午一"]


def test_declined_pair_is_never_scheduled(client):
    body = _small(client)
    need, outcome = body["need_ids"][0], by_title(client, "outcomes", "海马新种质创制及产业化应用")["id"]
    p = client.post("/pairings", json={"need_id": need, "outcome_id": outcome, "broker": "张红娘"}).json()
    client.post(f"/pairings/{p['id']}/moves", json={"to_stage": "declined", "actor": "张红娘", "version": 1,
                                                   "decline_reason": "price"})
    event = client.post("/events", json=body).json()
    assert (need, outcome) not in {(m["need"]["id"], m["outcome"]["id"]) for m in event["meetings"]}
    assert {"kind": "pair", "need_id": need, "outcome_id": outcome}.items() <= event["skipped"][0].items()


def test_enterprise_and_institution_ids_expand(client):
    body = _small(client)
    firms = sorted({n["enterprise"]["id"] for n in client.get("/needs").json()["items"]})
    insts = sorted({o["institution"]["id"] for o in client.get("/outcomes").json()["items"]})
    r = client.post("/events", json={**body, "need_ids": [], "outcome_ids": [], "enterprise_ids": firms,
                                     "institution_ids": insts})
    assert r.status_code == 201, r.text
    assert r.json()["participants"]["need_ids"] == sorted(body["need_ids"])


def test_infeasible_event_says_what_to_relax(client):
    body = _small(client)
    r = client.post("/events", json={**body, "min_meetings_per_firm": 3, "max_meetings_per_firm": 3})
    assert r.status_code == 422
    err = r.json()
    assert err["code"] == "event_infeasible"
    assert "时段" in err["message"] and "至少" in err["message"] and err["details"]["reasons"]
    assert client.get("/events").json()["total"] == 0  # nothing stored


BAD_EVENT_REQUESTS = [
    ({"need_ids": [999999]}, 404, "need_not_found"),
    ({"outcome_ids": [999999]}, 404, "outcome_not_found"),
    ({"enterprise_ids": [999999]}, 404, "enterprise_not_found"),
    ({"need_ids": []}, 422, "no_needs"),
    ({"outcome_ids": []}, 422, "no_outcomes"),
    ({"slots": ["a", "a"]}, 422, "duplicate_slot"),
    ({"slots": []}, 422, "invalid_input"),
    ({"slots": ["  "]}, 422, "invalid_input"),
    ({"slots": [{"label": "a", "starts_at": "2025-05-20T10:00", "ends_at": "2025-05-20T09:00"}]}, 422, "invalid_input"),
    ({"slots": [{"label": "a", "starts_at": "明天上午"}]}, 422, "invalid_input"),
    ({"max_meetings_per_firm": 0}, 422, "invalid_input"),
    ({"time_limit_s": 300}, 422, "invalid_input"),
    ({"min_score": 1.99}, 422, "no_candidates"),
    ({"need_ids": [0]}, 422, "invalid_input"),
    ({"colour": "red"}, 422, "invalid_input"),
    ({"title": ""}, 422, "invalid_input"),
    ({"excluded_pairs": [{"need_id": 1, "outcome_id": 999999}]}, 422, "excluded_pair_not_in_event"),
    ({"unavailable": [{"slot": "晚上", "enterprise_id": 1}]}, 422, "unknown_slot"),
    ({"unavailable": [{"slot": "上午一", "enterprise_id": 999999}]}, 422, "unavailable_party_not_in_event"),
    ({"unavailable": [{"slot": "上午一"}]}, 422, "invalid_input"),
]


def test_bad_event_requests_are_coded(client):
    # One loaded database for every case: each bad request must leave it unchanged, which is asserted.
    body = _small(client)
    for change, status, code in BAD_EVENT_REQUESTS:
        r = client.post("/events", json={**body, **change})
        assert r.status_code == status, (change, r.text)
        err = r.json()
        assert err["code"] == code and any("\u4e00" <= ch <= "\u9fff" for ch in err["message"]), (change, err)
        assert client.get("/events").json()["total"] == 0, change


def test_unknown_event_and_bad_ids(client):
    assert client.get("/events/999").json()["code"] == "event_not_found"
    assert client.get("/events/abc").status_code == 422
    assert client.get("/events/999/agendas.xlsx").status_code == 404
    r = client.post("/events", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["code"] == "invalid_input"
