"""Request dependencies: the process context and a database session per request."""
from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Annotated

from fastapi import Depends, Path, Query, Request
from sqlalchemy.orm import Session

from matcher.context import MatcherContext


def get_ctx(request: Request) -> MatcherContext:
    ctx: MatcherContext = request.app.state.ctx
    # Catch up with writes other workers committed since our last request.
    ctx.indexes.sync()
    return ctx


def get_session(ctx: Annotated[MatcherContext, Depends(get_ctx)]) -> Iterator[Session]:
    with ctx.sessions() as session:
        yield session


Ctx = Annotated[MatcherContext, Depends(get_ctx)]
DB = Annotated[Session, Depends(get_session)]

_MAX_ID = 2_147_483_647  # ids are 32-bit integer columns on every backend
PathId = Annotated[int, Path(ge=1, le=_MAX_ID)]
QueryId = Annotated[int | None, Query(ge=1, le=_MAX_ID)]

# The report parameters every progress, funnel and export route shares.
Region = Annotated[str, Query(min_length=1, max_length=100, description="区域，如 文登区、威海市（市级汇总其下各区）")]
Year = Annotated[int | None, Query(ge=2000, le=2100, description="年份，如 2025")]
Period = Annotated[str | None, Query(max_length=20, description="多年期间，如 2024-2026")]
AsOf = Annotated[date | None, Query(description="截至日期 YYYY-MM-DD，默认今天（北京时间）")]
