"""Health and index status."""
from __future__ import annotations

from fastapi import APIRouter

from ..deps import SyncedCtx, public

router = APIRouter(tags=["系统"])


@router.get("/health", summary="健康检查与索引状态", dependencies=[public("只给出计数与版本，不含任何记录内容。")])
def health(ctx: SyncedCtx):
    ix = ctx.indexes
    return {
        "status": "ok",
        "model": ctx.encoder.model_id,
        "dim": ctx.encoder.dim,
        # "shared": texts go to the machine's one encoder process (matcher serve --workers N); "local": in process.
        "encoder": "shared" if ctx.encoder.is_remote else "local",
        "index_version": ix.version,
        "indexed": {side: len(index) for side, index in ix.indexes.items()},
        "database": ctx.engine.dialect.name,
        # This worker's finished match pages: how many it holds, and how many recently viewed ones the
        # background warmer has still to re-make after the last write (0 once it has caught up).
        "match_pages": {"held": ctx.pages.held(ix.version), "to_remake": len(ctx.pages.to_remake(ix.version))},
        # Records whose sentence vectors this worker holds in memory (filled at start, then kept current),
        # and whether that start-up fill has finished.
        "sentence_memory": {"records": len(ix.sentences), "mb": round(ix.sentences.nbytes / 2**20, 1),
                            "filled": ix.sentences_filled},
        # Outcomes whose ranking fields this worker holds (matcher.outcome_table), and whether it is filled.
        "outcome_table": {"records": len(ix.outcome_table), "mb": round(ix.outcome_table.nbytes / 2**20, 1),
                          "filled": ix.outcome_table.filled},
    }
