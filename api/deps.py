"""Request dependencies: the process context, a database session, the signed-in actor and access rules.

Every route declares exactly one rule, ``dependencies=[require(...)]`` or
``[public()]``; :func:`api.main.create_app` refuses to start with a route that
has none and writes each rule into that route's OpenAPI description, so the
code, ``/docs`` and docs/security.md say the same thing (a test checks the
last against the first).
"""
from __future__ import annotations

import inspect
from collections.abc import Iterator
from datetime import date
from typing import Annotated

from fastapi import Depends, Path, Query, Request
from fastapi.params import Depends as DependsParam
from fastapi.routing import APIRoute
from fastapi.security import APIKeyHeader, OAuth2PasswordBearer
from sqlalchemy.orm import Session

from matcher import audit
from matcher.access import ADMIN, ROLE_LABELS, ROLES, Forbidden, Viewer
from matcher.accounts.bearer import API_KEY_PREFIX, NotAuthenticated, user_from_api_key, user_from_token
from matcher.accounts.signing import signing_key
from matcher.context import MatcherContext
from matcher.schemas import MatchFilters


# FastAPI runs a plain ``def`` dependency in its thread pool: one hop there and back measured 110-230 us on these
# machines, against 3.6 ms for a whole repeated match page. So a dependency that neither waits on the database
# nor takes a lock is ``async def`` (run on the event loop), and the index catch-up shares the session's hop.
async def get_ctx(request: Request) -> MatcherContext:
    """The worker's context, as it stands (see :func:`synced_ctx` and :func:`get_session` for the catch-up)."""
    return request.app.state.ctx


def get_session(ctx: Annotated[MatcherContext, Depends(get_ctx)]) -> Iterator[Session]:
    """A database session for the request, through which this worker's indexes first caught up with the log.

    The catch-up applies the writes other workers committed since our last request (it may wait on the
    index lock and reads the database, hence a thread, never the event loop).
    """
    with ctx.sessions() as session:
        ctx.indexes.sync(session)
        yield session


def synced_ctx(ctx: Annotated[MatcherContext, Depends(get_ctx)]) -> MatcherContext:
    """The context after the same catch-up, for a route that reads the indexes without a session."""
    ctx.indexes.sync()
    return ctx


async def _match_filters(**fields) -> MatchFilters:
    return MatchFilters(**fields)


# The filters' query parameters are MatchFilters' fields, read off its signature; as the class itself (Depends())
# they would cost a thread hop per match page.
_match_filters.__signature__ = inspect.signature(MatchFilters).replace(return_annotation=MatchFilters)

Ctx = Annotated[MatcherContext, Depends(get_ctx)]
Filters = Annotated[MatchFilters, Depends(_match_filters)]
SyncedCtx = Annotated[MatcherContext, Depends(synced_ctx)]
DB = Annotated[Session, Depends(get_session)]

# Paging of every list. The offset is capped because a huge one overflows SQLite's integer (a 500, found by
# schemathesis); ten million rows is past any list this service holds.
MAX_OFFSET = 10_000_000
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="跳过的条数")]
Limit = Annotated[int, Query(ge=1, le=500, description="每页条数（最多 500）")]

# Both schemes appear in /docs ("Authorize"); neither fails by itself, current_actor decides.
_bearer = OAuth2PasswordBearer(tokenUrl="/auth/token", auto_error=False,
                               description="POST /auth/token 登录得到的访问令牌，或 API 密钥")
_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="管理员为用户签发的 API 密钥")


def token_key(request: Request, ctx: MatcherContext, db: Session) -> str:
    """The token signing key, read from the environment or the database once per app."""
    key = getattr(request.app.state, "signing_key", None)
    if key is None:
        key = request.app.state.signing_key = signing_key(ctx.settings, db)
    return key


def current_actor(request: Request, ctx: Ctx, db: DB, token: Annotated[str | None, Depends(_bearer)],
                  api_key: Annotated[str | None, Depends(_api_key)]) -> Viewer:
    """The signed-in user (bearer token or API key), else 401 ``not_authenticated``.

    The user row is read on every request, so a deactivated user or a changed
    role takes effect at once. The session's later writes are audited as theirs.
    """
    key = api_key or (token if token and token.startswith(API_KEY_PREFIX) else None)
    if key:
        user = user_from_api_key(db, key.strip())
    elif token:
        user = user_from_token(db, token, token_key(request, ctx, db))
    else:
        raise NotAuthenticated()
    viewer = Viewer.of(user)
    audit.set_actor(db, viewer, f"{request.method} {request.url.path}")
    return viewer


Actor = Annotated[Viewer, Depends(current_actor)]


class Rule:
    """Who may call a route: ``roles`` (admins always), or everyone when ``roles`` is None."""

    def __init__(self, roles: frozenset[str] | None, note: str = ""):
        self.roles = roles
        self.note = note

    def describe(self) -> str:
        """The rule in one Chinese sentence, as /docs and docs/security.md show it."""
        if self.roles is None:
            who = "公开，无需登录"
        elif self.roles == frozenset(ROLES):
            who = "任何已登录用户"
        else:
            who = "、".join(ROLE_LABELS[r] for r in ROLES if r in self.roles)
        return f"**权限**：{who}。{self.note}".rstrip()


class _RoleCheck(Rule):
    async def __call__(self, actor: Actor) -> Viewer:
        if actor.role not in self.roles:
            allowed = "、".join(ROLE_LABELS[r] for r in ROLES if r in self.roles)
            raise Forbidden(f"没有权限：此操作仅限{allowed}")
        return actor


class _Public(Rule):
    async def __call__(self) -> None:
        return None


def require(*roles: str, note: str = "") -> DependsParam:
    """A route dependency letting only ``roles`` through (admins can do everything brokers can, and more)."""
    unknown = set(roles) - set(ROLES)
    if unknown:
        raise ValueError(f"unknown roles {unknown}")
    return Depends(_RoleCheck(frozenset(roles) | {ADMIN}, note))


def public(note: str = "") -> DependsParam:
    """A route dependency marking the route as open to anyone, signed in or not."""
    return Depends(_Public(None, note))


def rule_of(route) -> Rule | None:
    """The access rule a route declared (on itself or its router), if exactly one."""
    rules = [d.dependency for d in getattr(route, "dependencies", None) or () if isinstance(d.dependency, Rule)]
    return rules[0] if len(rules) == 1 else None


def iter_routes(app) -> Iterator:
    """Every route of ``app`` as served: path with its router's prefix, methods, and all its dependencies."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # FastAPI before included routers were resolved lazily: app.routes is already flat
        yield from app.routes
    else:
        yield from iter_route_contexts(app.routes)


def is_api_route(route) -> bool:
    """An endpoint of ours (not the docs pages FastAPI adds)."""
    return isinstance(getattr(route, "original_route", route), APIRoute)


# Role groups the routers share.
STAFF = ("broker",)
EVERYONE = ROLES

_MAX_ID = 2_147_483_647  # ids are 32-bit integer columns on every backend
PathId = Annotated[int, Path(ge=1, le=_MAX_ID)]
QueryId = Annotated[int | None, Query(ge=1, le=_MAX_ID)]

# The report parameters every progress, funnel and export route shares.
Region = Annotated[str, Query(min_length=1, max_length=100, description="区域，如 文登区、威海市（市级汇总其下各区）")]
Year = Annotated[int | None, Query(ge=2000, le=2100, description="年份，如 2025")]
Period = Annotated[str | None, Query(max_length=20, description="多年期间，如 2024-2026")]
AsOf = Annotated[date | None, Query(description="截至日期 YYYY-MM-DD，默认今天（北京时间）")]
