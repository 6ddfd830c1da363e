"""The region tree progress reports roll up: everyone reads it, admins change it."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, status

from matcher import region_edits
from matcher.region_edits import RegionIn, RegionOut, RegionUpdate

from ..deps import DB, EVERYONE, require
from ..errors import CONFLICT

router = APIRouter(tags=["区域"])
_WRITE = [require(note="区域树由科技局管理员维护；目标与进度报告按它把下级区域汇总到上级。")]
RegionPath = Annotated[str, Path(min_length=1, max_length=100, description="区域名称，如 文登区")]


@router.get("/regions", response_model=list[RegionOut], summary="区域树",
            description="全部区域：顶级区域在前，每个区域之后紧跟它的下级（按名称排序）；"
                        "aliases 是地址中的其他写法（如 文登 → 文登区）。",
            dependencies=[require(*EVERYONE)])
def list_regions(db: DB):
    return region_edits.region_tree(db)


@router.post("/regions", responses=CONFLICT, response_model=RegionOut, status_code=status.HTTP_201_CREATED,
             summary="新增区域", description="parent 为上级区域名称（须已存在；不填即顶级）。名称和别名不能与已有的重复。",
             dependencies=_WRITE)
def create_region(data: RegionIn, db: DB):
    return region_edits.describe(db, region_edits.create_region(db, data))


@router.patch("/regions/{name}", responses=CONFLICT, response_model=RegionOut, summary="修改区域",
              description="可改名称、上级（null 为顶级）和别名。不能移到自身或其下级之下（422 region_cycle）。"
                          "改名时，用旧名称的目标和合作项目一并改到新名称。",
              dependencies=_WRITE)
def update_region(name: RegionPath, data: RegionUpdate, db: DB):
    return region_edits.describe(db, region_edits.update_region(db, name, data))


@router.delete("/regions/{name}", responses=CONFLICT, status_code=status.HTTP_204_NO_CONTENT, summary="删除区域",
               description="仍有下级区域（region_has_children）或仍有目标、合作项目计入该区域（region_in_use）时返回 409。",
               dependencies=_WRITE)
def delete_region(name: RegionPath, db: DB):
    region_edits.delete_region(db, name)
