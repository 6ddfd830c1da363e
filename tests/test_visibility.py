"""Enterprise and institution users act only for their own party, and a brokers-only need never reaches them."""
from __future__ import annotations

import pytest

from .helpers import NEED_HEADER, OUTCOME_HEADER, OUTCOMES, by_title, load_small, upload, xlsx

MARKER = "XQ7"  # only the secret need's text contains it
SECRET = {"title": f"海马苗种保密工艺{MARKER}", "description": f"海马苗种成活率低，需要改进人工繁育与病害防治工艺（{MARKER}）。",
          "visibility": "brokers", "industry_chain": "海洋生物"}


@pytest.fixture
def world(client, accounts):
    """The small list, one brokers-only need of 银泽, a pairing on it, and users for both firms and 鲁东大学."""
    load_small(client)
    seahorse = by_title(client, "needs", "海马人工繁育技术")
    crankshaft = by_title(client, "needs", "曲轴表面耐磨强化")
    luda = by_title(client, "outcomes", "海马新种质创制及产业化应用")
    bionic = by_title(client, "outcomes", "激光仿生耦合耐磨抗疲劳技术")
    owner_id = seahorse["enterprise"]["id"]
    secret = client.post("/needs", json={"enterprise_id": owner_id, **SECRET})
    assert secret.status_code == 201, secret.text
    pairing = client.post("/pairings", json={"need_id": secret.json()["id"], "outcome_id": luda["id"]})
    assert pairing.status_code == 201, pairing.text
    return {
        "secret": secret.json(), "seahorse": seahorse, "crankshaft": crankshaft, "luda": luda, "bionic": bionic,
        "owner": accounts.client("enterprise", enterprise_id=owner_id),
        "other_firm": accounts.client("enterprise", enterprise_id=crankshaft["enterprise"]["id"]),
        "school": accounts.client("institution", institution_id=luda["institution"]["id"]),
        "broker": accounts.client("broker"),
    }


def _reads(w) -> list[tuple[str, str, dict]]:
    """Every read a party user may make that could carry need text."""
    secret_id = w["secret"]["id"]
    # The secret's own words (less the marker, which the answer echoes back in "query").
    search = {"text": (SECRET["title"] + SECRET["description"]).replace(MARKER, ""), "target": "needs", "k": 50}
    return [
        ("GET", "/needs", {"params": {"limit": 500}}),
        ("GET", "/needs", {"params": {"q": MARKER}}),
        ("GET", f"/needs/{secret_id}", {}),
        ("GET", f"/needs/{secret_id}/matches", {}),
        ("POST", "/search", {"json": search}),
        ("POST", "/search", {"json": {**search, "target": "outcomes"}}),
        ("GET", f"/outcomes/{w['luda']['id']}/matches", {"params": {"k": 100}}),
        ("GET", f"/outcomes/{w['luda']['id']}", {}),
        ("GET", "/outcomes", {}),
        ("GET", "/enterprises", {}),
        ("GET", "/pairings", {}),
        ("GET", "/pairings/export.xlsx", {}),
        ("GET", "/pairings/training-pairs", {}),
        ("GET", "/projects", {}),
        ("GET", "/events", {}),
        ("GET", "/audit", {}),
        ("GET", "/targets/progress", {"params": {"region": "文登区", "year": 2025}}),
    ]


@pytest.mark.parametrize("who", ["school", "other_firm"])
def test_a_brokers_only_need_never_leaks(world, who):
    c = world[who]
    reads = _reads(world)
    # Not vacuous: a broker making the same reads meets the secret.
    broker_hits = {(m, p) for m, p, kw in reads
                   if MARKER in world["broker"].request(m, p, **kw).content.decode("utf-8", "replace")}
    assert {("POST", "/search"), ("GET", f"/outcomes/{world['luda']['id']}/matches"),
            ("GET", f"/needs/{world['secret']['id']}"), ("GET", "/needs")} <= broker_hits
    for method, path, kwargs in reads:
        r = c.request(method, path, **kwargs)
        assert MARKER not in r.content.decode("utf-8", "replace"), (who, method, path)
        assert r.status_code in (200, 403, 404, 422), (who, method, path, r.status_code)
    assert c.get(f"/needs/{world['secret']['id']}").json()["code"] == "need_not_found"
    # The public need on the same topic is still found: the filter hides the secret, not the subject.
    found = c.post("/search", json={"text": "海马人工繁育", "target": "needs"}).json()["results"]
    assert world["seahorse"]["id"] in {m["need"]["id"] for m in found}
    assert c.patch(f"/needs/{world['secret']['id']}", json={"title": "改"}).status_code in (403, 404)


def test_school_matches_exclude_the_secret_but_brokers_see_it(world):
    path = f"/outcomes/{world['luda']['id']}/matches"
    seen = {m["need"]["id"] for m in world["school"].get(path, params={"k": 100}).json()["results"]}
    assert world["secret"]["id"] not in seen and world["seahorse"]["id"] in seen
    seen = {m["need"]["id"] for m in world["broker"].get(path, params={"k": 100}).json()["results"]}
    assert world["secret"]["id"] in seen


