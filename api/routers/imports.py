"""Uploading outcome and need lists (.xlsx / .csv), and their templates."""
from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, File, Query, UploadFile
from fastapi.responses import JSONResponse, Response

from matcher import importer
from matcher.errors import DomainError
from matcher.imports.templates import template_csv, template_xlsx
from matcher.spreadsheets import XLSX_MEDIA_TYPE

from ..deps import DB, Ctx
from ..downloads import attachment
from ..schemas import ErrorOut, ImportReportOut

router = APIRouter(tags=["导入"])
_CHUNK = 1024 * 1024


async def _read_limited(upload: UploadFile, limit: int) -> bytes:
    """Read the upload, refusing it as soon as it passes ``limit`` bytes."""
    parts, size = [], 0
    while chunk := await upload.read(_CHUNK):
        size += len(chunk)
        if size > limit:
            raise DomainError("file_too_large", f"文件超过 {limit // (1024 * 1024)} MB 上限", status=413)
        parts.append(chunk)
    return b"".join(parts)


def _run(kind: str, data: bytes, filename: str, partial: bool, dry_run: bool, ctx, db):
    report = importer.import_file(ctx, db, data, filename, kind, partial=partial, dry_run=dry_run).as_dict()
    status = 422 if report["rejected"] and not report["applied"] and not dry_run else 200
    return JSONResponse(ImportReportOut(**report).model_dump(), status_code=status)


_DOC = ("上传 .xlsx 或 .csv（UTF-8 或 GBK/GB18030），表头可用常见别名。任何一行有误则整个文件不导入（422，报告列出行号和原因），"
        "除非 partial=true；dry_run=true 只校验不写入。重复上传同一清单不会产生重复记录。")


@router.post("/imports/outcomes", response_model=ImportReportOut, summary="导入高校科技成果清单", description=_DOC,
             responses={422: {"model": ImportReportOut}, 400: {"model": ErrorOut}, 413: {"model": ErrorOut},
                        415: {"model": ErrorOut}})
async def import_outcomes(ctx: Ctx, db: DB, file: UploadFile = File(...), partial: bool = Query(False),
                          dry_run: bool = Query(False)):
    data = await _read_limited(file, ctx.settings.max_upload_bytes)
    return _run("outcomes", data, file.filename or "upload", partial, dry_run, ctx, db)


@router.post("/imports/needs", response_model=ImportReportOut, summary="导入企业技术需求清单", description=_DOC,
             responses={422: {"model": ImportReportOut}, 400: {"model": ErrorOut}, 413: {"model": ErrorOut},
                        415: {"model": ErrorOut}})
async def import_needs(ctx: Ctx, db: DB, file: UploadFile = File(...), partial: bool = Query(False),
                       dry_run: bool = Query(False)):
    data = await _read_limited(file, ctx.settings.max_upload_bytes)
    return _run("needs", data, file.filename or "upload", partial, dry_run, ctx, db)


@router.get("/imports/templates/{kind}", summary="下载导入模板", response_class=Response,
            responses={200: {"content": {XLSX_MEDIA_TYPE: {}, "text/csv": {}}}})
def template(kind: Literal["outcomes", "needs"], format: Literal["xlsx", "csv"] = "xlsx"):
    name = {"outcomes": "科技成果导入模板", "needs": "技术需求导入模板"}[kind]
    if format == "csv":
        body, media, ext = template_csv(kind), "text/csv; charset=utf-8", "csv"
    else:
        body, media, ext = template_xlsx(kind), XLSX_MEDIA_TYPE, "xlsx"
    return attachment(body, f"{name}.{ext}", media, f"template.{ext}")
