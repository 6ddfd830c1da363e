"""Regions as a tree (district within city within province), for target roll-ups and a firm's region.

The tree is the ``regions`` table, which admins edit (``/regions``, :mod:`matcher.region_edits`);
migration 0004 seeds it with :data:`DEFAULT_TREE`. Every function takes the caller's ``session`` and
reads the table once per session (kept in ``session.info``, dropped when the session edits regions), so
each request sees the tree as committed when it started, in every worker, at the cost of one small
query per request. Without a session a function uses :data:`DEFAULT_TREE`, for code with no database.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from .models import Region

# The seed tree: children of each region. A city's progress counts its districts' projects.
DEFAULT_TREE: dict[str, tuple[str, ...]] = {
    "山东省": ("威海市", "烟台市", "青岛市", "济南市"),
    "威海市": ("环翠区", "文登区", "荣成市", "乳山市", "威海高区", "威海经区", "威海临港区"),
}
DEFAULT_ALIASES: dict[str, str] = {
    "文登": "文登区", "高区": "威海高区", "高技术产业开发区": "威海高区", "经区": "威海经区",
    "经济技术开发区": "威海经区", "临港": "威海临港区", "环翠": "环翠区", "荣成": "荣成市", "乳山": "乳山市",
}
UNKNOWN_REGION = "未知"
_CACHE_KEY = "region_tree"


@dataclass(frozen=True)
class RegionTree:
    """One snapshot of the tree: each region's parent, children and the aliases that name it."""

    parents: dict[str, str | None]
    aliases: dict[str, str] = field(default_factory=dict)  # alias → region

    @classmethod
    def of(cls, children: dict[str, tuple[str, ...]], aliases: dict[str, str]) -> "RegionTree":
        """A tree given as parent → children (and alias → region)."""
        parents: dict[str, str | None] = {name: None for name in children}
        for parent, kids in children.items():
            for kid in kids:
                parents[kid] = parent
        return cls(parents, dict(aliases))

    def children(self, region: str) -> list[str]:
        """The regions directly below ``region``."""
        return [name for name, parent in self.parents.items() if parent == region]

    def within(self, region: str) -> set[str]:
        """``region`` and every region below it (a name the tree does not know stands for itself)."""
        below: dict[str, list[str]] = {}
        for name, parent in self.parents.items():
            if parent is not None:
                below.setdefault(parent, []).append(name)
        out, todo = set(), [region]
        while todo:
            r = todo.pop()
            if r not in out:
                out.add(r)
                todo.extend(below.get(r, ()))
        return out

    def district_of(self, location: str | None) -> str | None:
        """The smallest region named in a free-text location, else an alias's region, else the text itself."""
        if not location:
            return None
        has_children = {p for p in self.parents.values() if p is not None}
        names = sorted(self.parents, key=len, reverse=True)
        # Leaves first: "威海市文登区" is in 文登区, not merely in 威海市.
        for name in [n for n in names if n not in has_children] + [n for n in names if n in has_children]:
            if name in location:
                return name
        for alias in sorted(self.aliases, key=lambda a: (-len(a), a)):
            if alias in location:
                return self.aliases[alias]
        return location


DEFAULT = RegionTree.of(DEFAULT_TREE, DEFAULT_ALIASES)


def load_tree(session: Session) -> RegionTree:
    """The tree as stored, read fresh from the database."""
    rows = session.execute(select(Region.id, Region.name, Region.parent_id, Region.aliases)).all()
    names = {row.id: row.name for row in rows}
    return RegionTree({row.name: names.get(row.parent_id) for row in rows},
                      {alias: row.name for row in rows for alias in (row.aliases or ())})


def tree(session: Session | None) -> RegionTree:
    """The tree this session sees: read once per session, or the seed tree without one."""
    if session is None:
        return DEFAULT
    cached = session.info.get(_CACHE_KEY)
    if cached is None:
        cached = session.info[_CACHE_KEY] = load_tree(session)
    return cached


def forget(session: Session) -> None:
    """Drop the session's copy of the tree (after it changed regions)."""
    session.info.pop(_CACHE_KEY, None)


def regions_within(region: str, session: Session | None = None) -> set[str]:
    """``region`` and every region below it in the tree."""
    return tree(session).within(region)


def district_of(location: str | None, session: Session | None = None) -> str | None:
    """The smallest known region named in a free-text location ("文登区龙山街道" → "文登区")."""
    return tree(session).district_of(location)


def region_of(location: str | None, session: Session | None = None) -> str:
    """The region a firm's location counts toward (a project's default region; a pairing's region)."""
    return district_of(location, session) or UNKNOWN_REGION


def known_regions(session: Session | None = None) -> list[str]:
    """Every region of the tree, by name."""
    return sorted(tree(session).parents)
