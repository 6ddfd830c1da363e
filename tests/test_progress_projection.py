"""Progress, period-end projections and the funnel on a hand-built pairing history.

The history (all 2025, China time; "→" is a move, days in brackets are the stay):

  文登区 (broker 张红娘)
    A  海马繁育 × 海马新种质   proposed 01-06 →(10) contacted 01-16 →(30) negotiating 02-15 →(30) signed 03-17
    B  海马繁育 × 液冷散热     proposed 01-10 →(10) declined 01-20 (收益不明确)
    C  海马繁育 × 激光仿生     proposed 02-03 →(20) contacted 02-23 →(10) declined 03-05 (价格)
    D  曲轴耐磨 × 激光仿生     proposed 02-10 →(10) contacted 02-20 →(20) negotiating 03-12 →(60) signed 05-11
    E  曲轴耐磨 × 海马新种质   proposed 04-01 →(14) contacted 04-15                       (open)
    F  曲轴耐磨 × 液冷散热     proposed 06-02 →(60) contacted 08-01  (after 07-01: open in "proposed" as of 07-01)
    a project entered directly: 天润 × 仿生研究院, signed 06-30
  荣成市 (broker 李红娘), counted only in 威海市
    G  海参利用 × 海马新种质   proposed 03-01 → contacted 03-11 → negotiating 04-10 → signed 06-09
    H  海参利用 × 液冷散热     proposed 05-05                                              (open)
"""
from __future__ import annotations

from datetime import date, datetime, timezone

import pytest

from matcher import pairings, targets
from matcher.clock import LOCAL_TZ, local_date
from matcher.errors import DomainError

from .helpers import NEED_HEADER, NEEDS, by_title, load_small, upload, xlsx

RONGCHENG_NEED = ["威海荣成海洋食品有限公司", "荣成市石岛管理区", "海参加工副产物综合利用",
                  "海参加工产生大量肠卵和内脏，希望开发高值化利用技术。", "海洋生物", "30", "技术开发"]
AS_OF = "2025-07-01"


def at(month: int, day: int) -> datetime:
    return datetime(2025, month, day, 10, 0, tzinfo=LOCAL_TZ)


def _steps(*moves):
    out = []
    for move in moves:
        stage, (month, day), *extra = move
        out.append({"stage": stage, "at": at(month, day), **(extra[0] if extra else {})})
    return out


@pytest.fixture
def history(client, ctx):
    """Load the records and write the history in the module docstring; returns the ids used."""
    load_small(client)
    assert upload(client, "needs", xlsx([NEED_HEADER, RONGCHENG_NEED])).status_code == 200
    n1, n2 = by_title(client, "needs", NEEDS[0][2])["id"], by_title(client, "needs", NEEDS[1][2])["id"]
    n3 = by_title(client, "needs", RONGCHENG_NEED[2])["id"]
    o1 = by_title(client, "outcomes", "海马新种质创制及产业化应用")
    o2 = by_title(client, "outcomes", "锂离子动力电池液冷散热技术")
    o3 = by_title(client, "outcomes", "激光仿生耦合耐磨抗疲劳技术")
    signed = {"contract_type": "技术转让"}
    plan = [
        (n1, o1, "张红娘", _steps(("proposed", (1, 6)), ("contacted", (1, 16)), ("negotiating", (2, 15)),
                                 ("signed", (3, 17), signed))),
        (n1, o2, "张红娘", _steps(("proposed", (1, 10)), ("declined", (1, 20), {"decline_reason": "benefit_unclear"}))),
        (n1, o3, "张红娘", _steps(("proposed", (2, 3)), ("contacted", (2, 23)),
                                 ("declined", (3, 5), {"decline_reason": "price"}))),
        (n2, o3, "张红娘", _steps(("proposed", (2, 10)), ("contacted", (2, 20)), ("negotiating", (3, 12)),
                                 ("signed", (5, 11), signed))),
        (n2, o1, "张红娘", _steps(("proposed", (4, 1)), ("contacted", (4, 15)))),
        (n2, o2, "张红娘", _steps(("proposed", (6, 2)), ("contacted", (8, 1)))),
        (n3, o1, "李红娘", _steps(("proposed", (3, 1)), ("contacted", (3, 11)), ("negotiating", (4, 10)),
                                 ("signed", (6, 9), signed))),
        (n3, o2, "李红娘", _steps(("proposed", (5, 5)))),
    ]
    with ctx.sessions() as s:
        for need_id, outcome, broker, steps in plan:
            pairings.record_history(s, need_id, outcome["id"], broker, steps)
        s.commit()
    tianrun = by_title(client, "needs", NEEDS[1][2])["enterprise"]["id"]
    r = client.post("/projects", json={"enterprise_id": tianrun, "institution_id": o3["institution"]["id"],
                                       "title": "曲轴产线改造", "contract_type": "技术开发", "signed_date": "2025-06-30",
                                       "industry_chain": "汽车机电"})
    assert r.status_code == 201, r.text
    for region, count in (("文登区", 20), ("威海市", 100)):
        assert client.post("/targets", json={"region": region, "year_start": 2025, "year_end": 2025,
                                             "count": count}).status_code == 201
    return {"o1": o1, "o3": o3}


