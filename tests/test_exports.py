"""Excel exports opened back with openpyxl: Chinese headers, the same numbers as the JSON, no live formulas."""
from __future__ import annotations

import io
from datetime import date, datetime
from urllib.parse import unquote

import pytest
from openpyxl import load_workbook

from matcher import pairings
from matcher.clock import LOCAL_TZ
from matcher.spreadsheets import Sheet, cell_value, escape_text, sheet_title, workbook_bytes

from .helpers import by_title, load_small

DANGEROUS = ["=HYPERLINK(\"http://x\",\"点我\")", "+1+2", "-3*4", "@SUM(A1)", "\tTAB", "\rCR"]


def _book(response):
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith(
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
    return load_workbook(io.BytesIO(response.content))


def _rows(ws):
    return [list(r) for r in ws.iter_rows(values_only=True)]


@pytest.mark.parametrize("text", DANGEROUS)
def test_formula_like_text_gets_a_quote(text):
    assert escape_text(text) == "'" + text
    assert escape_text("正常文本=1") == "正常文本=1"
    assert cell_value(-3) == -3 and cell_value(None) is None and cell_value(True) == "是"


def test_workbook_never_holds_a_formula():
    body = workbook_bytes([Sheet("测试", ["文本", "数字", "日期"], [[t, 1.5, date(2025, 1, 2)] for t in DANGEROUS]
                                 + [["含控制字符\x01\x07", -2, datetime(2025, 1, 2, 9, 30)]])])
    ws = load_workbook(io.BytesIO(body)).active
    rows = _rows(ws)
    assert rows[0] == ["文本", "数字", "日期"]
    # (XML reads a stored CR back as LF; the quote in front is what matters.)
    assert [r[0] for r in rows[1:-1]] == ["'" + t.replace("\r", "\n") for t in DANGEROUS]
    assert all(ws.cell(row=i, column=1).data_type == "s" for i in range(2, len(rows) + 1))
    assert rows[-1][:2] == ["含控制字符", -2]


def test_sheet_titles_are_valid_and_unique():
    used: set[str] = set()
    names = [sheet_title(n, used) for n in ["a/b:c", "x" * 40, "x" * 40, "A/B:C"]]
    assert names[0] == "a_b_c" and len(names[1]) == 31 and names[2].endswith("(2)") and names[3] == "A_B_C(2)"


def _pairings(client):
    load_small(client)
    need = by_title(client, "needs", "海马人工繁育技术")
    out = [by_title(client, "outcomes", t) for t in ("海马新种质创制及产业化应用", "锂离子动力电池液冷散热技术")]
    made = []
    for outcome, broker in zip(out, ["=cmd|' /C calc'!A0", "张红娘"]):
        r = client.post("/pairings", json={"need_id": need["id"], "outcome_id": outcome["id"], "broker": broker,
                                           "note": "+86 0631 备注"})
        assert r.status_code == 201, r.text
        made.append(r.json())
    return made


def test_pairing_export_matches_the_list_and_escapes(client):
    made = _pairings(client)
    p = made[1]
    r = client.post(f"/pairings/{p['id']}/moves", json={"to_stage": "declined", "actor": "张红娘", "version": 1,
                                                       "decline_reason": "other", "decline_note": "-企业暂缓"})
    assert r.status_code == 200, r.text
    r = client.get("/pairings/export.xlsx")
    assert "filename*=UTF-8''" in r.headers["content-disposition"]
    assert unquote(r.headers["content-disposition"].split("''")[1]) == "对接列表.xlsx"
    ws = _book(r)["对接列表"]
    rows = _rows(ws)
    assert rows[0][:7] == ["对接编号", "阶段", "企业", "技术需求", "高校/院所", "科技成果", "经纪人"]
    body = {row[0]: dict(zip(rows[0], row)) for row in rows[1:]}
    assert set(body) == {m["id"] for m in made}
    first, second = body[made[0]["id"]], body[made[1]["id"]]
    assert first["经纪人"] == "'=cmd|' /C calc'!A0" and first["备注"] == "'+86 0631 备注"
    assert first["阶段"] == "已推荐" and second["阶段"] == "未成功"
    assert second["未成功原因"] == "其他" and second["未成功说明"] == "'-企业暂缓"
    assert isinstance(first["推荐时间"], datetime)
    assert all(c.data_type != "f" for row in ws.iter_rows() for c in row)

    # The list's filters apply: only the declined one, the same rows as GET /pairings?stage=declined.
    listed = client.get("/pairings", params={"stage": "declined"}).json()["items"]
    rows = _rows(_book(client.get("/pairings/export.xlsx", params={"stage": "declined"}))["对接列表"])
    assert [r[0] for r in rows[1:]] == [i["id"] for i in listed] == [made[1]["id"]]
    rows = _rows(_book(client.get("/pairings/export.xlsx", params={"broker": "没有这个人"}))["对接列表"])
    assert len(rows) == 1  # headers only


def test_pairing_export_past_the_row_cap_is_413(client, monkeypatch):
    from matcher import exports

    _pairings(client)
    monkeypatch.setattr(exports, "EXPORT_MAX_ROWS", 1)
    r = client.get("/pairings/export.xlsx")
    assert r.status_code == 413 and r.json()["code"] == "export_too_large" and r.json()["details"]["total"] == 2


@pytest.mark.parametrize("params,code", [
    ({"stage": "flying"}, "invalid_stage"),
    ({"need_id": 0}, "invalid_input"),
    ({"need_id": "x"}, "invalid_input"),
    ({"broker": "长" * 101}, "invalid_input"),
])
def test_pairing_export_bad_filters(client, params, code):
    r = client.get("/pairings/export.xlsx", params=params)
    assert r.status_code == 422 and r.json()["code"] == code, r.text
    assert client.get("/pairings", params=params).json()["code"] == code


def test_progress_workbook_matches_the_json(client, ctx):
    load_small(client)
    need = by_title(client, "needs", "海马人工繁育技术")
    seahorse = by_title(client, "outcomes", "海马新种质创制及产业化应用")
    cooling = by_title(client, "outcomes", "锂离子动力电池液冷散热技术")
    day = lambda m, d: datetime(2025, m, d, 10, tzinfo=LOCAL_TZ)  # noqa: E731
    with ctx.sessions() as s:
        pairings.record_history(s, need["id"], seahorse["id"], "张红娘", [
            {"stage": "proposed", "at": day(1, 6)}, {"stage": "contacted", "at": day(1, 20)},
            {"stage": "negotiating", "at": day(2, 10)},
            {"stage": "signed", "at": day(3, 10), "contract_type": "技术转让"}])
        pairings.record_history(s, need["id"], cooling["id"], "=cmd|' /C calc'!A0", [{"stage": "proposed", "at": day(4, 1)}])
        s.commit()
    r = client.post("/projects", json={"enterprise_id": need["enterprise"]["id"], "institution_id": seahorse["institution"]["id"],
                                       "title": "=1+1 海马项目", "contract_type": "技术开发", "signed_date": "2025-05-01"})
    assert r.status_code == 201, r.text
    client.post("/targets", json={"region": "文登区", "year_start": 2025, "year_end": 2025, "count": 20})
    params = {"region": "文登区", "year": 2025, "as_of": "2025-07-01"}
    report = client.get("/targets/progress", params=params).json()
    for response in (client.get("/targets/progress.xlsx", params=params),
                     client.get("/targets/progress", params={**params, "format": "xlsx"})):
        wb = _book(response)
        assert wb.sheetnames == ["汇总", "在途转化", "按产业链", "按单位", "按经纪人", "按月累计", "对接漏斗", "签约项目明细"]
        summary = {row[0]: row[1] for row in _rows(wb["汇总"])[1:]}
        assert summary["区域"] == "文登区" and summary["截至日期"] == "2025-07-01"
        assert summary["目标（项）"] == 20 and summary["已签约（项）"] == report["signed"] == 2
        assert summary["按均匀进度应达（项）"] == report["expected_by_now"] == 9.97
        # 2 ÷ (182/365) = 4.01
        assert summary["期末预测：按签约速度（项）"] == report["projection"]["run_rate"]["projection"] == 4.01
        assert summary["期末预测：按在途对接转化（项）"] == report["projection"]["pipeline"]["projection"]
        months = _rows(wb["按月累计"])
        assert months[0] == ["月份", "当月签约", "累计签约", "均匀进度累计应达"]
        assert [tuple(m) for m in months[1:]] == [
            (m["month"], m["signed"], m["cumulative"], m["expected_cumulative"]) for m in report["breakdowns"]["month"]]
        assert _rows(wb["按经纪人"])[1:] == [["张红娘", 1, 0], ["未填写", 1, 0], ["'=cmd|' /C calc'!A0", 0, 1]]
        detail = {row[1]: row for row in _rows(wb["签约项目明细"])[1:]}
        assert "'=1+1 海马项目" in detail and detail["'=1+1 海马项目"][6] == datetime(2025, 5, 1)
        funnel = {row[0]: row for row in _rows(wb["对接漏斗"])[1:]}
        assert funnel["已推荐"][1] == 2 and funnel["已签约"][1] == 1
        assert all(c.data_type != "f" for ws in wb.worksheets for row in ws.iter_rows() for c in row)
