"""File answers: the bytes, the media type and a Chinese file name browsers understand."""
from __future__ import annotations

from urllib.parse import quote

from fastapi.responses import Response

from matcher.spreadsheets import XLSX_MEDIA_TYPE

XLSX_RESPONSES = {200: {"content": {XLSX_MEDIA_TYPE: {}}, "description": "Excel 文件（.xlsx）"}}


def attachment(body: bytes, name: str, media_type: str, ascii_name: str) -> Response:
    """``body`` as a download named ``name`` (RFC 5987 for the Chinese name, ``ascii_name`` for old clients)."""
    disposition = f"attachment; filename={ascii_name}; filename*=UTF-8''{quote(name)}"
    return Response(body, media_type=media_type, headers={"Content-Disposition": disposition})


def xlsx_response(body: bytes, name: str, ascii_name: str = "export.xlsx") -> Response:
    """An .xlsx download; ``name`` is the Chinese file name including ``.xlsx``."""
    return attachment(body, name, XLSX_MEDIA_TYPE, ascii_name)
