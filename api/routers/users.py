"""Accounts and API keys, managed by admins."""
from __future__ import annotations

from fastapi import APIRouter, Query, status

from matcher.access import ROLES
from matcher.accounts import users

from ..deps import DB, Limit, Offset, PathId, require
from ..errors import CONFLICT
from ..schemas import Page

router = APIRouter(tags=["账号与权限"], dependencies=[require(note="账号与 API 密钥由管理员管理。")])
_ROLE_DOC = ("role：admin 管理员、broker 技术经理人、enterprise 企业用户（须 enterprise_id）、"
             "institution 高校/院所用户（须 institution_id）。")


@router.get("/users", response_model=Page[users.UserOut], summary="用户列表")
def list_users(db: DB, role: str | None = Query(None, pattern="^(" + "|".join(ROLES) + ")$"),
               offset: Offset = 0, limit: Limit = 50):
    total, items = users.list_users(db, role, offset, limit)
    return {"total": total, "offset": offset, "limit": limit, "items": items}


@router.post("/users", responses=CONFLICT,
             response_model=users.UserOut, status_code=status.HTTP_201_CREATED, summary="新建用户",
             description=_ROLE_DOC + "用户名不区分大小写；密码 8–128 个字符，只保存 scrypt 哈希。")
def create_user(data: users.UserIn, db: DB):
    return users.create_user(db, data)


@router.get("/users/{user_id}", response_model=users.UserOut, summary="用户详情")
def get_user(user_id: PathId, db: DB):
    return users.get_user(db, user_id)


@router.patch("/users/{user_id}", responses=CONFLICT, response_model=users.UserOut, summary="修改用户（角色、绑定、停用、重置密码）",
              description=_ROLE_DOC + "改角色、绑定、停用或重置密码后，该用户已签发的访问令牌全部失效。"
                                       "不能停用或降级最后一个启用的管理员（409 last_admin）。用户不删除，只停用（active=false）。")
def update_user(user_id: PathId, data: users.UserUpdate, db: DB):
    return users.update_user(db, user_id, data)


@router.get("/users/{user_id}/api-keys", response_model=list[users.ApiKeyOut], summary="用户的 API 密钥")
def list_api_keys(user_id: PathId, db: DB):
    return users.list_api_keys(db, user_id)


@router.post("/users/{user_id}/api-keys", response_model=users.ApiKeyCreated, status_code=status.HTTP_201_CREATED,
             summary="为用户签发 API 密钥",
             description="返回的 key 只显示这一次（服务只保存其 SHA-256）。脚本用 `X-API-Key: <key>` 调用，权限与该用户相同。")
def create_api_key(user_id: PathId, data: users.ApiKeyIn, db: DB):
    row, key = users.create_api_key(db, user_id, data.name)
    return {**users.ApiKeyOut.model_validate(row).model_dump(), "key": key}


@router.delete("/users/{user_id}/api-keys/{key_id}", status_code=status.HTTP_204_NO_CONTENT, summary="吊销 API 密钥")
def revoke_api_key(user_id: PathId, key_id: PathId, db: DB):
    users.revoke_api_key(db, user_id, key_id)
