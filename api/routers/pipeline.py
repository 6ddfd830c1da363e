"""The pairing funnel (对接漏斗) of a region and period."""
from __future__ import annotations

from fastapi import APIRouter

from matcher import funnel, targets
from matcher.clock import today_local

from ..deps import DB, STAFF, AsOf, Period, Region, Year, require

router = APIRouter(tags=["目标与进度"], dependencies=[require(*STAFF)])


@router.get("/pipeline/funnel", summary="对接漏斗",
            description="例：?region=文登区&year=2025 或 &period=2024-2026，可加 as_of（默认今天）。"
                        "统计期间内推荐的对接（截至 as_of 的阶段）：各阶段到达数与当前停留数、到下一阶段和到签约的转化率、"
                        "各阶段停留天数中位数（取自对接历史时间）、未成功原因。")
def get_funnel(db: DB, region: Region, year: Year = None, period: Period = None, as_of: AsOf = None):
    start, end = targets.parse_period(year, period)
    return funnel.funnel_report(db, targets.clean_region(region), start, end, as_of or today_local())
