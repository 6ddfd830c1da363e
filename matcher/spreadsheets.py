"""Writing .xlsx exports: one place for sheets, headers and formula escaping.

Every export (progress report, pairing list, event agendas) goes through
:func:`workbook_bytes`, so every text cell is escaped the same way: a cell that a
spreadsheet would read as a formula (text starting with ``=``, ``+``, ``-``,
``@``, a tab or a carriage return) gets a leading single quote and is stored as
plain text. Names and notes come from uploads and brokers; a need titled
``=HYPERLINK(...)`` must never run in the bureau's Excel.
"""
from __future__ import annotations

import io
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

from openpyxl import Workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Alignment, Font
from openpyxl.utils import get_column_letter

XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
# Excel refuses sheet names longer than 31 characters or containing these.
_SHEET_FORBIDDEN = re.compile(r"[\[\]:*?/\\]")
_SHEET_MAX = 31
_MAX_COLUMN_WIDTH = 60


def escape_text(value: str) -> str:
    """``value`` made inert: a leading quote when it could start a formula, XML-illegal characters dropped."""
    value = ILLEGAL_CHARACTERS_RE.sub("", value)
    if value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def cell_value(value: object) -> object:
    """What goes into a cell: numbers and dates as they are, text escaped, lists joined, None empty."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, (int, float, date, datetime)):
        if isinstance(value, datetime) and value.tzinfo is not None:
            # Excel has no time zones; the caller passes local time when it matters.
            value = value.replace(tzinfo=None)
        return value
    if isinstance(value, (list, tuple)):
        value = "、".join(str(v) for v in value)
    return escape_text(str(value))


@dataclass
class Sheet:
    """One worksheet: a title, a header row (Chinese) and data rows."""

    title: str
    headers: Sequence[str]
    rows: list[Sequence[object]] = field(default_factory=list)


def sheet_title(name: str, used: set[str]) -> str:
    """A valid, unique Excel sheet name for ``name`` (forbidden characters replaced, at most 31 characters)."""
    base = _SHEET_FORBIDDEN.sub("_", name).strip().strip("'") or "Sheet"
    base = base[:_SHEET_MAX]
    title, n = base, 2
    while title.lower() in {u.lower() for u in used}:
        suffix = f"({n})"
        title = base[: _SHEET_MAX - len(suffix)] + suffix
        n += 1
    used.add(title)
    return title


def _fit_widths(ws, headers: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    widths = [max(6, _display_width(h)) for h in headers]
    for row in rows:
        for i, value in enumerate(row[: len(widths)]):
            widths[i] = max(widths[i], _display_width(value))
    for i, w in enumerate(widths, start=1):
        ws.column_dimensions[get_column_letter(i)].width = min(_MAX_COLUMN_WIDTH, w + 2)


def _display_width(value: object) -> int:
    text = "" if value is None else str(value)
    # CJK characters take two columns.
    return sum(2 if ord(ch) > 0x2E80 else 1 for ch in text)


def workbook_bytes(sheets: Sequence[Sheet]) -> bytes:
    """Write ``sheets`` to an .xlsx file in memory, every text cell escaped; at least one sheet."""
    if not sheets:
        raise ValueError("a workbook needs at least one sheet")
    wb = Workbook()
    wb.remove(wb.active)
    used: set[str] = set()
    bold = Font(bold=True)
    for spec in sheets:
        ws = wb.create_sheet(sheet_title(spec.title, used))
        ws.append([cell_value(h) for h in spec.headers])
        for cell in ws[1]:
            cell.font = bold
            cell.alignment = Alignment(vertical="center")
        for row in spec.rows:
            ws.append([cell_value(v) for v in row])
        ws.freeze_panes = "A2"
        _fit_widths(ws, spec.headers, spec.rows)
        for col in range(1, len(spec.headers) + 1):
            for (cell,) in ws.iter_rows(min_row=2, min_col=col, max_col=col):
                if isinstance(cell.value, datetime):
                    cell.number_format = "yyyy-mm-dd hh:mm"
                elif isinstance(cell.value, date):
                    cell.number_format = "yyyy-mm-dd"
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()
