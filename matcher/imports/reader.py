"""Turn an uploaded .xlsx or .csv file into canonical rows, or say precisely why the file is unusable.

The format is recognised from the bytes, never from the file name: senders rename
files freely. Everything a person can fix in a single row is reported on that row
(``RawRow.problems``); only problems with the file as a whole raise ImportFileError.
"""

from __future__ import annotations

import codecs
import csv
import datetime as _dt
import io
import itertools
import warnings
import zipfile
from dataclasses import dataclass, field
from typing import Iterator

from .columns import Column, columns_for, kind_label, match_header, normalize_header
from .values import clean_prose, clean_text

__all__ = ["ImportFileError", "RawRow", "ParsedTable", "ReadLimits", "read_table"]


class ImportFileError(Exception):
    """The whole file is unusable. status is 400, 413 or 415."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status

    def __repr__(self) -> str:
        return f"ImportFileError(code={self.code!r}, status={self.status}, message={self.message!r})"


@dataclass
class RawRow:
    """One data row: the row number a person sees, cleaned non-empty values by canonical key,
    and Chinese reasons this row cannot be imported (empty when it is fine)."""

    row_number: int
    values: dict[str, str]
    problems: list[str] = field(default_factory=list)


@dataclass
class ParsedTable:
    """All data rows of a file, plus how its headers were understood."""

    kind: str
    rows: list[RawRow]
    header_map: dict[str, str]
    ignored_headers: list[str]


@dataclass(frozen=True)
class ReadLimits:
    """Upper bounds that keep one upload from exhausting the service."""

    max_bytes: int = 10 * 1024 * 1024
    max_rows: int = 20_000
    max_columns: int = 60
    max_cell_chars: int = 5_000
    max_uncompressed_bytes: int = 100 * 1024 * 1024


# openpyxl warns on ordinary files about features it drops (data-validation
# extensions, missing default styles). A targeted filter, because
# warnings.catch_warnings() is not thread-safe in a threaded server.
warnings.filterwarnings("ignore", category=UserWarning, module=r"openpyxl(\.|$)")

_XLSX_HINT = "请用 Excel 或 WPS 打开后“另存为” Excel 工作簿（.xlsx）再上传。"
# Rows above the header that may hold a title like "2025年XX大学科技成果清单".
_MAX_LEADING_ROWS = 5
# Members smaller than this cannot be a meaningful bomb; styles.xml and the like
# legitimately compress very well.
_RATIO_FLOOR_BYTES = 1024 * 1024
_MAX_RATIO = 100


def read_table(data: bytes, filename: str, kind: str, limits: ReadLimits = ReadLimits()) -> ParsedTable:
    """Read an uploaded outcome or need list.

    Returns every non-empty data row with cleaned values keyed by canonical column,
    in file order, with row numbers as the sender sees them. Raises ImportFileError
    (code, Chinese message, HTTP status) when the file as a whole cannot be used,
    and ValueError for an unknown ``kind`` (a programming error, not a file error).
    """
    columns_for(kind)
    name = _display_name(filename)
    if not data:
        raise ImportFileError("empty_file", f"{name}是空文件，没有任何内容。", 400)
    if len(data) > limits.max_bytes:
        raise ImportFileError(
            "file_too_large",
            f"{name}大小为 {_mb(len(data))}，超过上限 {_mb(limits.max_bytes)}，请拆分为多个文件后分别上传。",
            413,
        )
    if data.startswith(b"PK\x03\x04"):
        return _read_xlsx(data, name, kind, limits)
    if data.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        raise _ole_error(data, name)
    _reject_known_binary(data, name)
    return _read_csv(data, name, kind, limits)


# --------------------------------------------------------------------------- helpers


def _display_name(filename: str) -> str:
    text = clean_text(filename or "").replace("\n", " ")
    if not text:
        return "文件"
    if len(text) > 60:
        text = text[:57] + "…"
    return f"文件「{text}」"


def _mb(n: int) -> str:
    return f"{n / 1024 / 1024:.1f} MB"


def _not_a_table(name: str, detail: str = "") -> ImportFileError:
    return ImportFileError(
        "unsupported_file_type",
        f"{name}不是有效的 Excel（.xlsx）或 CSV 文件{detail}。请上传 .xlsx 或 .csv 格式的表格。",
        415,
    )


def _ole_error(data: bytes, name: str) -> ImportFileError:
    # A password-protected .xlsx is stored as an OLE2 container too; "save as
    # .xlsx" would not help there, so it gets its own message.
    if "EncryptedPackage".encode("utf-16-le") in data:
        return ImportFileError(
            "encrypted_spreadsheet",
            f"{name}设置了打开密码，无法读取。请在 Excel 中取消密码后重新上传。",
            400,
        )
    return ImportFileError(
        "unsupported_xls",
        f"{name}是旧版 Excel 97-2003（.xls）格式，暂不支持。{_XLSX_HINT}",
        415,
    )


_BINARY_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG", "（实际是 PNG 图片）"),
    (b"\xff\xd8\xff", "（实际是 JPEG 图片）"),
    (b"GIF8", "（实际是 GIF 图片）"),
    (b"%PDF", "（实际是 PDF 文档）"),
    (b"\x1f\x8b", "（实际是 gzip 压缩包）"),
    (b"Rar!", "（实际是 RAR 压缩包）"),
    (b"7z\xbc\xaf", "（实际是 7z 压缩包）"),
    (b"{\\rtf", "（实际是 RTF 文档）"),
)


def _reject_known_binary(data: bytes, name: str) -> None:
    for signature, what in _BINARY_SIGNATURES:
        if data.startswith(signature):
            raise _not_a_table(name, what)


def _trimmed_width(cells: list[str]) -> int:
    width = len(cells)
    while width and not cells[width - 1].strip():
        width -= 1
    return width


def _check_width(row_number: int, cells: list[str], limits: ReadLimits) -> None:
    width = _trimmed_width(cells)
    if width > limits.max_columns:
        raise ImportFileError(
            "too_many_columns",
            f"第{row_number}行有 {width} 列，超过上限 {limits.max_columns} 列。请删除多余的列后重新上传。",
            413,
        )


# --------------------------------------------------------------------------- xlsx


def _read_xlsx(data: bytes, name: str, kind: str, limits: ReadLimits) -> ParsedTable:
    _check_archive(data, name, limits)
    # Imported lazily: CSV-only callers should not pay for openpyxl.
    import openpyxl

    try:
        workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True, keep_links=False)
    except Exception as exc:  # openpyxl raises many types for damaged files
        raise _malformed(name) from exc
    try:
        sheets = [ws for ws in workbook.worksheets if getattr(ws, "sheet_state", "visible") == "visible"]
        sheets += [ws for ws in workbook.worksheets if ws not in sheets]
        fallback = None
        for ws in sheets:
            rows = _sheet_rows(ws, name, limits)
            located = _locate_header(rows, kind)
            if located is not None and located.has_title:
                return _tabulate(located, kind, limits)
            rows.close()
            if located is not None and fallback is None:
                fallback = ws
        if fallback is None:
            raise ImportFileError("empty_file", f"{name}中的工作表都是空的，没有任何数据。", 400)
        # No sheet has a recognisable header: report against the first non-empty one.
        located = _locate_header(_sheet_rows(fallback, name, limits), kind)
        assert located is not None
        return _tabulate(located, kind, limits)
    finally:
        workbook.close()


def _malformed(name: str) -> ImportFileError:
    return ImportFileError(
        "malformed_spreadsheet",
        f"{name}已损坏或不完整，无法作为 Excel（.xlsx）读取。{_XLSX_HINT}",
        400,
    )


def _check_archive(data: bytes, name: str, limits: ReadLimits) -> None:
    """Refuse zip bombs and non-spreadsheet zips before openpyxl inflates anything."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
    except Exception as exc:  # BadZipFile, EOFError, struct errors on truncated files
        raise _malformed(name) from exc
    total = 0
    for info in members:
        total += info.file_size
        ratio = info.file_size / max(info.compress_size, 1)
        if total > limits.max_uncompressed_bytes or (
            info.file_size > _RATIO_FLOOR_BYTES and ratio > _MAX_RATIO
        ):
            raise ImportFileError(
                "xlsx_too_large_uncompressed",
                f"{name}解压后过大（超过 {_mb(limits.max_uncompressed_bytes)} 或压缩比异常），"
                "无法安全读取。请删除无关的工作表、图片和空白格式后重新保存。",
                413,
            )
    names = {info.filename for info in members}
    if "xl/workbook.xml" not in names:
        if "word/document.xml" in names:
            raise _not_a_table(name, "（实际是 Word 文档）")
        if "ppt/presentation.xml" in names:
            raise _not_a_table(name, "（实际是 PowerPoint 文档）")
        raise _not_a_table(name, "（是压缩包而不是 Excel 表格）")


