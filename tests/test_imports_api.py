"""Imports through the API: reports, all-or-nothing, idempotence, bad files."""
from __future__ import annotations

import io
import zipfile

from openpyxl import load_workbook
from sqlalchemy import func, select

from matcher import importer
from matcher.models import AuditEntry, IndexChange, Outcome

from .helpers import NEED_HEADER, NEEDS, OUTCOME_HEADER, OUTCOMES, csv_bytes, upload, xlsx


def _counts(client):
    return client.get("/outcomes").json()["total"], client.get("/needs").json()["total"]


def test_import_reports_and_reupload_changes_nothing(client):
    r = upload(client, "outcomes", xlsx([OUTCOME_HEADER, *OUTCOMES]))
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["created"], body["updated"], body["unchanged"], body["rejected"]) == (3, 0, 0, [])
    assert set(body["created_owners"]) == {"鲁东大学", "山东大学（威海）", "吉林大学威海仿生研究院"}
    again = upload(client, "outcomes", xlsx([OUTCOME_HEADER, *OUTCOMES])).json()
    assert (again["created"], again["updated"], again["unchanged"]) == (0, 0, 3)
    assert again["encoded_texts"] == 0
    assert _counts(client)[0] == 3
    assert client.get("/institutions").json()["total"] == 3


def test_unchanged_reupload_writes_nothing_at_all(client, ctx):
    """Not one audit entry, change-log row or timestamp for a file whose rows are all stored as they are."""
    upload(client, "outcomes", xlsx([OUTCOME_HEADER, *OUTCOMES]))

    def written():
        with ctx.sessions() as s:
            return (s.scalar(select(func.count()).select_from(AuditEntry)),
                    s.scalar(select(func.count()).select_from(IndexChange)),
                    sorted(s.execute(select(Outcome.id, Outcome.updated_at)).all()))

    before = written()
    assert upload(client, "outcomes", xlsx([OUTCOME_HEADER, *OUTCOMES])).json()["unchanged"] == 3
    assert written() == before


def test_stored_records_are_found_in_batches(client, monkeypatch):
    """Rows are looked up a batch at a time: by sender id first, else by title, whatever batch a row is in."""
    header = OUTCOME_HEADER + ["成果编号"]
    ids = [["LDU-001"], ["SDU-002"], [""]]
    upload(client, "outcomes", xlsx([header, *(row + i for row, i in zip(OUTCOMES, ids))]))
    monkeypatch.setattr(importer, "_LOOKUP_BATCH", 2)
    renamed = ["鲁东大学", "山东省烟台市", "海马新品种选育及产业化"] + OUTCOMES[0][3:]  # same sender id, new title
    edited = OUTCOMES[2][:3] + [OUTCOMES[2][3] + "已在威海示范推广。"] + OUTCOMES[2][4:]  # no id: by title
    body = upload(client, "outcomes", xlsx([header, renamed + ids[0], OUTCOMES[1] + ids[1], edited + ids[2]])).json()
    assert (body["created"], body["updated"], body["unchanged"]) == (0, 2, 1)
    assert client.get("/outcomes").json()["total"] == 3


def test_changed_row_is_an_update(client):
    upload(client, "outcomes", xlsx([OUTCOME_HEADER, *OUTCOMES]))
    changed = [row[:] for row in OUTCOMES]
    changed[0][3] += "已在烟台示范推广。"
    body = upload(client, "outcomes", xlsx([OUTCOME_HEADER, *changed])).json()
    assert (body["created"], body["updated"], body["unchanged"]) == (0, 1, 2)


def test_bad_row_rejects_the_whole_file_unless_partial(client):
    rows = [OUTCOME_HEADER, *OUTCOMES, ["重庆大学", "重庆市", "", "没有名称的一行", "", "", "", ""],
            ["重庆大学", "重庆市", "高强镁合金", "一种镁合金。", "", "快好了", "", ""]]
    r = upload(client, "outcomes", xlsx(rows))
    assert r.status_code == 422
    body = r.json()
    assert body["applied"] is False
    assert [x["row"] for x in body["rejected"]] == [5, 6]
    assert "成熟度" in body["rejected"][1]["reason"] or "快好了" in body["rejected"][1]["reason"]
    assert _counts(client) == (0, 0)
    assert client.get("/institutions").json()["total"] == 0
    assert client.get("/health").json()["indexed"]["outcomes"] == 0

    partial = upload(client, "outcomes", xlsx(rows), partial="true")
    assert partial.status_code == 200
    assert partial.json()["created"] == 3 and len(partial.json()["rejected"]) == 2
    assert _counts(client)[0] == 3


