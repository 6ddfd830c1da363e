"""Demo accounts (演示账号) the seed creates, one per role, so a first run can be tried at once.

Their passwords are public (README, seed output): they are for a demo
database only. Loading the seed again never resets a password a person has
changed since, and never re-enables an account an admin switched off.
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from .accounts.passwords import hash_password
from .models import Enterprise, Institution, User


@dataclass(frozen=True)
class DemoAccount:
    username: str
    password: str
    role: str
    display_name: str
    enterprise: str | None = None
    institution: str | None = None


DEMO_ACCOUNTS = (
    DemoAccount("admin", "admin-demo", "admin", "文登区科技局管理员"),
    DemoAccount("broker", "broker-demo", "broker", "王晓丽"),
    DemoAccount("tianrun", "firm-demo", "enterprise", "天润工业（演示）", enterprise="天润工业技术股份有限公司"),
    DemoAccount("jlu-bionic", "inst-demo", "institution", "吉林大学威海仿生研究院（演示）",
                institution="吉林大学威海仿生研究院"),
)


def load_demo_accounts(session: Session) -> list[tuple[DemoAccount, str]]:
    """Create the missing demo accounts (committed); (account, "created" | "exists" | "skipped: why") each."""
    out = []
    for account in DEMO_ACCOUNTS:
        if session.scalar(select(User.id).where(User.username == account.username)) is not None:
            out.append((account, "exists"))
            continue
        enterprise_id = institution_id = None
        if account.enterprise:
            enterprise_id = session.scalar(select(Enterprise.id).where(Enterprise.name == account.enterprise))
            if enterprise_id is None:
                out.append((account, f"skipped: 找不到企业「{account.enterprise}」"))
                continue
        if account.institution:
            institution_id = session.scalar(select(Institution.id).where(Institution.name == account.institution))
            if institution_id is None:
                out.append((account, f"skipped: 找不到单位「{account.institution}」"))
                continue
        session.add(User(username=account.username, display_name=account.display_name, role=account.role,
                         enterprise_id=enterprise_id, institution_id=institution_id,
                         password_hash=hash_password(account.password), active=True, token_version=1))
        out.append((account, "created"))
    session.commit()
    return out
