"""Regions as a tree (district within city within province), for target roll-ups."""
from __future__ import annotations

# Children of each region. A city's progress counts its districts' projects.
REGION_TREE: dict[str, tuple[str, ...]] = {
    "山东省": ("威海市", "烟台市", "青岛市", "济南市"),
    "威海市": ("环翠区", "文登区", "荣成市", "乳山市", "威海高区", "威海经区", "威海临港区"),
}
UNKNOWN_REGION = "未知"
_ALIASES = {"文登": "文登区", "高区": "威海高区", "高技术产业开发区": "威海高区", "经区": "威海经区",
            "经济技术开发区": "威海经区", "临港": "威海临港区", "环翠": "环翠区", "荣成": "荣成市", "乳山": "乳山市"}


def regions_within(region: str) -> set[str]:
    """``region`` and every region below it in the tree."""
    out, todo = set(), [region]
    while todo:
        r = todo.pop()
        if r not in out:
            out.add(r)
            todo.extend(REGION_TREE.get(r, ()))
    return out


def district_of(location: str | None) -> str | None:
    """The smallest known region named in a free-text location ("文登区龙山街道" → "文登区")."""
    if not location:
        return None
    leaves = sorted({c for kids in REGION_TREE.values() for c in kids} | set(REGION_TREE), key=len, reverse=True)
    children = [r for r in leaves if r not in REGION_TREE]
    for name in children + [r for r in leaves if r in REGION_TREE]:
        if name in location:
            return name
    for alias, name in _ALIASES.items():
        if alias in location:
            return name
    return location


def region_of(location: str | None) -> str:
    """The region a firm's location counts toward (a project's default region; a pairing's region)."""
    return district_of(location) or UNKNOWN_REGION


def known_regions() -> list[str]:
    return sorted({c for kids in REGION_TREE.values() for c in kids} | set(REGION_TREE))
