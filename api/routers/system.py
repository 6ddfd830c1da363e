"""Health and index status."""
from __future__ import annotations

from fastapi import APIRouter

from ..deps import Ctx

router = APIRouter(tags=["系统"])


@router.get("/health", summary="健康检查与索引状态")
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
