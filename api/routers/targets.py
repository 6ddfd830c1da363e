"""Targets (目标) and progress against them."""
from __future__ import annotations

from fastapi import APIRouter, Query, status
from sqlalchemy import select

from matcher import targets
from matcher.models import Target

from ..deps import DB, PathId
from ..schemas import TargetOut

router = APIRouter(tags=["目标与进度"])


@router.get("/targets", response_model=list[TargetOut], summary="目标列表")
def list_targets(db: DB, region: str | None = Query(None, max_length=100)):
    stmt = select(Target).order_by(Target.region, Target.year_start, Target.year_end)
    if region:
        stmt = stmt.where(Target.region == region)
    return list(db.scalars(stmt))


@router.post("/targets", response_model=TargetOut, status_code=status.HTTP_201_CREATED, summary="设定目标",
             description="某区域某年（year_start = year_end）或多年期间的签约项目数目标。")
def create_target(data: targets.TargetIn, db: DB):
    return targets.create_target(db, data)


@router.put("/targets/{target_id}", response_model=TargetOut, summary="修改目标")
def update_target(target_id: PathId, data: targets.TargetIn, db: DB):
    return targets.update_target(db, target_id, data)


@router.delete("/targets/{target_id}", status_code=status.HTTP_204_NO_CONTENT, summary="删除目标")
def delete_target(target_id: PathId, db: DB):
    targets.delete_target(db, target_id)


@router.get("/targets/progress", summary="目标进度",
            description="例：?region=文登区&year=2025 或 ?region=文登区&period=2024-2026。"
                        "返回目标、已签约数、按均匀进度今天应达到的数量和差距；市级区域汇总其下各区。")
def progress(db: DB, region: str = Query(..., min_length=1, max_length=100), year: int | None = Query(None, ge=2000, le=2100),
             period: str | None = Query(None, max_length=20)):
    start, end = targets.parse_period(year, period)
    return targets.progress(db, region, start, end)
