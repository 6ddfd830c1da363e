"""Pairings (对接): propose from a match, move through stages, read history."""
from __future__ import annotations

from fastapi import APIRouter, Query, status
from fastapi.responses import Response

from matcher import exports, pairings, records
from matcher.models import Pairing

from ..deps import Actor, DB, Limit, Offset, PathId, QueryId, STAFF, require
from ..downloads import XLSX_RESPONSES, xlsx_response
from ..errors import CONFLICT
from ..schemas import Page, PairingOut, ProjectOut

router = APIRouter(tags=["对接"], dependencies=[require(*STAFF, note="对接记录含需求全文与经纪人判断，只对技术经理人和管理员开放。")])


@router.post("/pairings", responses=CONFLICT,
             response_model=PairingOut, status_code=status.HTTP_201_CREATED, summary="推荐一个对接",
             description="从匹配结果创建对接（阶段为「已推荐」）。同一需求与成果只能有一条对接记录。"
                         "broker 不填则为当前登录用户。")
def create_pairing(data: pairings.PairingCreate, db: DB, actor: Actor):
    return pairings.create_pairing(db, data, by=actor.display_name)


@router.get("/pairings", response_model=Page[PairingOut], summary="对接列表")
def list_pairings(db: DB, need_id: QueryId = None, outcome_id: QueryId = None,
                  stage: str | None = Query(None, max_length=20), broker: str | None = Query(None, max_length=100),
                  offset: Offset = 0, limit: Limit = 50):
    pairings.check_stage_filter(stage)
    total, items = records.list_records(db, Pairing, offset=offset, limit=limit, need_id=need_id,
                                        outcome_id=outcome_id, stage=stage, broker=broker)
    return {"total": total, "offset": offset, "limit": limit, "items": items}


@router.get("/pairings/export.xlsx", summary="导出对接列表（Excel）", response_class=Response,
            description="与 /pairings 列表相同的筛选条件（need_id、outcome_id、stage、broker），不分页；"
                        f"最多 {exports.EXPORT_MAX_ROWS} 行，超过请缩小筛选范围。",
            responses=XLSX_RESPONSES)
def export_pairings(db: DB, need_id: QueryId = None, outcome_id: QueryId = None,
                    stage: str | None = Query(None, max_length=20), broker: str | None = Query(None, max_length=100)):
    body = exports.pairing_list_export(db, need_id=need_id, outcome_id=outcome_id, stage=stage, broker=broker)
    return xlsx_response(body, "对接列表.xlsx", "pairings.xlsx")


@router.get("/pairings/{pairing_id}", response_model=PairingOut, summary="对接详情（含完整历史）")
def get_pairing(pairing_id: PathId, db: DB):
    return pairings.get_pairing(db, pairing_id)


@router.post("/pairings/{pairing_id}/moves", responses=CONFLICT, response_model=PairingOut, summary="推进对接阶段",
             description="已推荐 → 已联系 → 洽谈中 → 已签约，或从任一未结束阶段转为未成功（须给原因）。"
                         "须提交最近读取的 version；被他人改过则返回 409。签约须附 project（合同类型等），同时生成合作项目。")
def move_pairing(pairing_id: PathId, move: pairings.PairingMove, db: DB, actor: Actor):
    return pairings.move_pairing(db, pairing_id, move, by=actor.display_name)


@router.get("/pairings/{pairing_id}/project", response_model=ProjectOut | None, summary="对接生成的合作项目")
def pairing_project(pairing_id: PathId, db: DB):
    pairings.get_pairing(db, pairing_id)
    return pairings.project_of(db, pairing_id)
