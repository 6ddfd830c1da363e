"""Enterprises (企业) and institutions (高校/院所)."""
from __future__ import annotations

from fastapi import APIRouter, Query, status

from matcher import access, records
from matcher.models import Enterprise, Institution
from matcher.schemas import (
    EnterpriseIn,
    EnterpriseOut,
    EnterpriseUpdate,
    InstitutionIn,
    InstitutionOut,
    InstitutionUpdate,
)

from ..deps import Actor, DB, EVERYONE, Limit, Offset, PathId, STAFF, require
from ..errors import CONFLICT
from ..schemas import Page

router = APIRouter()
_DIRECTORY = [require(*EVERYONE, note="企业与高校/院所名录（名称、地区、联系人）对已登录用户公开。")]
_STAFF = [require(*STAFF)]


@router.get("/enterprises", response_model=Page[EnterpriseOut], tags=["企业"], summary="企业列表", dependencies=_DIRECTORY)
def list_enterprises(db: DB, q: str | None = Query(None, max_length=100), offset: Offset = 0,
                     limit: Limit = 50):
    total, items = records.list_records(db, Enterprise, q=q, offset=offset, limit=limit)
    return {"total": total, "offset": offset, "limit": limit, "items": items}


@router.post("/enterprises", responses=CONFLICT,
             response_model=EnterpriseOut, status_code=status.HTTP_201_CREATED, tags=["企业"],
             summary="新建企业", dependencies=_STAFF)
def create_enterprise(data: EnterpriseIn, db: DB):
    return records.create_enterprise(db, data)


@router.get("/enterprises/{enterprise_id}", response_model=EnterpriseOut, tags=["企业"], summary="企业详情", dependencies=_DIRECTORY)
def get_enterprise(enterprise_id: PathId, db: DB):
    return records.get_enterprise(db, enterprise_id)


@router.patch("/enterprises/{enterprise_id}", responses=CONFLICT,
              response_model=EnterpriseOut, tags=["企业"], summary="修改企业",
              dependencies=[require(*STAFF, "enterprise", note="企业用户只能修改本企业的信息。")])
def update_enterprise(enterprise_id: PathId, data: EnterpriseUpdate, db: DB, actor: Actor):
    access.check_owner_edit(actor, "enterprise", enterprise_id)
    return records.update_enterprise(db, enterprise_id, data)


@router.delete("/enterprises/{enterprise_id}", responses=CONFLICT, status_code=status.HTTP_204_NO_CONTENT, tags=["企业"],
               summary="删除企业（名下无记录时）", dependencies=_STAFF)
def delete_enterprise(enterprise_id: PathId, db: DB):
    records.delete_owner(db, Enterprise, enterprise_id)


@router.get("/institutions", response_model=Page[InstitutionOut], tags=["高校/院所"], summary="高校/院所列表", dependencies=_DIRECTORY)
def list_institutions(db: DB, q: str | None = Query(None, max_length=100), offset: Offset = 0,
                      limit: Limit = 50):
    total, items = records.list_records(db, Institution, q=q, offset=offset, limit=limit)
    return {"total": total, "offset": offset, "limit": limit, "items": items}


@router.post("/institutions", responses=CONFLICT, response_model=InstitutionOut, status_code=status.HTTP_201_CREATED,
             tags=["高校/院所"], summary="新建高校/院所", dependencies=_STAFF)
def create_institution(data: InstitutionIn, db: DB):
    return records.create_institution(db, data)


@router.get("/institutions/{institution_id}", response_model=InstitutionOut, tags=["高校/院所"], summary="高校/院所详情", dependencies=_DIRECTORY)
def get_institution(institution_id: PathId, db: DB):
    return records.get_institution(db, institution_id)


@router.patch("/institutions/{institution_id}", responses=CONFLICT, response_model=InstitutionOut, tags=["高校/院所"],
              summary="修改高校/院所",
              dependencies=[require(*STAFF, "institution", note="高校/院所用户只能修改本单位的信息。")])
def update_institution(institution_id: PathId, data: InstitutionUpdate, db: DB, actor: Actor):
    access.check_owner_edit(actor, "institution", institution_id)
    return records.update_institution(db, institution_id, data)


@router.delete("/institutions/{institution_id}", responses=CONFLICT,
               status_code=status.HTTP_204_NO_CONTENT, tags=["高校/院所"],
               summary="删除高校/院所（名下无记录时）", dependencies=_STAFF)
def delete_institution(institution_id: PathId, db: DB):
    records.delete_owner(db, Institution, institution_id)