def test_projection_arithmetic_by_hand(client, history):
    r = client.get("/targets/progress", params={"region": "文登区", "year": 2025, "as_of": AS_OF})
    assert r.status_code == 200, r.text
    p = r.json()
    # Signed by 07-01: A (03-17), D (05-11) and the direct project (06-30) = 3; G is in 荣成市.
    assert (p["signed"], p["target"], p["as_of"]) == (3, 20, AS_OF)
    # 2025-07-01 is day 182 of 365: even pace 20 × 182/365 = 9.97, behind by 9.97 − 3 = 6.97, gap 20 − 3 = 17.
    assert (p["expected_by_now"], p["behind_pace"], p["gap_to_target"]) == (9.97, 6.97, 17)

    run = p["projection"]["run_rate"]
    # Run rate: 3 ÷ (182/365) = 6.0165 → 6.02; shortfall 20 − 6.02 = 13.98.
    assert run["projection"] == 6.02 and run["projected_shortfall"] == 13.98
    assert run["inputs"] == {"signed": 3, "elapsed_days": 182, "total_days": 365}
    assert run["formula"] == "3 ÷ (182/365) = 6.02" and "已签约数 ÷ 期间已过比例" in run["description"]

    pipe = p["projection"]["pipeline"]
    stages = {s["stage"]: s for s in pipe["stages"]}
    # Ended by 07-01: A, D signed; B, C declined.
    #   reached proposed: A B C D → 2 signed of 4 = 0.5
    #   reached contacted: A C D  → 2 of 3 = 0.6667
    #   reached negotiating: A D  → 2 of 2 = 1.0
    assert [(s["sample"], s["sample_signed"], s["conversion_to_signed"]) for s in pipe["stages"]] == [
        (4, 2, 0.5), (3, 2, 0.6667), (2, 2, 1.0)]
    # Open on 07-01: F proposed (its 08-01 move is later), E contacted, none negotiating.
    assert [stages[s]["open"] for s in ("proposed", "contacted", "negotiating")] == [1, 1, 0]
    # 3 + 1 × 0.5 + 1 × 0.6667 + 0 × 1.0 = 4.1667 → 4.17; shortfall 20 − 4.17 = 15.83.
    assert pipe["projection"] == 4.17 and pipe["projected_shortfall"] == 15.83
    assert pipe["formula"] == "3 + 1×0.5 + 1×0.6667 + 0×1.0 = 4.17"
    assert "历史签约转化率" in pipe["description"] and "样本数" in pipe["description"]