def _sheet_rows(ws, name: str, limits: ReadLimits) -> Iterator[tuple[int, list[str]]]:
    # Dimensions written by some generators are bogus ("A1:XFD1048576"); trusting
    # them would make openpyxl pad millions of empty cells.
    ws.reset_dimensions()
    rows = ws.iter_rows(values_only=True)
    row_number = 0
    while True:
        try:
            row = next(rows)
        except StopIteration:
            return
        except Exception as exc:  # damaged sheet XML surfaces only while streaming
            raise _malformed(name) from exc
        # openpyxl yields an (empty) row for every gap, so position == sheet row number.
        row_number += 1
        cells = [_cell_text(value) for value in row]
        _check_width(row_number, cells, limits)
        yield row_number, cells


def _cell_text(value: object) -> str:
    """Text of a cell as the sender saw it; formulas are never evaluated (data_only gives cached values)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, _dt.datetime):
        if value.time() == _dt.time(0, 0):
            return value.date().isoformat()
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, _dt.date):
        return value.isoformat()
    if isinstance(value, _dt.time):
        return value.strftime("%H:%M:%S" if value.second else "%H:%M")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e16:
            return str(int(value))
        # 15 significant digits is what Excel displays; avoids 0.30000000000000004.
        text = format(value, ".15g")
        if "e" in text:
            text = format(value, ".15f").rstrip("0").rstrip(".")
        return text
    return str(value)


# --------------------------------------------------------------------------- csv


def _read_csv(data: bytes, name: str, kind: str, limits: ReadLimits) -> ParsedTable:
    text = _decode(data, name)
    if not text.strip("\ufeff \t\r\n"):
        raise ImportFileError("empty_file", f"{name}中没有任何数据。", 400)
    _reject_markup(text, name)
    located = _locate_header(_csv_rows(text, name, limits), kind)
    if located is None:
        raise ImportFileError("empty_file", f"{name}中没有任何数据。", 400)
    return _tabulate(located, kind, limits)


_CJK_ENCODINGS = ("gb", "big5", "cp936", "cp950", "hz")


def _decode(data: bytes, name: str) -> str:
    """Decode CSV bytes: UTF-8 (BOM optional), then GB18030, then a CJK guess from charset-normalizer."""
    if data.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        return _decode_bom(data, "utf-32", name)
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        # Excel's "Unicode text" export is tab-separated UTF-16.
        return _decode_bom(data, "utf-16", name)
    if b"\x00" in data:
        raise _not_a_table(name)
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            if encoding == "utf-8-sig" and (damaged := _damaged_utf8(data)) is not None:
                text = damaged
            else:
                continue
        _reject_binary_text(text, name)
        return text
    guess = _guess_encoding(data)
    if guess:
        try:
            text = data.decode(guess)
        except (UnicodeDecodeError, LookupError):
            pass
        else:
            _reject_binary_text(text, name)
            return text
    raise ImportFileError(
        "unsupported_encoding",
        f"无法识别{name}的文字编码。请将 CSV 保存为 UTF-8 或 GBK（GB2312/GB18030）编码，"
        "或直接上传 Excel（.xlsx）文件。",
        400,
    )


def _damaged_utf8(data: bytes) -> str | None:
    """UTF-8 text with a few broken bytes (a file cut mid-character, one bad paste).

    GB18030 would "succeed" on such data and turn every Chinese character into
    mojibake, so a couple of replacement characters are the lesser harm.
    """
    text = data.decode("utf-8-sig", errors="replace")
    broken = text.count("\ufffd")
    non_ascii = len(text) - len(text.encode("ascii", errors="ignore"))
    # GBK read as UTF-8 breaks on ~90% of its characters; real UTF-8 damage is rare.
    if broken and broken * 10 <= non_ascii - broken:
        return text
    return None


def _decode_bom(data: bytes, encoding: str, name: str) -> str:
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError:
        raise ImportFileError(
            "unsupported_encoding",
            f"{name}声明为 UTF-16/UTF-32 编码但内容已损坏。请另存为 UTF-8 编码的 CSV 或 Excel（.xlsx）。",
            400,
        ) from None
    _reject_binary_text(text, name)
    return text


def _guess_encoding(data: bytes) -> str | None:
    from charset_normalizer import from_bytes

    best = from_bytes(data[: 256 * 1024]).best()
    if best is None:
        return None
    encoding = best.encoding.lower().replace("-", "_")
    if encoding.startswith(_CJK_ENCODINGS):
        return encoding
    return None


def _reject_binary_text(text: str, name: str) -> None:
    # GB18030 accepts most byte soup; real text has almost no C0 control characters.
    sample = text[:65536]
    controls = sum(1 for ch in sample if ch < " " and ch not in "\t\r\n\f\v")
    if controls > max(2, len(sample) // 1000):
        raise _not_a_table(name)


def _reject_markup(text: str, name: str) -> None:
    # Many web systems export an HTML or XML table and name it .xls.
    head = text.lstrip("\ufeff \t\r\n")[:4096].lower()
    if head.startswith("<") and any(tag in head for tag in ("<html", "<table", "<?xml", "<!doctype")):
        raise _not_a_table(name, "（实际是网页或 XML 格式）")


def _sniff_delimiter(text: str) -> str:
    lines = text[:65536].splitlines()[:20]
    sample = "\n".join(lines)
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t").delimiter
    except csv.Error:
        counts = {d: sample.count(d) for d in (",", "\t", ";")}
        best = max(counts, key=lambda d: counts[d])
        return best if counts[best] else ","


def _csv_rows(text: str, name: str, limits: ReadLimits) -> Iterator[tuple[int, list[str]]]:
    text = text.removeprefix("\ufeff")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_sniff_delimiter(text))
    record = 0
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise ImportFileError(
                "malformed_csv",
                f"{name}第{reader.line_num}行附近的 CSV 格式有误（引号不成对或单元格过长），"
                "请检查后重新保存，或改为上传 Excel（.xlsx）。",
                400,
            ) from exc
        # Record number, not physical line: a quoted cell may span lines but is one spreadsheet row.
        record += 1
        _check_width(record, cells, limits)
        yield record, cells


# --------------------------------------------------------------------------- header and rows


@dataclass
class _Located:
    header_row: int
    headers: list[str]              # header texts as written, by position
    keys: dict[int, str]            # position -> canonical key
    header_map: dict[str, str]
    ignored: list[str]
    rest: Iterator[tuple[int, list[str]]]

    @property
    def has_title(self) -> bool:
        return "title" in self.keys.values()


def _header_text(cell: str) -> str:
    """The header as the sender wrote it (no NFKC), minus invisible characters and line wrapping."""
    if not clean_text(cell):
        return ""
    # A header cell may be wrapped onto two lines ("成果名称\n（必填）").
    return " ".join(cell.split()).replace("\u200b", "").replace("\ufeff", "")


def _map_headers(headers: list[str], kind: str) -> tuple[dict[int, str], dict[str, str], list[str]]:
    keys: dict[int, str] = {}
    taken: set[str] = set()
    # Exact names first, so a fuzzy "专利名称" cannot take the title slot from a later "成果名称".
    for fuzzy in (False, True):
        for pos, header in enumerate(headers):
            if not header or pos in keys:
                continue
            key = match_header(header, kind, fuzzy=fuzzy)
            if key and key not in taken:
                keys[pos] = key
                taken.add(key)
    header_map: dict[str, str] = {}
    ignored: list[str] = []
    for pos, header in enumerate(headers):
        if not header:
            continue
        if pos in keys and header not in header_map:
            header_map[header] = keys[pos]
        else:
            ignored.append(header)
    return keys, header_map, ignored


def _locate_header(rows: Iterator[tuple[int, list[str]]], kind: str) -> _Located | None:
    """Find the header among the first rows; None when there are no non-empty rows at all."""
    leading: list[tuple[int, list[str]]] = []    # raw cells, still needed as data rows
    cleaned: list[list[str]] = []
    for row_number, cells in rows:
        texts = [_header_text(cell) for cell in cells]
        if any(texts):
            leading.append((row_number, cells))
            cleaned.append(texts)
            if len(leading) > _MAX_LEADING_ROWS:
                break
    if not leading:
        return None

    def build(index: int) -> _Located:
        keys, header_map, ignored = _map_headers(cleaned[index], kind)
        rest = itertools.chain(leading[index + 1:], rows)
        return _Located(leading[index][0], cleaned[index], keys, header_map, ignored, rest)

    candidates = [build(i) for i in range(len(leading))]
    for located in candidates:
        if located.has_title or len(set(located.keys.values())) >= 2:
            return located
    for located in candidates:
        if sum(1 for h in located.headers if h) >= 2:
            return located
    return candidates[0]


def _require_columns(located: _Located, kind: str) -> None:
    present = set(located.keys.values())
    missing = [c for c in columns_for(kind) if c.required and c.key not in present]
    if not missing:
        return
    parts = "；".join(_describe(c) for c in missing)
    seen = "、".join(h for h in located.headers if h)
    if len(seen) > 200:
        seen = seen[:200] + "…"
    raise ImportFileError(
        "missing_required_column",
        f"{kind_label(kind)}表缺少必需的列：{parts}。"
        f"识别到的表头在第{located.header_row}行：{seen or '（无）'}。请参照导入模板修改表头后重新上传。",
        400,
    )


def _describe(column: Column) -> str:
    if column.aliases:
        return f"「{column.header}」（也可写作：{'、'.join(column.aliases)}）"
    return f"「{column.header}」"


def _is_header_repeat(cells: list[str], located: _Located) -> bool:
    for pos in located.keys:
        cell = cells[pos] if pos < len(cells) else ""
        if normalize_header(cell) != normalize_header(located.headers[pos]):
            return False
    return True


def _tabulate(located: _Located, kind: str, limits: ReadLimits) -> ParsedTable:
    _require_columns(located, kind)
    rows: list[RawRow] = []
    for row_number, cells in located.rest:
        values: dict[str, str] = {}
        problems: list[str] = []
        for pos, key in located.keys.items():
            if pos >= len(cells):
                continue
            text = clean_prose(cells[pos])
            if not text:
                continue
            if len(text) > limits.max_cell_chars:
                problems.append(
                    f"「{located.headers[pos]}」超过{limits.max_cell_chars}字（共{len(text)}字），请精简后重新导入"
                )
                continue
            values[key] = text
        # Rows with nothing in any recognised column (blank, or only a 序号) are not data.
        if not values and not problems:
            continue
        if _is_header_repeat(cells, located):
            continue
        if len(rows) >= limits.max_rows:
            raise ImportFileError(
                "too_many_rows",
                f"数据超过 {limits.max_rows} 行的上限，请拆分为多个文件后分别上传。",
                413,
            )
        rows.append(RawRow(row_number, values, problems))
    return ParsedTable(kind, rows, located.header_map, located.ignored)
