"""The FastAPI application."""
from __future__ import annotations

import gc
import threading
from contextlib import asynccontextmanager

from fastapi import FastAPI

from matcher.context import MatcherContext, build_context
from matcher.page_warmer import PageWarmer
from matcher.settings import Settings, get_settings

from . import errors, process_memory
from .deps import is_api_route, iter_routes, rule_of
from .limits import BodyLimit
from .routers import (audit, auth, events, imports, learning, needs, outcomes, pairings, parties, pipeline, projects,
                      regions, search, system, targets, users)

DESCRIPTION = """
产学研对接撮合服务：把**企业技术需求**与**高校科技成果**做语义匹配（多语言 e5 向量 + FAISS），
给出中文解释，跟踪每一次对接直至签约，并对照区域年度目标汇报进度。

**登录**：`POST /auth/token`（表单 username、password）得到访问令牌，之后每个请求带
`Authorization: Bearer <令牌>`（本页右上角 Authorize 按钮即可）；脚本也可用管理员签发的 API 密钥（`X-API-Key`）。
角色：管理员、技术经理人、企业用户（绑定一家企业）、高校/院所用户（绑定一家单位）；每个接口的说明末尾写明谁可以调用。
未登录返回 401（not_authenticated），无权限返回 403（forbidden）。

所有错误都返回 `{"code": 机器可读代码, "message": 中文说明, "details": …}`。
"""
# Multipart overhead on top of the largest allowed upload.
_BODY_SLACK = 1024 * 1024
_DEFAULT_SETTINGS = Settings()


def _rules(app: FastAPI) -> dict[tuple[str, str], object]:
    """(METHOD, path) → the rule it declared; refuses to start with an endpoint that declares none."""
    rules = {}
    for route in iter_routes(app):
        if not is_api_route(route):
            continue
        rule = rule_of(route)
        if rule is None:
            raise RuntimeError(f"{sorted(route.methods)} {route.path} declares no access rule (see api/deps.py)")
        for method in route.methods:
            rules[(method, route.path)] = rule
    return rules


def _document_rules(app: FastAPI, rules: dict) -> None:
    """Write each route's rule at the end of its OpenAPI description, with its 401/403 answers."""
    generate = app.openapi
    error_ref = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}}

    def openapi() -> dict:
        schema = generate()
        errors.document_errors(schema)
        for path, operations in schema.get("paths", {}).items():
            for method, op in operations.items():
                rule = rules.get((method.upper(), path))
                if rule is None or "x-access" in op:
                    continue  # the schema is cached: annotate once
                op["x-access"] = rule.describe()
                op["description"] = "\n\n".join(p for p in (op.get("description"), rule.describe()) if p)
                if rule.roles is not None:
                    op.setdefault("responses", {}).setdefault(
                        "401", {"description": "未登录或令牌无效（not_authenticated）", "content": error_ref})
                    op["responses"].setdefault("403", {"description": "无权限（forbidden）", "content": error_ref})
        return schema

    app.openapi = openapi


def create_app(settings: Settings | None = None, ctx: MatcherContext | None = None) -> FastAPI:
    """Build the app. Pass ``ctx`` to share an already built context (tests, CLI)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if getattr(app.state, "ctx", None) is None:
            process_memory.limit_malloc_arenas()
            app.state.ctx = build_context(settings or get_settings())
            app.state.ctx.warm_up()
            owned = True
            # The model, the vocabularies and the indexes are millions of long-lived objects; a full collection
            # walking them stalled requests by hundreds of ms under load. Freezing moves them out of the GC's sight.
            gc.collect()
            gc.freeze()
            process_memory.release_free_heap()
        else:
            owned = False
        ctx = app.state.ctx
        warmer = (PageWarmer(ctx, ctx.settings.match_page_warm_quiet_s).start()
                  if owned and ctx.pages.max_recipes else None)
        # Serving starts at once; the outcome table and the sentence memory fill beside it (a first view
        # reads the database instead until then).
        stopping = threading.Event()
        filler = threading.Thread(target=ctx.indexes.fill_memory, args=(stopping.is_set,), name="memory-fill",
                                  daemon=True) if owned else None
        if filler is not None:
            filler.start()
        yield
        stopping.set()
        if filler is not None:
            filler.join(timeout=10)
        if warmer is not None:
            warmer.stop()
        if owned:
            app.state.ctx.close()

    app = FastAPI(title="产学研对接撮合服务", version="0.1.0", description=DESCRIPTION, lifespan=lifespan)
    app.state.ctx = ctx
    errors.install(app)

    def limits() -> tuple[int, int]:
        current = app.state.ctx.settings if app.state.ctx else (settings or _DEFAULT_SETTINGS)
        return current.max_upload_bytes + _BODY_SLACK, current.max_json_bytes

    app.add_middleware(BodyLimit, limits=limits)

    for module in (system, auth, users, audit, parties, needs, outcomes, search, imports, learning, pairings, projects,
                   targets, regions, pipeline, events):
        app.include_router(module.router)
    _document_rules(app, _rules(app))
    return app
