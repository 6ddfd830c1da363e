"""Users and their API keys: create, change, sign in."""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..access import ADMIN, ENTERPRISE, INSTITUTION, ROLE_LABELS, ROLES
from ..errors import Conflict, DomainError, Invalid, NotFound
from ..models import ApiKey, User, utcnow
from ..records import get_enterprise, get_institution
from ..schemas import Id, Name, UtcDateTime
from .bearer import new_api_key
from .passwords import dummy_hash, hash_password, verify_password


def _username(value: str) -> str:
    # One spelling per person: "Admin" and "admin" are the same account.
    return value.strip().lower()


Username = Annotated[str, Field(min_length=3, max_length=50, pattern=r"^\s*[A-Za-z0-9_.@-]+\s*$",
                                description="3–50 个字母、数字或 _ . @ -"), AfterValidator(_username)]
Password = Annotated[str, Field(min_length=8, max_length=128, description="8–128 个字符")]
Role = Literal[ROLES]  # type: ignore[valid-type]
DisplayName = Annotated[Name, Field(max_length=100)]


class UserIn(BaseModel):
    """A new account; party users name the one enterprise or institution they speak for."""

    model_config = ConfigDict(extra="forbid")
    username: Username
    password: Password
    role: Role
    display_name: DisplayName | None = None
    enterprise_id: Id | None = None
    institution_id: Id | None = None


class UserUpdate(BaseModel):
    """Fields an admin may change; ``password`` resets it."""

    model_config = ConfigDict(extra="forbid")
    display_name: DisplayName | None = None
    role: Role | None = None
    enterprise_id: Id | None = None
    institution_id: Id | None = None
    active: bool | None = None
    password: Password | None = None


class PasswordChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    old_password: Annotated[str, Field(min_length=1, max_length=128)]
    new_password: Password

    @model_validator(mode="after")
    def _differs(self):
        if self.old_password == self.new_password:
            raise ValueError("新密码不能与原密码相同")
        return self


class ApiKeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: DisplayName


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    username: str
    display_name: str
    role: str
    role_label: str | None = None
    enterprise_id: int | None
    institution_id: int | None
    active: bool
    created_at: UtcDateTime
    last_login_at: UtcDateTime | None

    @model_validator(mode="after")
    def _label(self):
        self.role_label = ROLE_LABELS.get(self.role)
        return self


class ApiKeyOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    user_id: int
    name: str
    prefix: str
    created_at: UtcDateTime
    revoked_at: UtcDateTime | None


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="完整密钥，只显示这一次；请求时放在 X-API-Key 头或 Authorization: Bearer 中")


# -- users -------------------------------------------------------------------
def get_user(session: Session, user_id: int) -> User:
    """The user with this id, else 404 ``user_not_found``."""
    user = session.get(User, user_id)
    if user is None:
        raise NotFound("user_not_found", f"用户 {user_id} 不存在")
    return user


def find_user(session: Session, username: str) -> User | None:
    """The user with this name (any case), or None."""
    return session.scalar(select(User).where(User.username == _username(username)))


def _check_binding(session: Session, role: str, enterprise_id: int | None, institution_id: int | None) -> None:
    """Party users are bound to exactly one party of their kind; staff to none."""
    if role == ENTERPRISE:
        if enterprise_id is None or institution_id is not None:
            raise Invalid("invalid_binding", "企业用户须绑定一家企业（enterprise_id），且不能绑定高校/院所")
        get_enterprise(session, enterprise_id)
    elif role == INSTITUTION:
        if institution_id is None or enterprise_id is not None:
            raise Invalid("invalid_binding", "高校/院所用户须绑定一家高校/院所（institution_id），且不能绑定企业")
        get_institution(session, institution_id)
    elif enterprise_id is not None or institution_id is not None:
        raise Invalid("invalid_binding", "管理员和技术经理人不绑定企业或高校/院所")


def create_user(session: Session, data: UserIn) -> User:
    """Create an account (committed); the user name must be free."""
    _check_binding(session, data.role, data.enterprise_id, data.institution_id)
    user = User(username=data.username, display_name=data.display_name or data.username, role=data.role,
                enterprise_id=data.enterprise_id, institution_id=data.institution_id,
                password_hash=hash_password(data.password), active=True, token_version=1)
    session.add(user)
    try:
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        raise Conflict("username_taken", f"用户名「{data.username}」已被使用") from exc
    return user


