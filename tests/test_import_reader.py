"""Tests for matcher.imports: reading uploaded xlsx/csv lists, templates and value parsers."""

from __future__ import annotations

import csv
import datetime as dt
import io
import zipfile

import pytest
from openpyxl import Workbook

from matcher.imports.columns import NEED_COLUMNS, OUTCOME_COLUMNS, columns_for, match_header
from matcher.imports.reader import ImportFileError, ReadLimits, read_table
from matcher.imports.templates import EXAMPLE_ROWS, template_csv, template_xlsx
from matcher.imports.values import (
    clean_prose,
    clean_text,
    normalize_title,
    parse_date,
    parse_maturity,
    parse_modes,
    parse_money_range,
    parse_visibility,
    split_keywords,
)

# --------------------------------------------------------------------------- builders


def make_xlsx(*sheets: list[list[object]], titles: tuple[str, ...] = ()) -> bytes:
    """One worksheet per argument; None leaves a cell (or a whole row, if the row is None) empty."""
    wb = Workbook()
    wb.remove(wb.active)
    for index, rows in enumerate(sheets):
        ws = wb.create_sheet(titles[index] if index < len(titles) else f"Sheet{index + 1}")
        for r, row in enumerate(rows, start=1):
            for c, value in enumerate(row or [], start=1):
                if value is not None:
                    ws.cell(row=r, column=c, value=value)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def make_csv(rows: list[list[str]], encoding: str = "utf-8", delimiter: str = ",") -> bytes:
    buf = io.StringIO()
    csv.writer(buf, delimiter=delimiter, lineterminator="\r\n").writerows(rows)
    return buf.getvalue().encode(encoding)


OUTCOME_HEADER = ["成果名称", "单位名称", "成果简介"]
NEED_HEADER = ["需求名称", "企业名称", "需求内容"]


def file_error(data: bytes, filename: str = "f.xlsx", kind: str = "outcomes", **limits) -> ImportFileError:
    with pytest.raises(ImportFileError) as info:
        read_table(data, filename, kind, ReadLimits(**limits) if limits else ReadLimits())
    err = info.value
    assert err.message and err.code and err.status in (400, 413, 415)
    return err


# --------------------------------------------------------------------------- columns


def test_columns_for_kinds():
    assert columns_for("outcomes") is OUTCOME_COLUMNS
    assert columns_for("needs") is NEED_COLUMNS
    with pytest.raises(ValueError):
        columns_for("patents")
    for columns in (OUTCOME_COLUMNS, NEED_COLUMNS):
        keys = [c.key for c in columns]
        assert len(keys) == len(set(keys))
        assert {c.key for c in columns if c.required} <= {"title", "institution", "enterprise"}
        assert all(c.help for c in columns)


@pytest.mark.parametrize(
    "header, kind, key",
    [
        ("项目名称", "outcomes", "title"),
        ("*成果名称", "outcomes", "title"),
        ("成果名称（必填）", "outcomes", "title"),
        ("成果名称(必填)", "outcomes", "title"),
        ("成果名称*", "outcomes", "title"),
        (" 成果 名称 \n", "outcomes", "title"),
        ("成果简介（300字以内）", "outcomes", "abstract"),
        ("意向价格(万元)", "outcomes", "asking_price"),
        ("参考价格（万元）", "outcomes", "asking_price"),
        ("高校/院所", "outcomes", "institution"),
        ("TRL技术成熟度", "outcomes", "maturity"),
        ("联系人电话", "outcomes", "phone"),
        ("单位名称", "needs", "enterprise"),
        ("拟投入资金（万元）", "needs", "budget"),
        ("所属镇街", "needs", "region"),
        ("序号", "outcomes", None),
        ("", "outcomes", None),
    ],
)
def test_match_header(header, kind, key):
    assert match_header(header, kind) == key


# --------------------------------------------------------------------------- headers


