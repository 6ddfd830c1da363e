"""Who may see and change which record: the rules, in one place, independent of HTTP.

A :class:`Viewer` is the person behind a request. Brokers and admins ("staff")
see everything. Enterprise users act for one enterprise, institution users for
one institution. A need marked brokers-only (``visibility == "brokers"``) is
seen by staff and by the enterprise that posted it, by nobody else, on any
route. A record a viewer may not see answers 404, exactly as a missing one
does, so its existence does not leak either; a record a viewer may see but not
change answers 403.
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import or_
from sqlalchemy.orm import Session

from .errors import DomainError, NotFound
from .models import Need, Outcome, User
from .records import get_need, get_outcome

ADMIN, BROKER, ENTERPRISE, INSTITUTION = "admin", "broker", "enterprise", "institution"
ROLES = (ADMIN, BROKER, ENTERPRISE, INSTITUTION)
ROLE_LABELS = {ADMIN: "管理员", BROKER: "技术经理人", ENTERPRISE: "企业用户", INSTITUTION: "高校/院所用户"}
STAFF = frozenset({ADMIN, BROKER})


class Forbidden(DomainError):
    """The viewer is known but may not do this (403)."""

    status = 403

    def __init__(self, message: str, code: str = "forbidden", details: object = None):
        super().__init__(code, message, details=details)


@dataclass(frozen=True)
class Viewer:
    """The person a request acts for (a snapshot of the user row)."""

    user_id: int | None
    username: str
    role: str
    display_name: str
    enterprise_id: int | None = None
    institution_id: int | None = None

    @property
    def is_staff(self) -> bool:
        return self.role in STAFF

    @classmethod
    def of(cls, user: User) -> "Viewer":
        """The viewer a user row stands for."""
        return cls(user.id, user.username, user.role, user.display_name, user.enterprise_id, user.institution_id)


def sees_everything(viewer: Viewer | None) -> bool:
    """Staff, and internal callers (``None``: CLI, evaluation, the event planner)."""
    return viewer is None or viewer.is_staff


# -- needs -------------------------------------------------------------------
def need_filters(viewer: Viewer | None) -> list:
    """WHERE clauses limiting a Need query to what ``viewer`` may see."""
    if sees_everything(viewer):
        return []
    if viewer.role == ENTERPRISE and viewer.enterprise_id is not None:
        return [or_(Need.visibility != "brokers", Need.enterprise_id == viewer.enterprise_id)]
    return [Need.visibility != "brokers"]


def need_scope(viewer: Viewer | None) -> tuple:
    """What the needs ``viewer`` may see depend on: viewers of equal scope see the same needs."""
    if sees_everything(viewer):
        return ("all",)
    if viewer.role == ENTERPRISE and viewer.enterprise_id is not None:
        return (ENTERPRISE, viewer.enterprise_id)
    return ("public",)


def may_see_need(viewer: Viewer | None, need: Need) -> bool:
    """Whether ``viewer`` may see ``need`` (see the module docstring)."""
    if sees_everything(viewer) or need.visibility != "brokers":
        return True
    return viewer.role == ENTERPRISE and need.enterprise_id == viewer.enterprise_id


def may_see(viewer: Viewer | None, record) -> bool:
    """Whether ``viewer`` may see a need or an outcome (every live outcome is public)."""
    return may_see_need(viewer, record) if isinstance(record, Need) else True


def readable_need(session: Session, viewer: Viewer | None, need_id: int) -> Need:
    """The need, or 404 when it does not exist or ``viewer`` may not see it."""
    need = get_need(session, need_id)
    if not may_see_need(viewer, need):
        raise NotFound("need_not_found", f"需求 {need_id} 不存在或已删除")
    return need


def check_enterprise(viewer: Viewer | None, enterprise_id: int | None) -> None:
    """An enterprise user may act only for their own enterprise."""
    if viewer is not None and viewer.role == ENTERPRISE and enterprise_id != viewer.enterprise_id:
        raise Forbidden("企业用户只能创建和修改本企业的需求")


def editable_need(session: Session, viewer: Viewer | None, need_id: int) -> Need:
    """The need if ``viewer`` may change it: 404 if unseen, 403 if seen but someone else's."""
    need = readable_need(session, viewer, need_id)
    if not sees_everything(viewer):
        if viewer.role != ENTERPRISE:
            raise Forbidden("只有发布需求的企业、技术经理人和管理员可以修改需求")
        check_enterprise(viewer, need.enterprise_id)
    return need


def matchable_need(session: Session, viewer: Viewer | None, need_id: int) -> Need:
    """The need if ``viewer`` may see its matches (staff, or its own enterprise)."""
    need = readable_need(session, viewer, need_id)
    if not sees_everything(viewer) and not (viewer.role == ENTERPRISE and need.enterprise_id == viewer.enterprise_id):
        raise Forbidden("企业用户只能查看本企业需求的匹配结果")
    return need


# -- outcomes ----------------------------------------------------------------
def check_institution(viewer: Viewer | None, institution_id: int | None) -> None:
    """An institution user may act only for their own institution."""
    if viewer is not None and viewer.role == INSTITUTION and institution_id != viewer.institution_id:
        raise Forbidden("高校/院所用户只能创建、导入和修改本单位的成果")


def editable_outcome(session: Session, viewer: Viewer | None, outcome_id: int) -> Outcome:
    """The outcome if ``viewer`` may change it (staff, or its own institution)."""
    outcome = get_outcome(session, outcome_id)
    if not sees_everything(viewer):
        if viewer.role != INSTITUTION:
            raise Forbidden("只有成果所属单位、技术经理人和管理员可以修改成果")
        check_institution(viewer, outcome.institution_id)
    return outcome


def matchable_outcome(session: Session, viewer: Viewer | None, outcome_id: int) -> Outcome:
    """The outcome if ``viewer`` may see its matches (staff, or its own institution)."""
    outcome = get_outcome(session, outcome_id)
    if not sees_everything(viewer) and not (viewer.role == INSTITUTION and outcome.institution_id == viewer.institution_id):
        raise Forbidden("高校/院所用户只能查看本单位成果的匹配结果")
    return outcome


# -- owners ------------------------------------------------------------------
def check_owner_edit(viewer: Viewer | None, kind: str, owner_id: int) -> None:
    """Staff edit any enterprise or institution; a party user only their own."""
    if sees_everything(viewer):
        return
    mine = viewer.enterprise_id if kind == "enterprise" else viewer.institution_id
    if viewer.role != kind or mine != owner_id:
        raise Forbidden("只能修改本单位的信息")
