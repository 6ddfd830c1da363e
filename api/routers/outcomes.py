"""University outcomes (科技成果) and their matches."""
from __future__ import annotations

from fastapi import APIRouter, Query, Response, status

from matcher import access, matching, records
from matcher.models import Outcome
from matcher.schemas import MatchList, OutcomeIn, OutcomeOut, OutcomeUpdate

from ..deps import Actor, Ctx, DB, EVERYONE, Filters, Limit, Offset, PathId, QueryId, require
from ..errors import CONFLICT
from ..schemas import Page

router = APIRouter(tags=["科技成果"])
_PUBLIC = "科技成果是公开信息，任何已登录用户都可查看。"


@router.get("/outcomes", response_model=Page[OutcomeOut], summary="成果列表",
            dependencies=[require(*EVERYONE, note=_PUBLIC)])
def list_outcomes(db: DB, q: str | None = Query(None, max_length=100), institution_id: QueryId = None,
               industry_chain: str | None = Query(None, max_length=50), status_: str | None = Query(None, alias="status", max_length=20),
               offset: Offset = 0, limit: Limit = 50):
    total, items = records.list_records(db, Outcome, q=q, offset=offset, limit=limit, institution_id=institution_id,
                                        industry_chain=industry_chain, status=status_)
    return {"total": total, "offset": offset, "limit": limit, "items": items}


@router.post("/outcomes", responses=CONFLICT,
             response_model=OutcomeOut, status_code=status.HTTP_201_CREATED, summary="新建成果",
             dependencies=[require("broker", "institution", note="高校/院所用户只能为本单位登记成果。")])
def create_outcome(data: OutcomeIn, ctx: Ctx, db: DB, actor: Actor):
    access.check_institution(actor, data.institution_id)
    return records.create_outcome(ctx, db, data)


@router.get("/outcomes/{outcome_id}", response_model=OutcomeOut, summary="成果详情",
            dependencies=[require(*EVERYONE, note=_PUBLIC)])
def get_outcome(outcome_id: PathId, db: DB):
    return records.get_outcome(db, outcome_id)


@router.patch("/outcomes/{outcome_id}", responses=CONFLICT, response_model=OutcomeOut, summary="修改成果",
              dependencies=[require("broker", "institution", note="高校/院所用户只能修改本单位的成果，且不能转给其他单位。")])
def update_outcome(outcome_id: PathId, data: OutcomeUpdate, ctx: Ctx, db: DB, actor: Actor):
    access.editable_outcome(db, actor, outcome_id)
    if "institution_id" in data.model_fields_set and data.institution_id is not None:
        access.check_institution(actor, data.institution_id)
    return records.update_outcome(ctx, db, outcome_id, data)


@router.delete("/outcomes/{outcome_id}", status_code=status.HTTP_204_NO_CONTENT, summary="删除成果",
               dependencies=[require("broker", "institution", note="高校/院所用户只能删除本单位的成果。")])
def delete_outcome(outcome_id: PathId, ctx: Ctx, db: DB, actor: Actor):
    records.delete_record(ctx, db, access.editable_outcome(db, actor, outcome_id))


@router.get("/outcomes/{outcome_id}/matches", response_model=MatchList, summary="为成果推荐企业需求",
            description="按匹配度返回企业需求，附中文解释：共同术语、最契合的句子、各因素贡献、缺失字段。"
                        "已被标记为未成功的对接不会再次出现。",
            dependencies=[require("broker", "institution",
                                  note="高校/院所用户只能查看本单位成果的匹配结果，且结果中不含仅经纪人可见的需求。")])
def outcome_matches(outcome_id: PathId, ctx: Ctx, db: DB, actor: Actor,
                    filters: Filters, k: int = Query(matching.DEFAULT_K, ge=1, le=100)):
    access.matchable_outcome(db, actor, outcome_id)
    # The finished JSON page (possibly from the worker's page cache): no second validation on the way out.
    return Response(matching.match_page(ctx, db, "outcomes", outcome_id, k, filters, viewer=actor), media_type="application/json")
