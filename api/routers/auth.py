"""Signing in (OAuth2 password flow), who am I, changing one's own password."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request

from matcher.accounts import throttle, users
from matcher.accounts.bearer import issue_token
from matcher.models import User

from ..deps import DB, EVERYONE, Actor, Ctx, public, require, token_key
from ..schemas import ErrorOut, TokenOut

router = APIRouter(tags=["账号与权限"])
_TOO_MANY = {"model": ErrorOut, "description": "登录失败次数过多（too_many_attempts），稍后再试",
             "headers": {"Retry-After": {"description": "需等待的秒数", "schema": {"type": "integer"}}}}


def _token_answer(request: Request, ctx, db, user: User) -> dict:
    token, ttl = issue_token(user, token_key(request, ctx, db), ctx.settings.token_ttl_minutes)
    return {"access_token": token, "token_type": "bearer", "expires_in": ttl, "user": _me(db, user)}


def _me(db, user: User) -> dict:
    out = users.UserOut.model_validate(user).model_dump(mode="json")
    out["enterprise_name"] = user.enterprise.name if user.enterprise else None
    out["institution_name"] = user.institution.name if user.institution else None
    return out


@router.post("/auth/token", response_model=TokenOut, summary="登录（获取访问令牌）",
             description="OAuth2 密码模式：表单字段 username、password（application/x-www-form-urlencoded）。"
                         "返回 access_token，之后每个请求带 `Authorization: Bearer <access_token>`。"
                         "用户名或密码错误返回 401（invalid_credentials），不区分是哪一项错误。"
                         "同一用户名或同一来源地址在时间窗内失败次数过多时返回 429（too_many_attempts），"
                         "Retry-After 头给出需等待的秒数；登录成功即清零该用户名的失败次数。",
             responses={401: {"model": ErrorOut}, 429: _TOO_MANY}, dependencies=[public()])
def login(request: Request, ctx: Ctx, db: DB, username: Annotated[str, Form(min_length=1, max_length=100)],
          password: Annotated[str, Form(min_length=1, max_length=200)],
          grant_type: Annotated[str | None, Form(pattern="^password$")] = None):
    limits = throttle.Limits.of(ctx.settings)
    # The connecting address; behind a reverse proxy, uvicorn's --proxy-headers makes it the client's.
    address = request.client.host if request.client else None
    throttle.check(db, limits, username, address)
    try:
        user = users.authenticate(db, username, password)
    except users.InvalidCredentials:
        db.rollback()
        throttle.record_failure(db, limits, username, address)
        raise
    throttle.reset(db, username)
    return _token_answer(request, ctx, db, user)


@router.get("/auth/me", summary="当前登录用户", dependencies=[require(*EVERYONE)])
def me(db: DB, actor: Actor):
    return _me(db, users.get_user(db, actor.user_id))


@router.post("/auth/password", response_model=TokenOut, summary="修改本人密码",
             description="须提供原密码。修改后此前签发的所有访问令牌失效，返回新的访问令牌。",
             dependencies=[require(*EVERYONE)])
def change_password(request: Request, data: users.PasswordChange, ctx: Ctx, db: DB, actor: Actor):
    user = users.change_password(db, users.get_user(db, actor.user_id), data)
    return _token_answer(request, ctx, db, user)
