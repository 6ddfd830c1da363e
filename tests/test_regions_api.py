"""The region tree as data: seeded by the migration, read by every signed-in user, edited by admins, and
what progress reports roll up (on every backend)."""
from __future__ import annotations

from sqlalchemy import select

from matcher import region_edits, regions
from matcher.models import Target


def _names(client) -> list[str]:
    return [r["name"] for r in client.get("/regions").json()]


def _firm_and_school(client) -> tuple[int, int]:
    firm = client.post("/enterprises", json={"name": "南海新区测试企业", "region": "威海南海新区观海路"}).json()["id"]
    school = client.post("/institutions", json={"name": "区域测试大学"}).json()["id"]
    return firm, school


def _project(client, firm: int, school: int, **extra) -> dict:
    r = client.post("/projects", json={"enterprise_id": firm, "institution_id": school, "title": "区域测试项目",
                                       "contract_type": "技术开发", "signed_date": "2025-03-01", **extra})
    assert r.status_code == 201, r.text
    return r.json()


def _progress(client, region: str) -> dict:
    r = client.get("/targets/progress", params={"region": region, "year": 2025, "as_of": "2025-12-31"})
    assert r.status_code == 200, r.text
    return r.json()


def test_the_migration_seeds_the_tree_the_code_used_to_hold(ctx, accounts):
    with ctx.sessions() as s:
        assert regions.load_tree(s) == regions.DEFAULT
    # Any signed-in user reads it: top-level first, each region followed by its subtree.
    r = accounts.client("broker").get("/regions")
    assert r.status_code == 200
    rows = {row["name"]: row for row in r.json()}
    assert r.json()[0] == {"name": "山东省", "parent": None, "aliases": [],
                           "children": ["威海市", "济南市", "烟台市", "青岛市"]}
    assert rows["文登区"] == {"name": "文登区", "parent": "威海市", "aliases": ["文登"], "children": []}
    assert rows["威海高区"]["aliases"] == ["高区", "高技术产业开发区"]
    assert accounts.client(None).get("/regions").json()["code"] == "not_authenticated"


def test_only_admins_change_regions(accounts):
    broker = accounts.client("broker")
    for method, path in (("POST", "/regions"), ("PATCH", "/regions/文登区"), ("DELETE", "/regions/文登区")):
        r = broker.request(method, path, json={"name": "经纪人新区", "parent": "威海市"})
        assert r.status_code == 403 and r.json()["code"] == "forbidden", (method, r.text)
    assert "经纪人新区" not in _names(broker)


def test_a_new_region_counts_in_its_city_and_names_firms_by_alias(client):
    r = client.post("/regions", json={"name": "威海南海新区", "parent": "威海市", "aliases": ["南海新区", "南海新区"]})
    assert r.status_code == 201, r.text
    assert r.json() == {"name": "威海南海新区", "parent": "威海市", "aliases": ["南海新区"], "children": []}
    # A project without a region takes its firm's: the new region, named by its full name in the location.
    firm, school = _firm_and_school(client)
    assert _project(client, firm, school)["region"] == "威海南海新区"
    city = _progress(client, "威海市")
    assert "威海南海新区" in city["regions_counted"] and city["signed"] == 1
    assert _progress(client, "山东省")["signed"] == 1
    assert _progress(client, "文登区")["signed"] == 0
    # An alias alone in a location is enough.
    other = client.post("/enterprises", json={"name": "别名测试企业", "region": "南海新区某街道"}).json()["id"]
    assert _project(client, other, school, title="别名项目")["region"] == "威海南海新区"


def test_bad_regions_are_refused_with_reasons(client):
    cases = [
        ({"name": "文登区", "parent": "威海市"}, 409, "region_name_taken"),       # an existing name
        ({"name": "新文登", "aliases": ["文登"]}, 409, "region_name_taken"),      # another region's alias
        ({"name": "高区"}, 409, "region_name_taken"),                             # a name that is an alias
        ({"name": "某新区", "parent": "不存在市"}, 422, "unknown_parent"),
        ({"name": "某新区", "aliases": ["某新区"]}, 422, "alias_is_name"),
        ({"name": "  "}, 422, "invalid_input"),
        ({"name": "某新区", "colour": "红"}, 422, "invalid_input"),
    ]
    for body, status, code in cases:
        r = client.post("/regions", json=body)
        assert (r.status_code, r.json()["code"]) == (status, code), (body, r.text)
        assert r.json()["message"], body
    assert "某新区" not in _names(client)


