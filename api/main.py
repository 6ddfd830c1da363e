"""The FastAPI application."""
from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from matcher.context import MatcherContext, build_context
from matcher.settings import Settings, get_settings

from . import errors
from .routers import (events, imports, learning, needs, outcomes, pairings, parties, pipeline, projects, search, system,
                      targets)

DESCRIPTION = """
产学研对接撮合服务：把**企业技术需求**与**高校科技成果**做语义匹配（多语言 e5 向量 + FAISS），
给出中文解释，跟踪每一次对接直至签约，并对照区域年度目标汇报进度。

所有错误都返回 `{"code": 机器可读代码, "message": 中文说明, "details": …}`。
"""
# Multipart overhead on top of the largest allowed upload.
_BODY_SLACK = 1024 * 1024


def create_app(settings: Settings | None = None, ctx: MatcherContext | None = None) -> FastAPI:
    """Build the app. Pass ``ctx`` to share an already built context (tests, CLI)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if getattr(app.state, "ctx", None) is None:
            app.state.ctx = build_context(settings or get_settings())
            owned = True
        else:
            owned = False
        yield
        if owned:
            app.state.ctx.close()

    app = FastAPI(title="产学研对接撮合服务", version="0.1.0", description=DESCRIPTION, lifespan=lifespan)
    app.state.ctx = ctx
    errors.install(app)

    @app.middleware("http")
    async def limit_body(request: Request, call_next):
        length = request.headers.get("content-length")
        limit = (app.state.ctx.settings.max_upload_bytes if app.state.ctx else 10 * 1024 * 1024) + _BODY_SLACK
        if length and length.isdigit() and int(length) > limit:
            return JSONResponse(errors.error_body("request_too_large", f"请求体超过 {limit // (1024 * 1024)} MB 上限"),
                                status_code=413)
        return await call_next(request)

    for module in (system, parties, needs, outcomes, search, imports, learning, pairings, projects, targets, pipeline, events):
        app.include_router(module.router)
    return app