def test_duplicate_rows_in_one_file_are_reported(client):
    r = upload(client, "outcomes", xlsx([OUTCOME_HEADER, OUTCOMES[0], OUTCOMES[0]]))
    assert r.status_code == 422
    assert "与第2行重复" in r.json()["rejected"][0]["reason"]


def test_gbk_csv_with_aliases(client):
    header = ["需求单位", "技术需求名称", "需求描述", "所属产业链"]
    rows = [header, ["威海银泽生物科技有限公司", "海马苗种病害防控", "海马养殖中肠炎高发，需要防控方案。", "海洋生物"]]
    r = upload(client, "needs", csv_bytes(rows, "gbk"), name="需求.csv")
    assert r.status_code == 200, r.text
    need = client.get("/needs").json()["items"][0]
    assert need["title"] == "海马苗种病害防控" and need["enterprise"]["name"] == "威海银泽生物科技有限公司"


def test_dry_run_writes_nothing(client):
    r = upload(client, "needs", xlsx([NEED_HEADER, *NEEDS]), dry_run="true")
    assert r.status_code == 200 and r.json()["created"] == 2 and r.json()["applied"] is False
    assert _counts(client) == (0, 0)


def test_bad_files_get_coded_chinese_errors(client):
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 100
    cases = {
        "unsupported_file_type": upload(client, "outcomes", png, name="list.xlsx"),
        "empty_file": upload(client, "outcomes", b"", name="list.csv"),
        "unsupported_xls": upload(client, "outcomes", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 600, name="a.xls"),
        "malformed_spreadsheet": upload(client, "outcomes", xlsx([OUTCOME_HEADER, *OUTCOMES])[:900]),
        "missing_required_column": upload(client, "outcomes", xlsx([["随便", "什么"], ["a", "b"]])),
    }
    for code, r in cases.items():
        assert 400 <= r.status_code < 500, (code, r.status_code, r.text)
        assert r.json()["code"] == code, (code, r.json())
        assert any("\u4e00" <= ch <= "\u9fff" for ch in r.json()["message"])
    assert _counts(client) == (0, 0)


def test_zip_bomb_and_oversize_files(client, ctx):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("[Content_Types].xml", "<Types/>")
        zf.writestr("xl/workbook.xml", "<workbook/>")
        zf.writestr("xl/worksheets/sheet1.xml", b"\x00" * (200 * 1024 * 1024))
    r = upload(client, "outcomes", buf.getvalue())
    assert r.status_code == 413 and r.json()["code"] == "xlsx_too_large_uncompressed"
    ctx.settings.max_upload_bytes = 4_000
    big = xlsx([OUTCOME_HEADER, *OUTCOMES] * 3)
    assert len(big) > 4_000
    r = upload(client, "outcomes", big)
    assert r.status_code == 413 and r.json()["code"] in ("file_too_large", "request_too_large")


def test_templates_download_and_round_trip(client):
    r = client.get("/imports/templates/outcomes")
    assert r.status_code == 200
    wb = load_workbook(io.BytesIO(r.content))
    assert "成果名称" in [c.value.lstrip("*") for c in wb.active[1] if c.value]
    assert client.get("/imports/templates/needs", params={"format": "csv"}).content.startswith(b"\xef\xbb\xbf")
    assert client.get("/imports/templates/other").status_code == 422


def test_sender_ids_identify_rows_across_renames(client):
    header = OUTCOME_HEADER + ["成果编号"]
    rows = [header, OUTCOMES[0] + ["LDU-001"]]
    assert upload(client, "outcomes", xlsx(rows)).json()["created"] == 1
    renamed = [header, ["鲁东大学", "山东省烟台市", "海马新品种选育及产业化"] + OUTCOMES[0][3:] + ["LDU-001"]]
    body = upload(client, "outcomes", xlsx(renamed)).json()
    assert (body["created"], body["updated"]) == (0, 1)
    assert client.get("/outcomes").json()["items"][0]["title"] == "海马新品种选育及产业化"


def test_credit_code_identifies_the_enterprise(client):
    header = NEED_HEADER + ["统一社会信用代码"]
    code = "91371081000000001X"
    upload(client, "needs", xlsx([header, NEEDS[0] + [code]]))
    other_name = ["银泽生物"] + NEEDS[1][1:] + [code]
    assert upload(client, "needs", xlsx([header, other_name])).status_code == 200
    assert client.get("/enterprises").json()["total"] == 1