def test_cycles_are_refused(client):
    for region, parent in (("威海市", "文登区"), ("山东省", "威海市"), ("威海市", "威海市")):
        r = client.patch(f"/regions/{region}", json={"parent": parent})
        assert r.status_code == 422 and r.json()["code"] == "region_cycle", r.text
        assert "下级" in r.json()["message"]
    rows = {row["name"]: row for row in client.get("/regions").json()}
    assert rows["威海市"]["parent"] == "山东省" and rows["山东省"]["parent"] is None


def test_moving_a_region_moves_its_roll_up(client):
    firm, school = _firm_and_school(client)
    client.post("/regions", json={"name": "威海南海新区", "parent": "威海市"})
    _project(client, firm, school)
    r = client.patch("/regions/威海南海新区", json={"parent": "烟台市"})
    assert r.status_code == 200 and r.json()["parent"] == "烟台市"
    assert _progress(client, "威海市")["signed"] == 0
    assert _progress(client, "烟台市")["signed"] == 1
    # null makes it top-level: no longer under 山东省 either.
    assert client.patch("/regions/威海南海新区", json={"parent": None}).json()["parent"] is None
    assert _progress(client, "山东省")["signed"] == 0


def test_renaming_carries_targets_and_projects_along(client, ctx):
    firm, school = _firm_and_school(client)
    project = _project(client, firm, school, region="文登区")
    assert client.post("/targets", json={"region": "文登区", "year_start": 2025, "year_end": 2025,
                                         "count": 10}).status_code == 201
    r = client.patch("/regions/文登区", json={"name": "文登新区", "aliases": ["文登", "文城"]})
    assert r.status_code == 200, r.text
    assert r.json() == {"name": "文登新区", "parent": "威海市", "aliases": ["文登", "文城"], "children": []}
    assert client.get(f"/projects/{project['id']}").json()["region"] == "文登新区"
    report = _progress(client, "文登新区")
    assert (report["target"], report["signed"]) == (10, 1)
    assert _progress(client, "威海市")["signed"] == 1
    assert client.patch("/regions/文登区", json={"aliases": []}).status_code == 404
    with ctx.sessions() as s:
        assert s.scalar(select(Target.region)) == "文登新区"


def test_deleting_refuses_parents_and_regions_in_use(client):
    r = client.delete("/regions/威海市")
    assert r.status_code == 409 and r.json()["code"] == "region_has_children"
    assert "文登区" in r.json()["message"] and "文登区" in r.json()["details"]["children"]
    client.post("/targets", json={"region": "乳山市", "year_start": 2025, "year_end": 2025, "count": 3})
    r = client.delete("/regions/乳山市")
    assert r.status_code == 409 and r.json()["code"] == "region_in_use"
    assert "目标" in r.json()["message"] and r.json()["details"] == {"targets": 1, "projects": 0}
    assert client.delete("/regions/荣成市").status_code == 204
    assert "荣成市" not in _names(client)
    assert client.delete("/regions/荣成市").json()["code"] == "region_not_found"


def test_region_changes_are_audited(client):
    # Each step is checked: a failed write leaves no entry, and the answer says why (a PostgreSQL run once
    # saw no entries at all and could not tell which step had failed).
    r = client.post("/regions", json={"name": "威海南海新区", "parent": "威海市"})
    assert r.status_code == 201, r.text
    r = client.patch("/regions/威海南海新区", json={"aliases": ["南海"]})
    assert r.status_code == 200, r.text
    r = client.delete("/regions/威海南海新区")
    assert r.status_code == 204, r.text
    page = client.get("/audit", params={"entity": "region"}).json()
    entries = page["items"]
    assert [e["action"] for e in entries] == ["delete", "update", "create"], page
    assert entries[2]["changes"]["name"] == {"before": None, "after": "威海南海新区"}
    assert entries[1]["changes"]["aliases"] == {"before": [], "after": ["南海"]}
    assert entries[1]["via"] == "PATCH /regions/威海南海新区" and entries[1]["actor_role"] == "admin"


def test_a_session_sees_its_own_edits_and_the_next_sees_others(ctx):
    with ctx.sessions() as s, ctx.sessions() as other:
        assert "荣成市" in regions.regions_within("威海市", other)  # other has now read the tree once
        region_edits.create_region(s, region_edits.RegionIn(name="荣成石岛", parent="荣成市"))
        assert regions.region_of("荣成石岛管理区", s) == "荣成石岛"
        assert regions.regions_within("荣成市", s) == {"荣成市", "荣成石岛"}
        # A session keeps the tree it first read (one request, one consistent tree) ...
        assert regions.regions_within("荣成市", other) == {"荣成市"}
    # ... and the next one reads the committed change.
    with ctx.sessions() as s:
        assert "荣成石岛" in regions.regions_within("山东省", s)
    # Without a database, the seed tree.
    assert regions.region_of("文登区龙山街道") == "文登区" and regions.region_of(None) == regions.UNKNOWN_REGION