def test_outcome_alias_headers_xlsx():
    data = make_xlsx([
        ["序号", "项目名称", "完成单位", "内容简介", "技术领域", "转化方式", "价格（万元）", "备注"],
        [1, "海马新种质创制", "鲁东大学", "选育新品系", "海洋生物", "技术转让", "面议", "x"],
    ])
    table = read_table(data, "成果.xlsx", "outcomes")
    assert table.kind == "outcomes"
    assert table.header_map == {
        "项目名称": "title", "完成单位": "institution", "内容简介": "abstract", "技术领域": "field",
        "转化方式": "cooperation_modes", "价格（万元）": "asking_price",
    }
    assert table.ignored_headers == ["序号", "备注"]
    assert [r.row_number for r in table.rows] == [2]
    assert table.rows[0].values == {
        "title": "海马新种质创制", "institution": "鲁东大学", "abstract": "选育新品系",
        "field": "海洋生物", "cooperation_modes": "技术转让", "asking_price": "面议",
    }


def test_need_alias_headers_csv():
    data = make_csv([
        ["需求单位", "技术需求名称", "需求描述", "拟投入资金（万元）", "期望完成时间", "是否公开", "镇街"],
        ["银泽生物", "海马养殖病害防控", "需要快速检测方法", "50-100", "2026年12月", "否", "文登区"],
    ])
    table = read_table(data, "needs.csv", "needs")
    assert set(table.header_map.values()) == {
        "enterprise", "title", "description", "budget", "deadline", "visibility", "region"}
    assert table.ignored_headers == []
    assert table.rows[0].row_number == 2
    assert table.rows[0].values["budget"] == "50-100"
    assert table.rows[0].values["visibility"] == "否"


def test_required_marks_and_fuzzy_headers():
    data = make_xlsx([
        ["*成果名称", "单位名称（必填）", "成果简介(300字以内)", "＊关键词"],
        ["A", "B", "C", "D"],
    ])
    table = read_table(data, "x.xlsx", "outcomes")
    assert table.rows[0].values == {"title": "A", "institution": "B", "abstract": "C", "keywords": "D"}
    assert table.ignored_headers == []


def test_duplicate_key_first_wins_and_exact_beats_fuzzy():
    data = make_csv([
        ["专利名称", "成果名称", "项目名称", "单位名称"],
        ["一种装置", "真正的标题", "重复列", "吉林大学"],
    ])
    table = read_table(data, "x.csv", "outcomes")
    assert table.rows[0].values["title"] == "真正的标题"
    assert table.header_map["成果名称"] == "title"
    assert table.ignored_headers == ["专利名称", "项目名称"]


@pytest.mark.parametrize("fmt", ["xlsx", "csv"])
def test_header_below_title_rows(fmt):
    rows = [
        ["2025年XX大学科技成果清单"],
        None,
        ["填报日期：2025-06-01"],
        OUTCOME_HEADER,
        ["成果一", "吉林大学", "简介一"],
        ["成果二", "重庆大学", "简介二"],
    ]
    if fmt == "xlsx":
        data = make_xlsx(rows)
    else:
        data = make_csv([r or [] for r in rows])
    table = read_table(data, f"x.{fmt}", "outcomes")
    assert [r.row_number for r in table.rows] == [5, 6]
    assert table.rows[0].values["title"] == "成果一"


def test_single_title_row_gives_row_number_three():
    data = make_xlsx([["2025年XX大学科技成果清单"], OUTCOME_HEADER, ["成果一", "吉林大学", "简介"]])
    assert read_table(data, "x.xlsx", "outcomes").rows[0].row_number == 3


def test_title_row_with_two_cells_is_still_skipped():
    data = make_csv([["2025年成果清单", "填报单位：XX大学"], OUTCOME_HEADER, ["成果一", "吉林大学", "简介"]])
    table = read_table(data, "x.csv", "outcomes")
    assert table.rows[0].row_number == 3
    assert table.rows[0].values["institution"] == "吉林大学"


def test_missing_title_column():
    data = make_xlsx([["单位名称", "成果简介"], ["吉林大学", "简介"]])
    err = file_error(data)
    assert (err.code, err.status) == ("missing_required_column", 400)
    assert "成果名称" in err.message and "项目名称" in err.message


