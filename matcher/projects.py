"""Signed cooperation projects: from a pairing, or entered directly."""
from __future__ import annotations

from datetime import date

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from .errors import Invalid, NotFound
from .models import Pairing, Project
from .records import get_enterprise, get_institution
from .regions import region_of
from .schemas import Id
from .vocab import COOPERATION_MODES


class ProjectTerms(BaseModel):
    """What signing adds to a pairing."""

    model_config = ConfigDict(extra="forbid")
    contract_type: str = Field(max_length=20)
    amount_wan: float | None = Field(default=None, ge=0, le=1_000_000)
    signed_date: date | None = None
    title: str | None = Field(default=None, max_length=500)
    region: str | None = Field(default=None, max_length=100)


class ProjectIn(ProjectTerms):
    """A project found outside the system; it counts toward the target too."""

    enterprise_id: Id
    institution_id: Id
    title: str = Field(min_length=1, max_length=500)
    signed_date: date
    industry_chain: str | None = Field(default=None, max_length=50)
    broker: str | None = Field(default=None, max_length=100)


def _check_terms(terms: ProjectTerms, today: date) -> None:
    if terms.contract_type not in COOPERATION_MODES:
        raise Invalid("invalid_contract_type", f"合同类型须为以下之一：{'、'.join(COOPERATION_MODES)}")
    if terms.signed_date and terms.signed_date > today:
        raise Invalid("future_signed_date", "签约日期不能晚于今天")


def create_project_for_pairing(session: Session, pairing: Pairing, terms: ProjectTerms, broker: str,
                               today: date | None = None) -> Project:
    """Record the project a signed pairing produced (added to the caller's transaction)."""
    today = today or date.today()
    _check_terms(terms, today)
    need = pairing.need
    project = Project(
        title=terms.title or (pairing.outcome.title if pairing.outcome else need.title),
        enterprise_id=need.enterprise_id,
        institution_id=pairing.institution_id,
        pairing_id=pairing.id,
        contract_type=terms.contract_type,
        amount_wan=terms.amount_wan,
        signed_date=terms.signed_date or today,
        region=terms.region or region_of(need.enterprise.region, session),
        industry_chain=need.industry_chain or (pairing.outcome.industry_chain if pairing.outcome else None),
        broker=pairing.broker or broker,
    )
    session.add(project)
    return project


def create_project(session: Session, data: ProjectIn, today: date | None = None) -> Project:
    """Record a directly entered project."""
    today = today or date.today()
    _check_terms(data, today)
    enterprise = get_enterprise(session, data.enterprise_id)
    get_institution(session, data.institution_id)
    project = Project(
        title=data.title, enterprise_id=data.enterprise_id, institution_id=data.institution_id,
        contract_type=data.contract_type, amount_wan=data.amount_wan, signed_date=data.signed_date,
        region=data.region or region_of(enterprise.region, session),
        industry_chain=data.industry_chain or enterprise.industry_chain, broker=data.broker,
    )
    session.add(project)
    session.commit()
    return project


def get_project(session: Session, project_id: int) -> Project:
    obj = session.get(Project, project_id)
    if obj is None:
        raise NotFound("project_not_found", f"项目 {project_id} 不存在")
    return obj


def mark_landed(session: Session, project_id: int, landed_date: date | None = None) -> Project:
    """Mark a project as in production (落地)."""
    project = get_project(session, project_id)
    project.landed = True
    project.landed_date = landed_date or date.today()
    session.commit()
    return project