def test_breakdowns_and_monthly_series(client, history):
    b = client.get("/targets/progress", params={"region": "文登区", "year": 2025, "as_of": AS_OF}).json()["breakdowns"]
    assert b["industry_chain"] == [{"name": "汽车机电", "signed": 2}, {"name": "海洋生物", "signed": 1}]
    assert [(i["name"], i["signed"]) for i in b["institution"]] == [("吉林大学威海仿生研究院", 2), ("鲁东大学", 1)]
    # 张红娘 signed A and D and still holds E and F; the direct project names no broker.
    assert b["broker"] == [{"name": "张红娘", "signed": 2, "open_pairings": 2},
                           {"name": "未填写", "signed": 1, "open_pairings": 0}]
    months = b["month"]
    assert [m["month"] for m in months] == [f"2025-{m:02d}" for m in range(1, 8)]
    assert [m["signed"] for m in months] == [0, 0, 1, 0, 1, 1, 0]
    assert [m["cumulative"] for m in months] == [0, 0, 1, 1, 2, 3, 3]
    # Even pace at each month's end: January 20 × 31/365 = 1.70; July 20 × 212/365 = 11.62.
    assert months[0]["expected_cumulative"] == 1.7 and months[-1]["expected_cumulative"] == 11.62


def test_city_rolls_up_its_districts(client, history):
    city = client.get("/targets/progress", params={"region": "威海市", "year": 2025, "as_of": AS_OF}).json()
    assert {"文登区", "荣成市"} <= set(city["regions_counted"])
    assert city["signed"] == 4 and city["target"] == 100  # 文登区 3 + 荣成市 1 (G)
    # Ended: A B C D G. proposed 3/5 = 0.6, contacted 3/4 = 0.75, negotiating 3/3 = 1.0.
    # Open: F, H proposed; E contacted. 4 + 2 × 0.6 + 1 × 0.75 = 5.95.
    assert city["projection"]["pipeline"]["projection"] == 5.95
    assert {b["name"]: b["open_pairings"] for b in city["breakdowns"]["broker"]} == {"张红娘": 2, "李红娘": 1, "未填写": 0}
    funnel = client.get("/pipeline/funnel", params={"region": "威海市", "year": 2025, "as_of": AS_OF}).json()
    assert funnel["cohort"]["pairings"] == 8
    district = client.get("/pipeline/funnel", params={"region": "荣成市", "year": 2025, "as_of": AS_OF}).json()
    assert district["cohort"]["pairings"] == 2 and district["regions_counted"] == ["荣成市"]


def test_funnel_counts_and_median_days(client, history):
    r = client.get("/pipeline/funnel", params={"region": "文登区", "year": 2025, "as_of": AS_OF})
    assert r.status_code == 200, r.text
    f = r.json()
    assert f["cohort"] == {"proposed_from": "2025-01-01", "proposed_to": AS_OF, "pairings": 6}
    s = {x["stage"]: x for x in f["stages"]}
    assert [s[k]["reached"] for k in ("proposed", "contacted", "negotiating", "signed")] == [6, 4, 2, 2]
    assert [s[k]["current"] for k in ("proposed", "contacted", "negotiating", "signed")] == [1, 1, 0, 2]
    # proposed → contacted 4/6, contacted → negotiating 2/4, negotiating → signed 2/2.
    assert [s[k]["conversion_to_next"] for k in ("proposed", "contacted", "negotiating")] == [0.6667, 0.5, 1.0]
    assert [s[k]["conversion_to_signed"] for k in ("proposed", "contacted", "negotiating")] == [0.3333, 0.5, 1.0]
    # Finished stays. proposed: A 10, B 10, C 20, D 10, E 14 → median 10 (F is still there).
    # contacted: A 30, C 10, D 20 → 20. negotiating: A 30, D 60 → 45.
    assert [(s[k]["median_days"], s[k]["median_days_sample"]) for k in ("proposed", "contacted", "negotiating")] == [
        (10.0, 5), (20.0, 3), (45.0, 2)]
    assert [s[k]["declined_here"] for k in ("proposed", "contacted", "negotiating")] == [1, 1, 0]
    assert f["declined"]["count"] == 2
    assert {(x["reason"], x["count"]) for x in f["declined"]["by_reason"]} == {("benefit_unclear", 1), ("price", 1)}

    # A month later F has been contacted (08-01) after 60 days in "proposed".
    later = client.get("/pipeline/funnel", params={"region": "文登区", "year": 2025, "as_of": "2025-08-31"}).json()
    s = {x["stage"]: x for x in later["stages"]}
    assert s["proposed"]["current"] == 0 and s["contacted"]["current"] == 2
    assert s["proposed"]["median_days_sample"] == 6 and s["proposed"]["median_days"] == 12.0  # 10 10 10 14 20 60


