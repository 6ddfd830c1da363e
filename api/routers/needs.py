"""Enterprise technical needs (企业技术需求) and their matches."""
from __future__ import annotations

from fastapi import APIRouter, Query, Response, status

from matcher import access, matching, records
from matcher.models import Need
from matcher.schemas import MatchList, NeedIn, NeedOut, NeedUpdate

from ..deps import Actor, Ctx, DB, EVERYONE, Filters, Limit, Offset, PathId, QueryId, require
from ..errors import CONFLICT
from ..schemas import Page

router = APIRouter(tags=["技术需求"])
_UNSEEN = "仅经纪人可见的需求只有发布它的企业、技术经理人和管理员能看到；看不到的需求一律按不存在处理（404）。"


@router.get("/needs", response_model=Page[NeedOut], summary="需求列表",
            dependencies=[require(*EVERYONE, note=_UNSEEN)])
def list_needs(db: DB, actor: Actor, q: str | None = Query(None, max_length=100), enterprise_id: QueryId = None,
               industry_chain: str | None = Query(None, max_length=50), status_: str | None = Query(None, alias="status", max_length=20),
               offset: Offset = 0, limit: Limit = 50):
    total, items = records.list_records(db, Need, q=q, offset=offset, limit=limit, enterprise_id=enterprise_id,
                                        industry_chain=industry_chain, status=status_,
                                        where=access.need_filters(actor))
    return {"total": total, "offset": offset, "limit": limit, "items": items}


@router.post("/needs", responses=CONFLICT, response_model=NeedOut, status_code=status.HTTP_201_CREATED, summary="新建需求",
             dependencies=[require("broker", "enterprise", note="企业用户只能为本企业发布需求。")])
def create_need(data: NeedIn, ctx: Ctx, db: DB, actor: Actor):
    access.check_enterprise(actor, data.enterprise_id)
    return records.create_need(ctx, db, data)


@router.get("/needs/{need_id}", response_model=NeedOut, summary="需求详情",
            dependencies=[require(*EVERYONE, note=_UNSEEN)])
def get_need(need_id: PathId, db: DB, actor: Actor):
    return access.readable_need(db, actor, need_id)


@router.patch("/needs/{need_id}", responses=CONFLICT, response_model=NeedOut, summary="修改需求",
              dependencies=[require("broker", "enterprise", note="企业用户只能修改本企业的需求，且不能转给其他企业。")])
def update_need(need_id: PathId, data: NeedUpdate, ctx: Ctx, db: DB, actor: Actor):
    access.editable_need(db, actor, need_id)
    if "enterprise_id" in data.model_fields_set and data.enterprise_id is not None:
        access.check_enterprise(actor, data.enterprise_id)
    return records.update_need(ctx, db, need_id, data)


@router.delete("/needs/{need_id}", status_code=status.HTTP_204_NO_CONTENT, summary="删除需求",
               dependencies=[require("broker", "enterprise", note="企业用户只能删除本企业的需求。")])
def delete_need(need_id: PathId, ctx: Ctx, db: DB, actor: Actor):
    records.delete_record(ctx, db, access.editable_need(db, actor, need_id))


@router.get("/needs/{need_id}/matches", response_model=MatchList, summary="为需求推荐成果",
            description="按匹配度返回成果，附中文解释：共同术语、最契合的句子、各因素贡献、缺失字段。"
                        "已被标记为未成功的对接不会再次出现。",
            dependencies=[require("broker", "enterprise", note="企业用户只能查看本企业需求的匹配结果。")])
def need_matches(need_id: PathId, ctx: Ctx, db: DB, actor: Actor, filters: Filters,
                 k: int = Query(matching.DEFAULT_K, ge=1, le=100)):
    access.matchable_need(db, actor, need_id)
    # The finished JSON page (possibly from the worker's page cache): no second validation on the way out.
    return Response(matching.match_page(ctx, db, "needs", need_id, k, filters, viewer=actor), media_type="application/json")
