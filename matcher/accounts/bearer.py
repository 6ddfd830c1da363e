"""Signed access tokens (JWT, HS256) and API keys: issue, and turn back into a user."""
from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

import jwt
from sqlalchemy import select
from sqlalchemy.orm import Session

from ..errors import DomainError
from ..models import ApiKey, User, utcnow

_ALGORITHM = "HS256"
API_KEY_PREFIX = "cxy_"


class NotAuthenticated(DomainError):
    """No usable credentials (401)."""

    status = 401

    def __init__(self, message: str = "请先登录：缺少或无效的访问令牌"):
        super().__init__("not_authenticated", message)
        # RFC 6750: a 401 for a bearer-protected resource names the scheme.
        self.headers = {"WWW-Authenticate": "Bearer"}


def issue_token(user: User, key: str, ttl_minutes: int) -> tuple[str, int]:
    """A signed token for ``user`` and its lifetime in seconds."""
    now = utcnow()
    ttl = timedelta(minutes=ttl_minutes)
    claims = {"sub": str(user.id), "tv": user.token_version, "iat": now, "exp": now + ttl}
    return jwt.encode(claims, key, algorithm=_ALGORITHM), int(ttl.total_seconds())


def user_from_token(session: Session, token: str, key: str) -> User:
    """The active user a token was issued to; 401 if forged, expired, revoked or the user is off."""
    try:
        claims = jwt.decode(token, key, algorithms=[_ALGORITHM], options={"require": ["exp", "sub", "tv"]})
        user_id = int(claims["sub"])
    except jwt.ExpiredSignatureError:
        raise NotAuthenticated("登录已过期，请重新登录") from None
    except (jwt.InvalidTokenError, ValueError, TypeError):
        raise NotAuthenticated("访问令牌无效，请重新登录") from None
    user = session.get(User, user_id)
    if user is None or not user.active or user.token_version != claims["tv"]:
        raise NotAuthenticated("访问令牌已失效（账号已停用或密码、角色已变更），请重新登录")
    return user


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_api_key() -> tuple[str, str, str]:
    """(the key to hand out once, its display prefix, its SHA-256 to store)."""
    key = API_KEY_PREFIX + secrets.token_urlsafe(32)
    return key, key[: len(API_KEY_PREFIX) + 6], _digest(key)


def user_from_api_key(session: Session, key: str) -> User:
    """The active user an unrevoked API key belongs to, else 401.

    Keys are random 256-bit strings, so a plain SHA-256 lookup is enough (a slow
    hash protects guessable secrets like passwords, not these).
    """
    row = session.scalar(select(ApiKey).where(ApiKey.key_hash == _digest(key)))
    if row is None or row.revoked_at is not None or not row.user.active:
        raise NotAuthenticated("API 密钥无效或已吊销")
    return row.user
