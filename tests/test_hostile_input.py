"""Hostile input gets a clean coded 4xx and costs little: oversized and streamed bodies, long fields, disguised
files, zip bombs, odd encodings, formulas, floods of junk rows, injection strings."""
from __future__ import annotations

import codecs
import io
import select
import socket
import threading
import time
import tracemalloc
import zipfile

import pytest
from openpyxl import Workbook

from .helpers import NEED_HEADER, NEEDS, OUTCOME_HEADER, OUTCOMES, csv_bytes, upload, xlsx


def _coded(r, status: int, code: str | None = None) -> dict:
    assert r.status_code == status, r.text[:300]
    body = r.json()
    assert body["code"] and (code is None or body["code"] == code), body
    assert any("\u4e00" <= ch <= "\u9fff" for ch in body["message"]), body  # a Chinese sentence
    return body


# -- bodies -------------------------------------------------------------------
def test_announced_oversized_body_is_refused_before_reading(client):
    r = client.post("/search", content=b"x" * (1024 * 1024 + 1), headers={"content-type": "application/json"})
    _coded(r, 413, "request_too_large")


def test_chunked_body_without_length_is_counted(client):
    def chunks():
        for _ in range(40):
            yield b" " * 65536
    r = client.post("/search", content=chunks(), headers={"content-type": "application/json"})
    _coded(r, 413, "request_too_large")