def test_missing_owner_column_for_needs():
    err = file_error(make_csv([["需求名称", "需求内容"], ["a", "b"]]), "n.csv", "needs")
    assert err.code == "missing_required_column"
    assert "企业名称" in err.message and "成果名称" not in err.message


def test_description_column_not_required():
    table = read_table(make_csv([["需求名称", "企业名称"], ["需求：开发一种装置", "正大环保"]]), "n.csv", "needs")
    assert table.rows[0].values == {"title": "需求：开发一种装置", "enterprise": "正大环保"}


# --------------------------------------------------------------------------- csv encodings


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gb18030", "gbk", "gb2312", "utf-16"])
def test_csv_encodings(encoding):
    data = make_csv([NEED_HEADER, ["污水处理新工艺", "正大环保", "降低能耗"]], encoding=encoding)
    table = read_table(data, "x.txt", "needs")
    assert table.rows[0].values == {"title": "污水处理新工艺", "enterprise": "正大环保", "description": "降低能耗"}
    assert table.header_map["需求名称"] == "title"


@pytest.mark.parametrize("delimiter", ["\t", ";", ","])
def test_csv_delimiters(delimiter):
    data = make_csv([OUTCOME_HEADER + ["关键词"], ["成果一", "吉林大学", "含有,逗号；和分号", "a、b"]],
                    delimiter=delimiter)
    table = read_table(data, "x.csv", "outcomes")
    assert table.rows[0].values["abstract"] == "含有,逗号；和分号"
    assert table.rows[0].values["keywords"] == "a、b"


def test_csv_with_quoted_multiline_cell_counts_records():
    data = make_csv([OUTCOME_HEADER, ["成果一", "吉林大学", "第一段\n\n第二段"], ["成果二", "重庆大学", "x"]])
    table = read_table(data, "x.csv", "outcomes")
    assert [r.row_number for r in table.rows] == [2, 3]
    assert table.rows[0].values["abstract"] == "第一段\n第二段"


def test_damaged_utf8_is_not_read_as_gb18030():
    data = make_csv([NEED_HEADER] + [["污水处理新工艺", "正大环保", "降低能耗"]] * 5)
    table = read_table(data[:-4], "x.csv", "needs")   # cut inside the last character
    assert table.rows[0].values["title"] == "污水处理新工艺"
    assert len(table.rows) == 5


def test_unsupported_encoding():
    data = "name,city\ncafé,naïve Zürich\n".encode("latin-1")
    err = file_error(data, "x.csv")
    assert (err.code, err.status) == ("unsupported_encoding", 400)
    assert "UTF-8" in err.message and "GBK" in err.message


# --------------------------------------------------------------------------- cleaning and rows


def test_full_width_and_whitespace_cleaned():
    data = make_xlsx([
        OUTCOME_HEADER + ["联系电话"],
        ["\u3000ＡＩ视觉检测\u00a0 系统  ", " 山东大学（威海）\u200b", "第一行\t\t说明 \n\n  第二行 ", "１３８００００００００"],
    ])
    values = read_table(data, "x.xlsx", "outcomes").rows[0].values
    assert values == {
        "title": "AI视觉检测 系统",
        "institution": "山东大学（威海）",
        "abstract": "第一行 说明\n第二行",
        "phone": "13800000000",
    }


def test_empty_rows_skipped_and_row_numbers():
    data = make_xlsx([
        OUTCOME_HEADER + ["序号"],
        ["成果一", "吉林大学", "a", 1],
        None,
        ["  ", None, "\u3000", 2],          # only whitespace and a 序号: not data
        ["成果二", "重庆大学", "b", 3],
    ])
    table = read_table(data, "x.xlsx", "outcomes")
    assert [(r.row_number, r.values["title"]) for r in table.rows] == [(2, "成果一"), (5, "成果二")]