def test_period_reports_and_edges(client, history):
    period = client.get("/targets/progress", params={"region": "文登区", "period": "2024-2026", "as_of": AS_OF}).json()
    assert period["target"] is None and "尚未设定目标" in period["note"]
    assert period["signed"] == 3 and period["projection"]["run_rate"]["projected_shortfall"] is None
    assert len(period["breakdowns"]["month"]) == 19  # 2024-01 … 2025-07
    ended = client.get("/targets/progress", params={"region": "文登区", "year": 2025, "as_of": "2026-03-01"}).json()
    assert ended["projection"]["run_rate"]["projection"] == 3.0
    assert ended["projection"]["pipeline"]["projection"] == 3.0 and "期间已结束" in ended["projection"]["pipeline"]["note"]
    early = client.get("/targets/progress", params={"region": "文登区", "year": 2026, "as_of": "2025-12-31"}).json()
    assert early["signed"] == 0 and early["projection"]["run_rate"]["projection"] is None
    assert early["breakdowns"]["month"] == []


def test_dated_history_goes_through_the_stage_machine(client, ctx):
    load_small(client)
    need = by_title(client, "needs", NEEDS[0][2])["id"]
    outcome = by_title(client, "outcomes", "海马新种质创制及产业化应用")["id"]
    bad = [_steps(("proposed", (3, 1)), ("contacted", (2, 1))),
           _steps(("proposed", (3, 1)), ("signed", (4, 1), {"contract_type": "技术开发"}))]
    for steps, code in zip(bad, ["history_out_of_order", "illegal_transition"]):
        with ctx.sessions() as s:
            with pytest.raises(DomainError) as err:
                pairings.record_history(s, need, outcome, "张红娘", steps)
            s.rollback()
        assert err.value.code == code
    assert client.get("/pairings").json()["total"] == 0


def test_local_day_boundary():
    # 16:30 UTC on 30 June is 00:30 on 1 July in China: the report day is the local one.
    assert local_date(datetime(2025, 6, 30, 16, 30, tzinfo=timezone.utc)) == date(2025, 7, 1)
    assert local_date(datetime(2025, 6, 30, 15, 59)) == date(2025, 6, 30)  # naive = UTC, as SQLite returns it


@pytest.mark.parametrize("params,code", [
    ({"region": "文登区"}, "year_required"),
    ({"region": "文登区", "period": "2026-2024"}, "invalid_period"),
    ({"region": "文登区", "period": "二〇二四"}, "invalid_period"),
    ({"region": "文登区", "period": "0-1"}, "invalid_period"),
    ({"region": "文登区", "period": "2024-2026-2028"}, "invalid_period"),
    ({"region": "文登区", "year": 1999}, "invalid_input"),
    ({"region": "文登区", "year": "abc"}, "invalid_input"),
    ({"region": "文登区", "year": 2025, "as_of": "2025-02-30"}, "invalid_input"),
    ({"region": "   ", "year": 2025}, "region_required"),
    ({"year": 2025}, "invalid_input"),
])
@pytest.mark.parametrize("path", ["/targets/progress", "/targets/progress.xlsx", "/pipeline/funnel"])
def test_bad_report_parameters_are_coded_422(client, path, params, code):
    r = client.get(path, params=params)
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["code"] == code and any("\u4e00" <= ch <= "\u9fff" for ch in body["message"])


def test_unknown_format_is_refused(client):
    r = client.get("/targets/progress", params={"region": "文登区", "year": 2025, "format": "pdf"})
    assert r.status_code == 422 and r.json()["code"] == "invalid_input"


def test_parse_period_bounds():
    assert targets.parse_period(None, "2024–2026") == (2024, 2026)
    with pytest.raises(Exception) as err:
        targets.parse_period(None, "1999-2001")
    assert err.value.code == "invalid_period"
