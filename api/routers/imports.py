"""Uploading outcome and need lists (.xlsx / .csv), and their templates."""
from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, File, Query, UploadFile
from fastapi.responses import JSONResponse, Response

from matcher import importer, records
from matcher.access import Viewer
from matcher.errors import DomainError
from matcher.imports.templates import template_csv, template_xlsx
from matcher.spreadsheets import XLSX_MEDIA_TYPE

from ..deps import DB, EVERYONE, STAFF, Actor, Ctx, require
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


def _scope(db, actor: Viewer):
    """The one party a party user's rows must belong to (None for staff: any party)."""
    if actor.role == "enterprise":
        return records.get_enterprise(db, actor.enterprise_id)
    if actor.role == "institution":
        return records.get_institution(db, actor.institution_id)
    return None


def _run(kind: str, data: bytes, filename: str, partial: bool, dry_run: bool, ctx, db, actor: Viewer):
    report = importer.import_file(ctx, db, data, filename, kind, partial=partial, dry_run=dry_run,
                                  scope=_scope(db, actor)).as_dict()
    status = 422 if report["rejected"] and not report["applied"] and not dry_run else 200
    return JSONResponse(ImportReportOut(**report).model_dump(), status_code=status)


_DOC = ("上传 .xlsx 或 .csv（UTF-8 或 GBK/GB18030），表头可用常见别名。任何一行有误则整个文件不导入（422，报告列出行号和原因），"
        "除非 partial=true；dry_run=true 只校验不写入。重复上传同一清单不会产生重复记录。")


@router.post("/imports/outcomes", response_model=ImportReportOut, summary="导入高校科技成果清单", description=_DOC,
             responses={422: {"model": ImportReportOut}, 400: {"model": ErrorOut}, 413: {"model": ErrorOut},
                        415: {"model": ErrorOut}},
             dependencies=[require(*STAFF, "institution", note="高校/院所用户只能导入本单位的成果：单位名称不是本单位的行被拒绝。")])
async def import_outcomes(ctx: Ctx, db: DB, actor: Actor, file: UploadFile = File(...), partial: bool = Query(False),
                          dry_run: bool = Query(False)):
    data = await _read_limited(file, ctx.settings.max_upload_bytes)
    return _run("outcomes", data, file.filename or "upload", partial, dry_run, ctx, db, actor)


@router.post("/imports/needs", response_model=ImportReportOut, summary="导入企业技术需求清单", description=_DOC,
             responses={422: {"model": ImportReportOut}, 400: {"model": ErrorOut}, 413: {"model": ErrorOut},
                        415: {"model": ErrorOut}},
             dependencies=[require(*STAFF, "enterprise", note="企业用户只能导入本企业的需求：企业名称不是本企业的行被拒绝。")])
async def import_needs(ctx: Ctx, db: DB, actor: Actor, file: UploadFile = File(...), partial: bool = Query(False),
                       dry_run: bool = Query(False)):
    data = await _read_limited(file, ctx.settings.max_upload_bytes)
    return _run("needs", data, file.filename or "upload", partial, dry_run, ctx, db, actor)


@router.get("/imports/templates/{kind}", summary="下载导入模板", response_class=Response,
            responses={200: {"content": {XLSX_MEDIA_TYPE: {}, "text/csv": {}}}}, dependencies=[require(*EVERYONE)])
def template(kind: Literal["outcomes", "needs"], format: Literal["xlsx", "csv"] = "xlsx"):
    name = {"outcomes": "科技成果导入模板", "needs": "技术需求导入模板"}[kind]
    if format == "csv":
        body, media, ext = template_csv(kind), "text/csv; charset=utf-8", "csv"
    else:
        body, media, ext = template_xlsx(kind), XLSX_MEDIA_TYPE, "xlsx"
    return attachment(body, f"{name}.{ext}", media, f"template.{ext}")
