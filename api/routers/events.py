"""Matchmaking events (对接会): schedule, read back, print agendas."""
from __future__ import annotations

from fastapi import APIRouter, Query, status
from fastapi.responses import Response

from matcher.events import agendas, service
from matcher.events.requests import EventIn

from ..deps import Ctx, DB, Limit, Offset, PathId, STAFF, require
from ..downloads import XLSX_RESPONSES, xlsx_response
from ..schemas import ErrorOut, EventBrief, EventOut, Page

router = APIRouter(tags=["对接会"], dependencies=[require(*STAFF, note="日程列出参会需求（可能含仅经纪人可见的需求）。")])


@router.post("/events", response_model=EventOut, status_code=status.HTTP_201_CREATED, summary="排定一场对接会",
             description="参会方：need_ids（或 enterprise_ids → 其征集中的需求）、outcome_ids（或 institution_ids → 其可转化成果）；"
                         "slots（时段名称或 {label, starts_at, ends_at}）；容量：每家企业、每家机构最多场次，每时段桌数；"
                         "excluded_pairs 硬性排除；unavailable 某方某时段不能到场。匹配分取自本服务的排序（文本相关度 + 结构化因素）。"
                         "返回日程、目标值（总匹配分）、贪心基线及差距、求解状态；无法满足时返回 422（event_infeasible），"
                         "message 说明应放宽哪项约束。求解时长受 time_limit_s 限制（默认 10 秒，最多 30 秒）。",
             responses={422: {"model": ErrorOut}, 404: {"model": ErrorOut}})
def create_event(data: EventIn, ctx: Ctx, db: DB):
    return service.plan_event(ctx, db, data)


@router.get("/events", response_model=Page[EventBrief], summary="对接会列表")
def list_events(db: DB, offset: Offset = 0, limit: Limit = 50):
    total, items = service.list_events(db, offset, limit)
    return {"total": total, "offset": offset, "limit": limit, "items": items}


@router.get("/events/{event_id}", response_model=EventOut, summary="对接会详情（含日程）")
def get_event(event_id: PathId, db: DB):
    return service.get_event(db, event_id)


@router.get("/events/{event_id}/agendas.xlsx", summary="导出日程（Excel）", response_class=Response,
            description="总日程 + 每家企业、每家单位一张工作表（每个时段一行，空闲时段注明）；"
                        "?party=enterprise:12 或 institution:5 只导出该方的日程。",
            responses=XLSX_RESPONSES)
def agendas_xlsx(event_id: PathId, db: DB, party: str | None = Query(None, max_length=40,
                                                                      description="enterprise:企业编号 或 institution:单位编号")):
    body, name = agendas.agenda_workbook(service.get_event(db, event_id), party)
    return xlsx_response(body, name, "agendas.xlsx")
