"""Admins' changes to the region tree: add, rename, move, re-alias and remove regions.

Names and aliases share one namespace (a spelling in a location must mean one region). A region cannot
move below itself or its descendants, and cannot be removed while it has children or while targets or
projects count in it. A rename carries the targets and projects that named the old region along, in
the same transaction, so no report loses them.
"""
from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from . import regions
from .errors import Conflict, Invalid, NotFound
from .models import Project, Region, Target
from .schemas import Name

RegionName = Annotated[Name, Field(max_length=100, description="区域名称，如 文登区")]
Alias = Annotated[Name, Field(max_length=50)]


def _aliases(value: list[str] | None) -> list[str] | None:
    return None if value is None else list(dict.fromkeys(value))


Aliases = Annotated[list[Alias], Field(max_length=20, description="地址中的其他写法，如 文登（最多 20 个）"),
                    AfterValidator(_aliases)]


class RegionIn(BaseModel):
    """A new region: its name, the region it lies in (none for a top-level one) and other spellings."""

    model_config = ConfigDict(extra="forbid")
    name: RegionName
    parent: RegionName | None = None
    aliases: Aliases = Field(default_factory=list)


class RegionUpdate(BaseModel):
    """Fields to change; ``parent: null`` makes the region top-level, ``aliases: null`` keeps them."""

    model_config = ConfigDict(extra="forbid")
    name: RegionName | None = None
    parent: RegionName | None = None
    aliases: Aliases | None = None

    @model_validator(mode="after")
    def _name_not_null(self):
        if "name" in self.model_fields_set and self.name is None:
            raise ValueError("区域名称不能为空")
        return self


class RegionOut(BaseModel):
    name: str
    parent: str | None
    aliases: list[str]
    children: list[str]


def region_tree(session: Session) -> list[dict]:
    """Every region, top-level ones first and each followed by its subtree (children by name)."""
    tree = regions.load_tree(session)
    stored = {r.name: list(r.aliases or ()) for r in session.scalars(select(Region))}
    out: list[dict] = []

    def walk(name: str) -> None:
        kids = sorted(tree.children(name))
        out.append({"name": name, "parent": tree.parents[name], "aliases": stored[name], "children": kids})
        for kid in kids:
            walk(kid)

    for root in sorted(n for n, p in tree.parents.items() if p is None):
        walk(root)
    return out


def describe(session: Session, region: Region) -> dict:
    """One region as the API answers it."""
    children = session.scalars(select(Region.name).where(Region.parent_id == region.id).order_by(Region.name))
    parent = session.get(Region, region.parent_id) if region.parent_id else None
    return {"name": region.name, "parent": parent.name if parent else None, "aliases": list(region.aliases or ()),
            "children": list(children)}


def get_region(session: Session, name: str) -> Region:
    """The region called ``name``, else 404 ``region_not_found``."""
    region = session.scalar(select(Region).where(Region.name == name.strip()))
    if region is None:
        raise NotFound("region_not_found", f"区域「{name}」不存在")
    return region


def _parent(session: Session, name: str | None) -> Region | None:
    if name is None:
        return None
    parent = session.scalar(select(Region).where(Region.name == name))
    if parent is None:
        raise Invalid("unknown_parent", f"上级区域「{name}」不存在，请先添加它")
    return parent


def _check_spellings(session: Session, region: Region | None, name: str, aliases: list[str]) -> None:
    """Refuse a name or alias that already means another region (409 ``region_name_taken``)."""
    if name in aliases:
        raise Invalid("alias_is_name", f"别名「{name}」与区域名称相同")
    taken: dict[str, str] = {}
    for other in session.scalars(select(Region)):
        if region is not None and other.id == region.id:
            continue
        taken[other.name] = other.name
        for alias in other.aliases or ():
            taken[alias] = other.name
    for spelling in [name, *aliases]:
        if spelling in taken:
            owner = taken[spelling]
            what = "已有同名区域" if owner == spelling else f"已是区域「{owner}」的别名"
            raise Conflict("region_name_taken", f"「{spelling}」{what}", details={"spelling": spelling, "region": owner})


def _commit(session: Session) -> None:
    try:
        session.commit()
    except IntegrityError as exc:  # a concurrent edit took the name, or a renamed target met one of that name
        session.rollback()
        raise Conflict("region_conflict", "与现有区域或同名区域的目标冲突，请刷新后重试") from exc
    finally:
        regions.forget(session)


def create_region(session: Session, data: RegionIn) -> Region:
    """Add a region (committed) under an existing parent, or at the top."""
    _check_spellings(session, None, data.name, data.aliases)
    parent = _parent(session, data.parent)
    region = Region(name=data.name, parent_id=parent.id if parent else None, aliases=data.aliases)
    session.add(region)
    _commit(session)
    return region


def update_region(session: Session, name: str, data: RegionUpdate) -> Region:
    """Rename, move or re-alias a region (committed); a move below itself is a 422 ``region_cycle``."""
    region = get_region(session, name)
    values = data.model_dump(exclude_unset=True)
    new_name = values.get("name", region.name)
    aliases = values["aliases"] if values.get("aliases") is not None else list(region.aliases or ())
    _check_spellings(session, region, new_name, aliases)
    if "parent" in values:
        parent = _parent(session, values["parent"])
        if parent is not None and parent.name in regions.load_tree(session).within(region.name):
            raise Invalid("region_cycle", f"不能把「{region.name}」移到它自己或它的下级区域「{parent.name}」之下",
                          details={"region": region.name, "parent": parent.name})
        region.parent_id = parent.id if parent else None
    if new_name != region.name:
        # Targets and projects name their region: carry them to the new name (audited as their updates).
        for model in (Target, Project):
            for row in session.scalars(select(model).where(model.region == region.name)):
                row.region = new_name
        region.name = new_name
    region.aliases = aliases
    _commit(session)
    return region


def delete_region(session: Session, name: str) -> None:
    """Remove a region (committed); 409 while it has children or targets or projects count in it."""
    region = get_region(session, name)
    kids = list(session.scalars(select(Region.name).where(Region.parent_id == region.id).order_by(Region.name)))
    if kids:
        raise Conflict("region_has_children", f"「{region.name}」下还有区域：{'、'.join(kids)}，请先删除或移走它们",
                       details={"children": kids})
    targets = session.scalar(select(func.count(Target.id)).where(Target.region == region.name)) or 0
    projects = session.scalar(select(func.count(Project.id)).where(Project.region == region.name)) or 0
    if targets or projects:
        raise Conflict("region_in_use", f"「{region.name}」仍有 {targets} 个目标、{projects} 个合作项目，不能删除",
                       details={"targets": targets, "projects": projects})
    session.delete(region)
    _commit(session)