def test_repeated_header_row_skipped():
    data = make_csv([OUTCOME_HEADER, ["成果一", "吉林大学", "a"], ["*成果名称", "单位名称", "成果简介"], ["成果二", "重庆大学", "b"]])
    table = read_table(data, "x.csv", "outcomes")
    assert [r.row_number for r in table.rows] == [2, 4]


def test_cell_types_converted_to_text():
    data = make_xlsx([
        NEED_HEADER + ["截止日期", "预算（万元）", "联系电话", "是否公开", "需求编号"],
        ["a", "b", "c", dt.datetime(2026, 12, 31), 50.0, 13800000000, True, 0.1 + 0.2],
        ["a2", "b2", "c2", dt.date(2027, 1, 5), 12.5, "0631-1234567", False, 7],
    ])
    rows = read_table(data, "x.xlsx", "needs").rows
    assert rows[0].values["deadline"] == "2026-12-31"
    assert rows[0].values["budget"] == "50"
    assert rows[0].values["phone"] == "13800000000"
    assert rows[0].values["visibility"] == "是"
    assert rows[0].values["external_id"] == "0.3"
    assert rows[1].values["deadline"] == "2027-01-05"
    assert rows[1].values["budget"] == "12.5"
    assert rows[1].values["visibility"] == "否"


def test_formula_looking_text_is_kept_as_text():
    wb = Workbook()
    ws = wb.active
    ws.append(OUTCOME_HEADER)
    ws.append(["成果一", "吉林大学", "x"])
    cell = ws.cell(row=2, column=3)
    cell.value = "=1+1"
    cell.data_type = "s"   # a literal string, as typed with a leading apostrophe
    buf = io.BytesIO()
    wb.save(buf)
    table = read_table(buf.getvalue(), "x.xlsx", "outcomes")
    assert table.rows[0].values["abstract"] == "=1+1"

    table = read_table(make_csv([OUTCOME_HEADER, ["=1+1", "=SUM(A1:A2)", "x"]]), "x.csv", "outcomes")
    assert table.rows[0].values["title"] == "=1+1"
    assert table.rows[0].values["institution"] == "=SUM(A1:A2)"


def test_first_non_empty_sheet_is_used():
    data = make_xlsx([], [OUTCOME_HEADER, ["成果一", "吉林大学", "a"]], titles=("空表", "成果"))
    table = read_table(data, "x.xlsx", "outcomes")
    assert table.rows[0].values["title"] == "成果一"


def test_instruction_sheet_before_data_sheet():
    data = make_xlsx([["填写说明：请按下表填写"], ["每行一项成果"]], [OUTCOME_HEADER, ["成果一", "吉林大学", "a"]])
    assert read_table(data, "x.xlsx", "outcomes").rows[0].row_number == 2


def test_over_long_cell_is_a_row_problem():
    long_text = "长" * 21
    data = make_csv([OUTCOME_HEADER, ["成果一", "吉林大学", long_text], ["成果二", "重庆大学", "短"]])
    table = read_table(data, "x.csv", "outcomes", ReadLimits(max_cell_chars=20))
    first, second = table.rows
    assert first.row_number == 2 and first.values["title"] == "成果一"
    assert "abstract" not in first.values
    assert len(first.problems) == 1 and "成果简介" in first.problems[0] and "20" in first.problems[0]
    assert second.problems == []


def test_header_only_file_has_no_rows():
    table = read_table(make_csv([OUTCOME_HEADER]), "x.csv", "outcomes")
    assert table.rows == [] and table.header_map


# --------------------------------------------------------------------------- file-level errors


def test_empty_and_too_large_files():
    assert file_error(b"").code == "empty_file"
    assert file_error(b" \r\n\r\n", "x.csv").code == "empty_file"
    assert file_error(make_xlsx([[]])).code == "empty_file"
    err = file_error(make_csv([OUTCOME_HEADER]), "x.csv", max_bytes=10)
    assert (err.code, err.status) == ("file_too_large", 413)


def test_png_renamed_to_xlsx():
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
    err = file_error(png, "成果.xlsx")
    assert (err.code, err.status) == ("unsupported_file_type", 415)
    assert "xlsx" in err.message


