"""Signed cooperation projects (合作项目)."""
from __future__ import annotations

from datetime import date

from fastapi import APIRouter, Query, status
from pydantic import BaseModel

from matcher import projects, records
from matcher.models import Project

from ..deps import DB, Limit, Offset, PathId, STAFF, require
from ..schemas import Page, ProjectOut

router = APIRouter(tags=["合作项目"], dependencies=[require(*STAFF)])


class LandedIn(BaseModel):
    landed_date: date | None = None


@router.get("/projects", response_model=Page[ProjectOut], summary="合作项目列表")
def list_projects(db: DB, region: str | None = Query(None, max_length=100), offset: Offset = 0,
                  limit: Limit = 50):
    total, items = records.list_records(db, Project, offset=offset, limit=limit, region=region)
    return {"total": total, "offset": offset, "limit": limit, "items": items}


@router.post("/projects", response_model=ProjectOut, status_code=status.HTTP_201_CREATED, summary="录入合作项目",
             description="系统外达成的合作也计入目标。")
def create_project(data: projects.ProjectIn, db: DB):
    return projects.create_project(db, data)


@router.get("/projects/{project_id}", response_model=ProjectOut, summary="合作项目详情")
def get_project(project_id: PathId, db: DB):
    return projects.get_project(db, project_id)


@router.post("/projects/{project_id}/landed", response_model=ProjectOut, summary="标记项目已落地")
def mark_landed(project_id: PathId, db: DB, body: LandedIn | None = None):
    return projects.mark_landed(db, project_id, body.landed_date if body else None)
