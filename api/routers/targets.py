"""Targets (目标) and progress against them."""
from __future__ import annotations

from datetime import date
from typing import Literal

from fastapi import APIRouter, Query, status
from fastapi.responses import Response
from sqlalchemy import select

from matcher import exports, progress, targets
from matcher.clock import today_local
from matcher.models import Target

from ..deps import DB, STAFF, AsOf, PathId, Period, Region, Year, require
from ..downloads import XLSX_RESPONSES, xlsx_response
from ..errors import CONFLICT
from ..schemas import TargetOut

router = APIRouter(tags=["目标与进度"])


_READ = [require(*STAFF)]
_WRITE = [require(note="目标由科技局管理员设定。")]


@router.get("/targets", response_model=list[TargetOut], summary="目标列表", dependencies=_READ)
def list_targets(db: DB, region: str | None = Query(None, max_length=100)):
    stmt = select(Target).order_by(Target.region, Target.year_start, Target.year_end)
    if region:
        stmt = stmt.where(Target.region == region)
    return list(db.scalars(stmt))


@router.post("/targets", responses=CONFLICT,
             response_model=TargetOut, status_code=status.HTTP_201_CREATED, summary="设定目标",
             description="某区域某年（year_start = year_end）或多年期间的签约项目数目标。", dependencies=_WRITE)
def create_target(data: targets.TargetIn, db: DB):
    return targets.create_target(db, data)


@router.put("/targets/{target_id}", responses=CONFLICT, response_model=TargetOut, summary="修改目标", dependencies=_WRITE)
def update_target(target_id: PathId, data: targets.TargetIn, db: DB):
    return targets.update_target(db, target_id, data)


@router.delete("/targets/{target_id}", status_code=status.HTTP_204_NO_CONTENT, summary="删除目标", dependencies=_WRITE)
def delete_target(target_id: PathId, db: DB):
    targets.delete_target(db, target_id)


_PROGRESS_DOC = ("例：?region=文登区&year=2025 或 ?region=文登区&period=2024-2026，可加 as_of=2025-07-01（默认今天）。"
                 "返回目标、已签约数、按均匀进度今天应达到的数量和差距、两种期末预测（按签约速度；按在途对接 × 各阶段历史转化率，"
                 "均给出方法、算式和样本数），以及按产业链、单位、经纪人和月份（累计）的分解；市级区域汇总其下各区。"
                 "format=xlsx 返回 Excel 月报。")


def _progress_inputs(region: str, year: int | None, period: str | None, as_of: date | None):
    start, end = targets.parse_period(year, period)
    return targets.clean_region(region), start, end, as_of or today_local()


def _progress_xlsx(db, region: str, start: int, end: int, as_of: date):
    body, name = exports.progress_export(db, region, start, end, as_of)
    return xlsx_response(body, name, "progress.xlsx")


@router.get("/targets/progress", summary="目标进度与期末预测", description=_PROGRESS_DOC,
            responses=XLSX_RESPONSES, dependencies=_READ)
def get_progress(db: DB, region: Region, year: Year = None, period: Period = None, as_of: AsOf = None,
                 format: Literal["json", "xlsx"] = Query("json", description="json 或 xlsx")):
    region, start, end, day = _progress_inputs(region, year, period, as_of)
    if format == "xlsx":
        return _progress_xlsx(db, region, start, end, day)
    return progress.progress_report(db, region, start, end, day)


@router.get("/targets/progress.xlsx", summary="导出目标进度（Excel）", response_class=Response,
            description="与 /targets/progress 相同的参数；工作表：汇总、在途转化、按产业链、按单位、按经纪人、按月累计、对接漏斗、签约项目明细。",
            responses=XLSX_RESPONSES, dependencies=_READ)
def get_progress_xlsx(db: DB, region: Region, year: Year = None, period: Period = None, as_of: AsOf = None):
    return _progress_xlsx(db, *_progress_inputs(region, year, period, as_of))