def test_binary_junk_is_not_csv():
    junk = bytes(range(256)) * 4
    assert file_error(junk, "x.csv").code == "unsupported_file_type"
    assert file_error(b"\x01\x02\x03\x04abc\x05\x06\x07\x08" * 50, "x.csv").code == "unsupported_file_type"


def test_html_disguised_as_xls():
    html = "<html><body><table><tr><td>成果名称</td><td>单位名称</td></tr></table></body></html>".encode()
    assert file_error(html, "导出.xls").code == "unsupported_file_type"


def test_docx_is_not_a_spreadsheet():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("word/document.xml", "<w:document/>")
    err = file_error(buf.getvalue())
    assert err.code == "unsupported_file_type" and "Word" in err.message


def test_old_xls_signature():
    data = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 504
    err = file_error(data, "成果.xls")
    assert (err.code, err.status) == ("unsupported_xls", 415)
    assert ".xlsx" in err.message


def test_password_protected_xlsx():
    data = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100 + "EncryptedPackage".encode("utf-16-le")
    err = file_error(data, "成果.xlsx")
    assert err.code == "encrypted_spreadsheet" and "密码" in err.message


def test_zip_bomb_disguised_as_xlsx():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("[Content_Types].xml", "<Types/>")
        zf.writestr("xl/workbook.xml", b"\x00" * (8 * 1024 * 1024))
    data = buf.getvalue()
    assert len(data) < 100_000
    err = file_error(data, "bomb.xlsx")
    assert (err.code, err.status) == ("xlsx_too_large_uncompressed", 413)


def test_uncompressed_total_limit():
    data = template_xlsx("outcomes")
    assert file_error(data, max_uncompressed_bytes=1000).code == "xlsx_too_large_uncompressed"