def test_the_owner_sees_and_matches_its_secret_need(world):
    owner, secret_id = world["owner"], world["secret"]["id"]
    assert owner.get(f"/needs/{secret_id}").status_code == 200
    assert secret_id in {n["id"] for n in owner.get("/needs").json()["items"]}
    r = owner.get(f"/needs/{secret_id}/matches", params={"k": 3})
    assert r.status_code == 200 and r.json()["results"][0]["outcome"]["id"] == world["luda"]["id"]
    found = owner.post("/search", json={"text": SECRET["title"].replace(MARKER, ""), "target": "needs"}).json()["results"]
    assert secret_id in {m["need"]["id"] for m in found}


def test_enterprise_users_change_only_their_own_needs(world):
    firm, own, other = world["other_firm"], world["crankshaft"], world["seahorse"]
    forbidden = [
        firm.patch(f"/needs/{other['id']}", json={"title": "别人的需求"}),
        firm.delete(f"/needs/{other['id']}"),
        firm.get(f"/needs/{other['id']}/matches"),
        firm.post("/needs", json={"enterprise_id": other["enterprise"]["id"], "title": "冒名需求"}),
        firm.patch(f"/needs/{own['id']}", json={"enterprise_id": other["enterprise"]["id"]}),
        firm.patch(f"/enterprises/{other['enterprise']['id']}", json={"contact": "冒名"}),
        firm.post("/outcomes", json={"institution_id": world["luda"]["institution"]["id"], "title": "企业冒充成果"}),
        firm.get(f"/outcomes/{world['luda']['id']}/matches"),
    ]
    for r in forbidden:
        assert r.status_code == 403 and r.json()["code"] == "forbidden" and r.json()["message"], r.text
    assert world["broker"].get(f"/needs/{other['id']}").json()["title"] == other["title"]  # nothing half-written
    assert firm.patch(f"/needs/{own['id']}", json={"budget_max": 120}).status_code == 200
    r = firm.post("/needs", json={"enterprise_id": own["enterprise"]["id"], "title": "曲轴圆角滚压强化"})
    assert r.status_code == 201
    assert firm.get(f"/needs/{own['id']}/matches", params={"k": 2}).status_code == 200
    assert firm.patch(f"/enterprises/{own['enterprise']['id']}", json={"contact": "李工"}).json()["contact"] == "李工"


def test_institution_users_change_only_their_own_outcomes(world):
    school, own, other = world["school"], world["luda"], world["bionic"]
    for r in (school.patch(f"/outcomes/{other['id']}", json={"title": "改名"}),
              school.delete(f"/outcomes/{other['id']}"),
              school.get(f"/outcomes/{other['id']}/matches"),
              school.post("/outcomes", json={"institution_id": other["institution"]["id"], "title": "冒名成果"}),
              school.patch(f"/outcomes/{own['id']}", json={"institution_id": other["institution"]["id"]}),
              school.get(f"/needs/{world['seahorse']['id']}/matches"),
              school.post("/needs", json={"enterprise_id": world["seahorse"]["enterprise"]["id"], "title": "冒名"})):
        assert r.status_code == 403 and r.json()["code"] == "forbidden", r.text
    assert school.patch(f"/outcomes/{own['id']}", json={"team": "海马团队"}).json()["team"] == "海马团队"
    assert school.get(f"/outcomes/{own['id']}/matches", params={"k": 2}).status_code == 200


def test_party_imports_only_their_own_rows(world):
    school = world["school"]
    rows = [OUTCOME_HEADER, [OUTCOMES[0][0], OUTCOMES[0][1], "海马良种选育新技术", "选育生长快的海马良种。", "海洋生物", "中试",
                             "技术转让", "20"],
            [OUTCOMES[1][0], OUTCOMES[1][1], "冒名导入的成果", "不应写入。", "新能源新材料", "中试", "技术转让", "20"]]
    r = upload(school, "outcomes", xlsx(rows))
    assert r.status_code == 422 and not r.json()["applied"]
    assert r.json()["rejected"] == [{"row": 3, "reason": "只能导入本单位（鲁东大学）的成果，本行单位为「山东大学（威海）」"}]
    r = upload(school, "outcomes", xlsx(rows), partial="true")
    assert r.json()["created"] == 1 and r.json()["created_owners"] == []
    assert world["broker"].get("/outcomes", params={"q": "冒名导入"}).json()["total"] == 0

    firm = world["other_firm"]
    rows = [NEED_HEADER, ["威海银泽生物科技有限公司", "文登区", "冒名导入的需求", "不应写入。", "海洋生物", "10", "技术转让"]]
    r = upload(firm, "needs", xlsx(rows))
    assert r.status_code == 422 and "只能导入本单位" in r.json()["rejected"][0]["reason"]
    assert upload(world["broker"], "needs", xlsx(rows)).status_code == 200  # brokers import for anyone