@pytest.mark.parametrize("protocol", ["NoDelayHttpToolsProtocol", "NoDelayH11Protocol"])
def test_streamed_body_is_cut_off_by_a_real_server(app, accounts, protocol):
    """Over a socket, through uvicorn with either parser `matcher serve` may use: the 413 arrives mid-send."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off",
                                           http=f"api.http_protocol:{protocol}"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    auth = accounts.headers("broker")["Authorization"]
    sent, reply = 0, ""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(f"POST /search HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                         f"Authorization: {auth}\r\nTransfer-Encoding: chunked\r\n\r\n".encode())
            chunk = b"10000\r\n" + b" " * 65536 + b"\r\n"
            while sent < 64 * 1024 * 1024 and not reply:  # would be 64 MB, far past the 1 MB limit
                try:
                    sock.sendall(chunk)
                except OSError:
                    break  # the server answered and closed
                sent += 65536
                if select.select([sock], [], [], 0)[0]:
                    reply = sock.recv(65536).decode("utf-8", "replace")
            reply = reply or sock.recv(65536).decode("utf-8", "replace")
            while "request_too_large" not in reply and (more := sock.recv(65536)):
                reply += more.decode("utf-8", "replace")  # the body may follow the headers in a second read
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    assert reply.startswith("HTTP/1.1 413") and "request_too_large" in reply, reply[:200]
    print(f"streamed {sent / 1024 / 1024:.1f} MB before the 413")
    assert sent < 16 * 1024 * 1024, sent  # answered while the client was still sending


def test_deep_or_broken_json_is_a_coded_answer(client):
    # Nested past the parser's recursion limit: FastAPI cannot parse it at all.
    _coded(client.post("/search", content=b"[" * 200_000, headers={"content-type": "application/json"}), 400,
           "invalid_body")
    _coded(client.post("/search", content=b'{"text": "\xff\xfe"}', headers={"content-type": "application/json"}), 400,
           "invalid_body")
    _coded(client.post("/search", content=b'{"text": ', headers={"content-type": "application/json"}), 422,
           "invalid_input")


LONG_FIELDS = [
    ("post", "/needs", {"enterprise_id": 1, "title": "长" * 201}),
    ("post", "/needs", {"enterprise_id": 1, "title": "标题", "description": "长" * 5001}),
    ("post", "/needs", {"enterprise_id": 1, "title": "标题", "keywords": ["词"] * 31}),
    ("post", "/needs", {"enterprise_id": 1, "title": "标题", "phone": "1" * 51}),
    ("post", "/outcomes", {"institution_id": 1, "title": "标题", "abstract": "长" * 5001}),
    ("post", "/enterprises", {"name": "长" * 201}),
    ("post", "/search", {"text": "长" * 2001}),
    ("post", "/pairings", {"need_id": 1, "outcome_id": 1, "note": "长" * 2001}),
    ("post", "/pairings", {"need_id": 1, "outcome_id": 1, "explanation": {"summary": "长" * 30_000}}),
    ("post", "/targets", {"region": "长" * 101, "year_start": 2025, "year_end": 2025, "count": 1}),
    ("post", "/events", {"title": "长" * 201, "slots": ["09:00"]}),
    ("post", "/users", {"username": "u" * 51, "password": "long-enough-1", "role": "broker"}),
    ("post", "/users", {"username": "someone", "password": "p" * 129, "role": "broker"}),
    ("get", "/needs?q=" + "长" * 101, None),
    ("get", "/needs?limit=100000", None),
    ("get", "/needs/2147483648", None),
    ("get", "/targets/progress?region=" + "长" * 101 + "&year=2025", None),
]


@pytest.mark.parametrize("method,path,body", LONG_FIELDS)
def test_every_field_has_a_limit(client, method, path, body):
    r = client.request(method, path, json=body) if body is not None else client.request(method, path)
    body = _coded(r, 422, "invalid_input")
    assert body["details"] and all(d["message"] for d in body["details"])


def test_login_form_limits(accounts):
    r = accounts.client(None).post("/auth/token", data={"username": "u" * 101, "password": "x"})
    _coded(r, 422, "invalid_input")


def test_nul_characters_are_refused_on_every_backend(client):
    firm = client.post("/enterprises", json={"name": "空字符测试"}).json()["id"]
    _coded(client.post("/needs", json={"enterprise_id": firm, "title": "正常", "phone": "0631\x00"}), 422,
           "nul_character")
    _coded(client.get("/needs", params={"q": "a\x00b"}), 422, "nul_character")
    _coded(client.post("/targets", json={"region": "文登\x00区", "year_start": 2025, "year_end": 2025, "count": 1}),
           422, "nul_character")
    assert client.get("/needs").json()["total"] == 0  # nothing half-written


# -- uploads -----------------------------------------------------------------
def _zip_bomb(member_bytes: int) -> bytes:
    """A small .xlsx-looking zip whose sheet inflates to ``member_bytes`` of zeros (written in chunks)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("xl/workbook.xml", "<workbook/>")
        with z.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as f:
            block = b"\0" * (1024 * 1024)
            for _ in range(member_bytes // len(block)):
                f.write(block)
    return buf.getvalue()


def test_zip_bomb_named_xlsx_is_refused_without_inflating(client):
    bomb = _zip_bomb(150 * 1024 * 1024)
    assert len(bomb) < 1024 * 1024
    tracemalloc.start()
    try:
        r = upload(client, "outcomes", bomb, "成果清单.xlsx")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    _coded(r, 413, "xlsx_too_large_uncompressed")
    assert peak < 20 * 1024 * 1024, peak  # nothing was inflated


@pytest.mark.parametrize("data,name", [
    (b"\x89PNG\r\n\x1a\n" + b"\0" * 2000, "成果清单.xlsx"),
    (b"\x7fELF\x02\x01\x01" + bytes(range(256)) * 20, "成果清单.csv"),
    (bytes(range(256)) * 50, "list.xlsx"),
    (b"%PDF-1.7\n" + b"x" * 500, "成果.csv"),
    ("<html><table><tr><td>成果名称</td></tr></table></html>".encode(), "成果.xls"),
])
def test_files_are_judged_by_content_not_name(client, data, name):
    _coded(upload(client, "outcomes", data, name), 415, "unsupported_file_type")


def test_csv_in_unexpected_encodings(client):
    rows = [OUTCOME_HEADER, *OUTCOMES[:1]]
    # Excel's "Unicode text": UTF-16 with BOM, tab separated; and GB18030: both read.
    utf16 = codecs.BOM_UTF16_LE + "\n".join("\t".join(r) for r in rows).encode("utf-16-le")
    assert upload(client, "outcomes", utf16, "成果.txt").json()["created"] == 1
    assert upload(client, "outcomes", csv_bytes(rows, "gb18030"), "成果.csv").json()["unchanged"] == 1
    # EBCDIC and Shift-JIS cannot be read as Chinese: a coded 4xx, never a 500 or mojibake rows.
    for encoding in ("cp500", "shift_jis"):
        data = "\n".join(",".join(r) for r in [["name", "title"], ["abc", "技術"]]).encode(encoding, "replace")
        r = upload(client, "outcomes", data, "成果.csv")
        assert 400 <= r.status_code < 500 and r.json()["code"] and r.json()["message"], (encoding, r.text)


def test_formulas_are_text_and_never_evaluated(client):
    evil = ["=HYPERLINK(\"http://example.invalid\",\"点我\")", "=1+1", "+cmd|' /C calc'!A0", "@SUM(A1:A9)"]
    rows = [OUTCOME_HEADER] + [[OUTCOMES[0][0], OUTCOMES[0][1], f"公式{i}", text, "海洋生物", "中试", "技术转让", "10"]
                               for i, text in enumerate(evil)]
    assert upload(client, "outcomes", csv_bytes(rows), "公式.csv").json()["created"] == 4
    stored = {o["title"]: o["abstract"] for o in client.get("/outcomes").json()["items"]}
    assert [stored[f"公式{i}"] for i in range(4)] == evil

    wb = Workbook()
    ws = wb.active
    ws.append(OUTCOME_HEADER)
    unit, place = OUTCOMES[1][0], OUTCOMES[1][1]
    ws.append([unit, place, "公式单元格", "=1+1", "电子信息", "中试", "技术转让", "=2*5"])  # formulas, no cached values
    ws.append([unit, place, "=CONCATENATE(\"a\",\"b\")", "正文", "电子信息", "中试", "技术转让", "10"])
    ws.append([unit, place, "占位", "正文", "电子信息", "中试", "技术转让", "10"])
    ws["C4"].value, ws["C4"].data_type = "=1+2", "s"  # typed in as text: it stays text
    buf = io.BytesIO()
    wb.save(buf)
    report = upload(client, "outcomes", buf.getvalue(), "公式.xlsx", partial="true").json()
    titles = {o["title"]: o for o in client.get("/outcomes", params={"limit": 500}).json()["items"]}
    # Nothing computed 2 or 10: a formula without a cached value reads as an empty cell (so row 3 has no title).
    assert titles["公式单元格"]["abstract"] == "" and titles["公式单元格"]["price_max"] is None
    assert titles["=1+2"]["abstract"] == "正文"
    assert [row["row"] for row in report["rejected"]] == [3]


def test_twenty_thousand_rows_of_junk(client, ctx):
    junk_row = ["？？", "~~~", "", "\u200b" * 3, "不存在的产业链", "第九十九阶段", "乱写", "面议吧"]
    limit = ctx.settings.max_import_rows
    too_many = csv_bytes([OUTCOME_HEADER] + [[f"单位{i}", *junk_row[1:2], f"标题{i}", *junk_row[3:]]
                                            for i in range(limit + 1)])
    start = time.monotonic()
    _coded(upload(client, "outcomes", too_many, "junk.csv"), 413, "too_many_rows")
    assert time.monotonic() - start < 10
    # Exactly at the limit: every row checked and refused with its row number, nothing encoded or written.
    at_limit = csv_bytes([OUTCOME_HEADER] + [[f"单位{i}", *junk_row[1:2], f"标题{i}", *junk_row[3:]]
                                            for i in range(limit)])
    before = ctx.encoder.encoded_count
    r = upload(client, "outcomes", at_limit, "junk.csv")
    assert r.status_code == 422 and not r.json()["applied"]
    assert len(r.json()["rejected"]) == limit and r.json()["rejected"][-1]["row"] == limit + 1
    assert ctx.encoder.encoded_count == before
    assert client.get("/outcomes").json()["total"] == 0 and client.get("/institutions").json()["total"] == 0


def test_too_many_columns_and_long_cells(client):
    wide = csv_bytes([OUTCOME_HEADER + [f"列{i}" for i in range(80)], OUTCOMES[0] + ["x"] * 80])
    _coded(upload(client, "outcomes", wide, "wide.csv"), 413, "too_many_columns")
    long_cell = csv_bytes([OUTCOME_HEADER, [*OUTCOMES[0][:3], "长" * 5001, *OUTCOMES[0][4:]]])
    r = upload(client, "outcomes", long_cell, "long.csv")
    assert r.status_code == 422 and "超过5000字" in r.json()["rejected"][0]["reason"]


# -- injection strings -------------------------------------------------------
SQL = "Robert'); DROP TABLE needs;--"
PATH = "../../../../etc/passwd"


def test_injection_strings_round_trip_as_plain_text(client):
    firm = client.post("/enterprises", json={"name": SQL, "region": "' OR '1'='1"}).json()
    need = client.post("/needs", json={"enterprise_id": firm["id"], "title": PATH, "description": "'; DELETE FROM users; --",
                                       "keywords": ["%", "_", "\\"], "contact": "${jndi:ldap://x}"})
    assert need.status_code == 201, need.text
    got = client.get(f"/needs/{need.json()['id']}").json()
    assert (got["title"], got["enterprise"]["name"], got["keywords"]) == (PATH, SQL, ["%", "_", "\\"])
    assert got["description"] == "'; DELETE FROM users; --" and got["contact"] == "${jndi:ldap://x}"
    # LIKE wildcards typed by a user are characters, not patterns.
    client.post("/needs", json={"enterprise_id": firm["id"], "title": "普通需求"})
    assert client.get("/needs", params={"q": "%"}).json()["total"] == 0
    assert client.get("/needs", params={"q": "../"}).json()["total"] == 1
    assert client.get("/needs", params={"q": "' OR 1=1 --"}).json()["total"] == 0
    assert client.get("/enterprises", params={"q": "DROP TABLE"}).json()["total"] == 1
    # The search answers; the tables are all still there.
    assert client.post("/search", json={"text": SQL, "target": "needs", "region": "' OR '1'='1"}).status_code == 200
    assert client.get("/needs").json()["total"] == 2 and client.get("/users").json()["total"] >= 1


def test_path_tricks_in_names_and_routes(client, ctx):
    rows = [NEED_HEADER, NEEDS[0]]
    r = upload(client, "needs", xlsx(rows), name=PATH + ".xlsx")
    assert r.status_code == 200 and r.json()["filename"] == PATH + ".xlsx"
    assert not any(p.name == "passwd" for p in ctx.settings.data_dir.rglob("*"))
    assert client.get("/imports/templates/..%2F..%2Fetc%2Fpasswd").status_code in (404, 422)
    assert client.get("/needs/1;DROP TABLE needs").status_code == 422
    assert client.get("/events/1/agendas.xlsx", params={"party": PATH}).status_code in (404, 422)