def test_truncated_xlsx():
    data = template_xlsx("outcomes")
    err = file_error(data[: len(data) // 2])
    assert (err.code, err.status) == ("malformed_spreadsheet", 400)


def test_corrupt_member_in_valid_zip():
    buf = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(template_xlsx("outcomes"))) as src, zipfile.ZipFile(buf, "w") as dst:
        for info in src.infolist():
            body = src.read(info.filename)
            if info.filename.startswith("xl/worksheets/"):
                body = body[: len(body) // 2]
            dst.writestr(info.filename, body)
    assert file_error(buf.getvalue()).code == "malformed_spreadsheet"


@pytest.mark.parametrize("fmt", ["xlsx", "csv"])
def test_too_many_rows(fmt):
    rows = [OUTCOME_HEADER] + [[f"成果{i}", "吉林大学", "x"] for i in range(6)]
    data = make_xlsx(rows) if fmt == "xlsx" else make_csv(rows)
    assert len(read_table(data, "x", "outcomes", ReadLimits(max_rows=6)).rows) == 6
    err = file_error(data, "x", max_rows=5)
    assert (err.code, err.status) == ("too_many_rows", 413)


@pytest.mark.parametrize("fmt", ["xlsx", "csv"])
def test_too_many_columns(fmt):
    rows = [OUTCOME_HEADER + [f"c{i}" for i in range(5)], ["a", "b", "c", "1", "2", "3", "4", "5"]]
    data = make_xlsx(rows) if fmt == "xlsx" else make_csv(rows)
    err = file_error(data, "x", max_columns=6)
    assert (err.code, err.status) == ("too_many_columns", 413)
    # Trailing empty cells (Excel's ",,,,") do not count.
    ok = make_csv([OUTCOME_HEADER + [""] * 10, ["a", "b", "c"] + [""] * 10])
    assert len(read_table(ok, "x.csv", "outcomes", ReadLimits(max_columns=6)).rows) == 1


def test_unknown_kind_is_a_value_error():
    with pytest.raises(ValueError):
        read_table(make_csv([OUTCOME_HEADER]), "x.csv", "patents")


def test_malformed_csv_field_too_large():
    data = ("成果名称,单位名称\n" + '"' + "长" * 200_000 + '",大学\n').encode()
    err = file_error(data, "x.csv")
    assert (err.code, err.status) == ("malformed_csv", 400)


# --------------------------------------------------------------------------- templates


@pytest.mark.parametrize("kind", ["outcomes", "needs"])
def test_template_xlsx_round_trip(kind):
    table = read_table(template_xlsx(kind), "t.xlsx", kind)
    columns = columns_for(kind)
    assert sorted(table.header_map.values()) == sorted(c.key for c in columns)
    assert table.ignored_headers == []
    assert len(table.rows) == 1 and table.rows[0].row_number == 2
    expected = {k: clean_prose(v.isoformat() if isinstance(v, dt.date) else v) for k, v in EXAMPLE_ROWS[kind].items()}
    assert table.rows[0].values == expected
    assert table.rows[0].problems == []


@pytest.mark.parametrize("kind", ["outcomes", "needs"])
def test_template_xlsx_layout(kind):
    from openpyxl import load_workbook

    wb = load_workbook(io.BytesIO(template_xlsx(kind)))
    sheet, help_sheet = wb.worksheets
    headers = [c.value for c in sheet[1]]
    columns = columns_for(kind)
    assert headers == [("*" if c.required else "") + c.header for c in columns]
    assert all(c.font.bold for c in sheet[1])
    assert help_sheet.title == "填写说明"
    assert help_sheet.max_row == len(columns) + 1
    assert [r[1] for r in help_sheet.iter_rows(min_row=2, values_only=True)] == [
        "是" if c.required else "否" for c in columns]


@pytest.mark.parametrize("kind", ["outcomes", "needs"])
def test_template_csv_round_trip(kind):
    data = template_csv(kind)
    assert data.startswith(b"\xef\xbb\xbf")
    assert b"*" not in data.splitlines()[0]
    table = read_table(data, "t.csv", kind)
    assert len(table.header_map) == len(columns_for(kind))
    xlsx_row = read_table(template_xlsx(kind), "t.xlsx", kind).rows[0]
    assert table.rows[0] == xlsx_row


@pytest.mark.parametrize("kind", ["outcomes", "needs"])
def test_template_example_values_parse(kind):
    values = read_table(template_csv(kind), "t.csv", kind).rows[0].values
    parse_modes(values["cooperation_modes"])
    if kind == "outcomes":
        parse_maturity(values["maturity"])
        parse_money_range(values["asking_price"])
    else:
        parse_money_range(values["budget"])
        parse_date(values["deadline"])
        parse_visibility(values["visibility"])


# --------------------------------------------------------------------------- values


def test_clean_text():
    assert clean_text(None) == ""
    assert clean_text("  ＡＢＣ　１２３ ") == "ABC 123"
    assert clean_text("a\u200bb\ufeffc\x07d") == "abcd"
    assert clean_text("x\r\n\r\n  y  \n\t\n z") == "x\ny\nz"
    assert clean_text("温度 ２５℃，湿度；") == "温度 25°C,湿度;"
    assert clean_text("精度10⁻⁶，体积5m³") == "精度10⁻⁶,体积5m³"


def test_normalize_title():
    assert normalize_title("《一种 高效-污水处理 方法》（改进版）") == normalize_title("一种高效污水处理方法(改进版)")
    assert normalize_title(" AI 视觉，检测。") == "ai视觉检测"


@pytest.mark.parametrize(
    "text, expected",
    [
        ("50", (50, 50, False)),
        ("50-100", (50, 100, False)),
        ("50～100", (50, 100, False)),
        ("50~100", (50, 100, False)),
        ("50至100万元", (50, 100, False)),
        ("50万-100万元", (50, 100, False)),
        ("面议", (None, None, True)),
        ("协商", (None, None, True)),
        ("10万元", (10, 10, False)),
        ("100000元", (10, 10, False)),
        ("1,000,000元", (100, 100, False)),
        ("１．５亿元", (15000, 15000, False)),
        ("约30万元", (30, 30, False)),
        ("50（可面议）", (50, 50, True)),
        ("100万以上", (100, None, False)),
        ("不超过30万", (None, 30, False)),
        ("", (None, None, False)),
    ],
)
def test_parse_money_range(text, expected):
    assert parse_money_range(text) == expected


@pytest.mark.parametrize("text", ["很多", "100-50", "50-", "五十万", "abc万元"])
def test_parse_money_range_rejects(text):
    with pytest.raises(ValueError, match="金额"):
        parse_money_range(text)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("中试", (None, "中试")),
        ("中试阶段", (None, "中试")),
        ("TRL6", (6, "中试")),
        ("trl 3", (3, "实验室")),
        ("6", (6, "中试")),
        ("９", (9, "产业化")),
        ("小试成功", (None, "小试")),
        ("已产业化", (None, "产业化")),
        ("产业化应用", (None, "产业化")),
        ("实验室阶段", (None, "实验室")),
        ("研发阶段", (None, "实验室")),
        ("已完成小试，正在中试", (None, "中试")),
        ("", (None, None)),
    ],
)
def test_parse_maturity(text, expected):
    assert parse_maturity(text) == expected


