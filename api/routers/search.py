"""Free-text search over either side."""
from __future__ import annotations

from fastapi import APIRouter

from matcher import matching
from matcher.schemas import MatchFilters, MatchList, SearchRequest

from ..deps import DB, EVERYONE, Actor, Ctx, require

router = APIRouter(tags=["匹配"])


@router.post("/search", response_model=MatchList, summary="自由文本检索成果或需求",
             description='`{"text": "锂电池热管理", "target": "outcomes", "k": 10}`；可加 industry_chain、stage、region、'
                         "cooperation_mode、institution_id、enterprise_id 过滤。",
             dependencies=[require(*EVERYONE, note="只返回调用者能看到的记录：仅经纪人可见的需求只出现在技术经理人、"
                                                  "管理员和发布它的企业的检索结果中。")])
def search(body: SearchRequest, ctx: Ctx, db: DB, actor: Actor):
    filters = MatchFilters(**body.model_dump(include=set(MatchFilters.model_fields)))
    results = matching.search_text(ctx, db, body.text, body.target, body.k, filters, viewer=actor)
    return {"query": body.model_dump(exclude_none=True), "results": results, "note": matching.weak_note(results)}
