"""Free-text search over either side."""
from __future__ import annotations

from fastapi import APIRouter

from matcher import matching
from matcher.schemas import MatchFilters, MatchList, SearchRequest

from ..deps import DB, Ctx

router = APIRouter(tags=["匹配"])


@router.post("/search", response_model=MatchList, summary="自由文本检索成果或需求",
             description='`{"text": "锂电池热管理", "target": "outcomes", "k": 10}`；可加 industry_chain、stage、region、'
                         "cooperation_mode、institution_id、enterprise_id 过滤。")
def search(body: SearchRequest, ctx: Ctx, db: DB):
    filters = MatchFilters(**body.model_dump(include=set(MatchFilters.model_fields)))
    results = matching.search_text(ctx, db, body.text, body.target, body.k, filters)
    return {"query": body.model_dump(exclude_none=True), "results": results, "note": matching.weak_note(results)}