def _active_admins(session: Session) -> int:
    return session.scalar(select(func.count(User.id)).where(User.role == ADMIN, User.active.is_(True))) or 0


def update_user(session: Session, user_id: int, data: UserUpdate) -> User:
    """Change an account (committed). A role, binding, status or password change ends its open sessions."""
    user = get_user(session, user_id)
    values = data.model_dump(exclude_unset=True)
    role = values.get("role") or user.role
    binding = {k: values.get(k, getattr(user, k)) for k in ("enterprise_id", "institution_id")}
    if role != user.role:
        # A new role starts from the bindings sent with it, never the old role's.
        binding = {k: values.get(k) for k in binding}
    _check_binding(session, role, **binding)
    was_admin = user.role == ADMIN and user.active
    revoke = False
    if values.get("display_name"):
        user.display_name = values["display_name"]
    if role != user.role or binding != {k: getattr(user, k) for k in binding}:
        user.role, user.enterprise_id, user.institution_id = role, binding["enterprise_id"], binding["institution_id"]
        revoke = True
    if values.get("active") is not None and values["active"] != user.active:
        user.active = values["active"]
        revoke = True
    if values.get("password"):
        user.password_hash = hash_password(values["password"])
        revoke = True
    if was_admin and not (user.role == ADMIN and user.active):
        session.flush()
        if _active_admins(session) == 0:
            session.rollback()
            raise Conflict("last_admin", "至少须保留一个启用的管理员账号")
    if revoke:
        user.token_version += 1
    session.commit()
    return user


def list_users(session: Session, role: str | None, offset: int, limit: int) -> tuple[int, list[User]]:
    """(total, one page of users), optionally of one role, by id."""
    stmt = select(User)
    if role:
        stmt = stmt.where(User.role == role)
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    return total, list(session.scalars(stmt.order_by(User.id).offset(offset).limit(limit)).unique())


# -- signing in --------------------------------------------------------------
class InvalidCredentials(DomainError):
    """A failed sign-in (401), worded the same whatever was wrong."""

    status = 401

    def __init__(self):
        super().__init__("invalid_credentials", "用户名或密码错误")
        self.headers = {"WWW-Authenticate": "Bearer"}


def authenticate(session: Session, username: str, password: str) -> User:
    """The active user with this name and password, else 401 (the same answer whatever was wrong)."""
    user = find_user(session, username) if len(username) <= 50 and len(password) <= 128 else None
    if user is None:
        verify_password(password[:128], dummy_hash())  # same cost as a real check: no user-name probing by timing
        raise InvalidCredentials()
    if not verify_password(password, user.password_hash) or not user.active:
        raise InvalidCredentials()
    user.last_login_at = utcnow()
    session.commit()
    return user


def change_password(session: Session, user: User, data: PasswordChange) -> User:
    """A user's own password change; ends every other session of theirs."""
    if not verify_password(data.old_password, user.password_hash):
        raise Invalid("wrong_password", "原密码不正确")
    user.password_hash = hash_password(data.new_password)
    user.token_version += 1
    session.commit()
    return user


# -- API keys ----------------------------------------------------------------
def create_api_key(session: Session, user_id: int, name: str) -> tuple[ApiKey, str]:
    """A new key for the user (committed) and the key itself, which is never shown again."""
    user = get_user(session, user_id)
    key, prefix, digest = new_api_key()
    row = ApiKey(user_id=user.id, name=name, prefix=prefix, key_hash=digest)
    session.add(row)
    session.commit()
    return row, key


def list_api_keys(session: Session, user_id: int) -> list[ApiKey]:
    """A user's keys, revoked ones included (never the keys themselves)."""
    get_user(session, user_id)
    return list(session.scalars(select(ApiKey).where(ApiKey.user_id == user_id).order_by(ApiKey.id)).unique())


def revoke_api_key(session: Session, user_id: int, key_id: int) -> ApiKey:
    """Revoke one of a user's keys (committed); revoking twice is harmless."""
    row = session.get(ApiKey, key_id)
    if row is None or row.user_id != user_id:
        raise NotFound("api_key_not_found", f"用户 {user_id} 没有编号为 {key_id} 的 API 密钥")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        session.commit()
    return row