@pytest.mark.parametrize("text", ["很成熟", "TRL10", "0", "优秀"])
def test_parse_maturity_rejects(text):
    with pytest.raises(ValueError, match="成熟度"):
        parse_maturity(text)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("技术开发、技术转让", ["技术开发", "技术转让"]),
        ("委托开发,合作开发；专利许可", ["技术开发", "技术许可"]),
        ("成果转让/技术入股 共建实验室", ["技术转让", "作价投资入股", "共建研发平台"]),
        ("咨询，服务", ["技术咨询", "技术服务"]),
        ("作价入股；许可使用；共建研发中心", ["作价投资入股", "技术许可", "共建研发平台"]),
        ("技术转让、其他", ["技术转让"]),
        ("", []),
    ],
)
def test_parse_modes(text, expected):
    assert parse_modes(text) == expected


def test_parse_modes_rejects_unknown_item_by_name():
    with pytest.raises(ValueError, match="众筹"):
        parse_modes("技术转让、众筹")


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2026-12-31", dt.date(2026, 12, 31)),
        ("2026/12/31", dt.date(2026, 12, 31)),
        ("2026.12.31", dt.date(2026, 12, 31)),
        ("2026年12月31日", dt.date(2026, 12, 31)),
        ("2026年12月31号", dt.date(2026, 12, 31)),
        ("2026年2月", dt.date(2026, 2, 28)),
        ("2026-12", dt.date(2026, 12, 31)),
        ("２０２６－０６－３０", dt.date(2026, 6, 30)),
        ("2026-12-31 00:00:00", dt.date(2026, 12, 31)),
        ("2026年底", dt.date(2026, 12, 31)),
    ],
)
def test_parse_date(text, expected):
    assert parse_date(text) == expected


@pytest.mark.parametrize("text", ["", "明年", "2026-13-01", "2026-02-30", "31/12/2026"])
def test_parse_date_rejects(text):
    with pytest.raises(ValueError, match="日期"):
        parse_date(text)


def test_split_keywords():
    assert split_keywords("激光加工、仿生，耐磨;抗疲劳/AI|ai  仿生") == ["激光加工", "仿生", "耐磨", "抗疲劳", "AI"]
    assert split_keywords("  ") == []


@pytest.mark.parametrize(
    "text, expected",
    [("公开", "public"), ("是", "public"), ("Public", "public"),
     ("仅经纪人可见", "brokers"), ("不公开", "brokers"), ("否", "brokers"), ("保密", "brokers"),
     ("brokers", "brokers")],
)
def test_parse_visibility(text, expected):
    assert parse_visibility(text) == expected


@pytest.mark.parametrize("text", ["", "看情况"])
def test_parse_visibility_rejects(text):
    with pytest.raises(ValueError, match="公开"):
        parse_visibility(text)
