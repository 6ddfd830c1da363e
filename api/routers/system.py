"""Health and index status."""
from __future__ import annotations

from fastapi import APIRouter

from ..deps import Ctx, public

router = APIRouter(tags=["系统"])


@router.get("/health", summary="健康检查与索引状态", dependencies=[public("只给出计数与版本，不含任何记录内容。")])
def health(ctx: Ctx):
    ix = ctx.indexes
    return {
        "status": "ok",
        "model": ctx.encoder.model_id,
        "dim": ctx.encoder.dim,
        "index_version": ix.version,
        "indexed": {side: len(index) for side, index in ix.indexes.items()},
        "database": ctx.engine.dialect.name,
    }
