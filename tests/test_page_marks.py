"""A write makes stale only the match pages that show it; every page served from memory is what ranking now gives."""
from __future__ import annotations

import json

from matcher.matching import PageRecipe, make_page
from matcher.page_marks import MAX_OWN_MARKS, NEED_FACTS, OUTCOME_FACTS, PageMarks
from matcher.schemas import MatchFilters

from .helpers import by_title, load_small


def test_marks_follow_what_each_change_shows():
    marks = PageMarks(version=3)
    assert marks.changed_at("needs", 1) == marks.changed_at("outcomes", 9) == 3
    marks.note([(4, "needs", 1)])
    # Need 1's own page and every outcome's page (they rank needs); need 2's page shows no need but itself.
    assert (marks.changed_at("needs", 1), marks.changed_at("needs", 2), marks.changed_at("outcomes", 9)) == (4, 3, 4)
    marks.note([(5, NEED_FACTS, 2), (6, OUTCOME_FACTS, 9)])
    assert (marks.changed_at("needs", 1), marks.changed_at("needs", 2)) == (4, 5)
    assert (marks.changed_at("outcomes", 9), marks.changed_at("outcomes", 8)) == (6, 4)
    marks.note([(7, "outcomes", 8)])
    assert marks.changed_at("needs", 2) == marks.changed_at("needs", 77) == 7  # every need's page ranks outcomes
    assert (marks.changed_at("outcomes", 8), marks.changed_at("outcomes", 9)) == (7, 6)
    marks.note([(8, "facts", 0)])
    assert {marks.changed_at(s, i) for s in ("needs", "outcomes") for i in (1, 2, 8, 9)} == {8}
    marks.note([(9, NEED_FACTS, 1)], everything=True)  # e.g. the tokenizer learned a term
    assert marks.changed_at("outcomes", 9) == marks.changed_at("needs", 2) == 9
    marks.note([(10, "some_new_side", 1)])  # a side this code does not know: assume the worst
    assert marks.changed_at("needs", 2) == 10
    marks.reset(11)
    assert marks.changed_at("outcomes", 1) == 11


def test_marks_stay_bounded_by_folding_into_the_floor():
    marks = PageMarks()
    marks.note([(n, NEED_FACTS, n) for n in range(1, MAX_OWN_MARKS + 2)])
    last = MAX_OWN_MARKS + 1
    assert marks.changed_at("needs", 1) == last  # folded: stale, never wrongly current
    assert len(marks._own["needs"]) == 0 and marks.changed_at("outcomes", 1) == 0


def _page(client, path):
    r = client.get(path)
    assert r.status_code == 200, r.text
    return r.content


def _fresh(ctx, side: str, record_id: int) -> bytes:
    with ctx.sessions() as s:
        return make_page(ctx, s, PageRecipe(side, record_id, 10, MatchFilters(), None))


def test_a_need_edit_or_a_pairing_leaves_other_needs_pages_served(client, ctx):
    load_small(client)
    seahorse = by_title(client, "needs", "海马人工繁育技术")
    crankshaft = by_title(client, "needs", "曲轴表面耐磨强化")
    laser = by_title(client, "outcomes", "激光仿生耦合耐磨抗疲劳技术")
    paths = {n["id"]: f"/needs/{n['id']}/matches" for n in (seahorse, crankshaft)}
    outcome_path = f"/outcomes/{laser['id']}/matches"
    for path in (*paths.values(), outcome_path):
        _page(client, path)

    def served_from_memory(path) -> bool:
        hits = ctx.pages.hits
        body = _page(client, path)
        return ctx.pages.hits == hits + 1, body

    # The firm rewrites its need (no new keyword): only its own page and the outcomes' pages are re-made.
    r = client.patch(f"/needs/{seahorse['id']}", json={"description": "海马苗种成活率低，需要病害防控与工厂化育苗方案。"})
    assert r.status_code == 200, r.text
    hit, body = served_from_memory(paths[crankshaft["id"]])
    assert hit and body == _fresh(ctx, "needs", crankshaft["id"])
    hit, body = served_from_memory(paths[seahorse["id"]])
    assert not hit and body == _fresh(ctx, "needs", seahorse["id"])
    assert not served_from_memory(outcome_path)[0]

    # A broker proposes a pairing: the two records' pages show it at once, the other need's page is kept.
    r = client.post("/pairings", json={"need_id": crankshaft["id"], "outcome_id": laser["id"], "broker": "张"})
    assert r.status_code == 201, r.text
    hit, body = served_from_memory(paths[seahorse["id"]])
    assert hit and body == _fresh(ctx, "needs", seahorse["id"])
    hit, body = served_from_memory(paths[crankshaft["id"]])
    assert not hit and [x["pairing"]["stage"] for x in json.loads(body)["results"] if x["pairing"]] == ["proposed"]
    hit, body = served_from_memory(outcome_path)
    assert not hit and [x["pairing"]["stage"] for x in json.loads(body)["results"] if x["pairing"]] == ["proposed"]

    # An outcome edit changes what every need's page ranks.
    assert client.patch(f"/outcomes/{laser['id']}", json={"title": "曲轴激光仿生强化"}).status_code == 200
    for need_id, path in paths.items():
        hit, body = served_from_memory(path)
        assert not hit and body == _fresh(ctx, "needs", need_id)


def test_a_need_teaching_the_tokenizer_a_term_makes_every_page_stale(client, ctx):
    load_small(client)
    seahorse = by_title(client, "needs", "海马人工繁育技术")
    crankshaft = by_title(client, "needs", "曲轴表面耐磨强化")
    path = f"/needs/{crankshaft['id']}/matches"
    _page(client, path)
    r = client.patch(f"/needs/{seahorse['id']}", json={"keywords": ["轴颈耐磨涂层"]})
    assert r.status_code == 200, r.text
    hits = ctx.pages.hits
    assert _page(client, path) == _fresh(ctx, "needs", crankshaft["id"]) and ctx.pages.hits == hits


def test_brokers_and_admins_share_a_needs_page(client, ctx, accounts):
    load_small(client)
    need = by_title(client, "needs", "曲轴表面耐磨强化")
    path = f"/needs/{need['id']}/matches"
    _page(client, path)
    broker = accounts.client("broker")
    hits = ctx.pages.hits
    assert _page(broker, path) == _page(client, path) and ctx.pages.hits == hits + 2


def test_the_warmer_makes_open_needs_pages_before_anyone_asks(client, ctx, accounts):
    from matcher.page_warmer import PageWarmer

    load_small(client)
    warmer = PageWarmer(ctx)
    assert warmer.warm_once() == 2  # at start: the default page of each open need, asked by nobody yet
    need = by_title(client, "needs", "曲轴表面耐磨强化")
    other_firm = by_title(client, "needs", "海马人工繁育技术")["enterprise"]["id"]
    path = f"/needs/{need['id']}/matches"
    hits = ctx.pages.hits
    assert _page(client, path) == _fresh(ctx, "needs", need["id"]) and ctx.pages.hits == hits + 1
    # A page made for nobody in particular is still only served to those who may open the need.
    assert accounts.client("enterprise", enterprise_id=other_firm).get(path).status_code == 403

    # A firm posts a need: its page is made after the write, before the broker opens it.
    new = client.post("/needs", json={"enterprise_id": need["enterprise"]["id"], "title": "海马养殖病害防控",
                                      "description": "需要海马苗种病害快速诊断与防控技术。"})
    assert new.status_code == 201, new.text
    assert warmer.warm_once() == 1  # the new need's page only: the others show no need but their own
    new_path = f"/needs/{new.json()['id']}/matches"
    hits = ctx.pages.hits
    assert _page(client, new_path) == _fresh(ctx, "needs", new.json()["id"]) and ctx.pages.hits == hits + 1


def test_pages_nobody_asked_never_push_out_asked_ones():
    from matcher.match_pages import MatchPages

    pages = MatchPages(max_bytes=100, recipes=2)
    pages.get_or_make(1, "asked", lambda: b"x", recipe="A")
    pages.remember("guess1", "G1", recent=False)
    pages.remember("guess2", "G2", recent=False)  # no room left: not remembered
    assert [key for key, _ in pages.to_remake(2)] == ["asked", "guess1"]
    pages.remember("written", "W")  # as if just asked: the oldest (the guess) goes
    assert [key for key, _ in pages.to_remake(2)] == ["written", "asked"]


def test_another_workers_pairing_expires_only_the_pages_it_shows(client, ctx, settings, encoder):
    """Two contexts on one database stand for two workers: the second reads the first's pairing off the log."""
    from fastapi.testclient import TestClient

    from api.main import create_app
    from matcher.context import build_context

    load_small(client)
    seahorse = by_title(client, "needs", "海马人工繁育技术")
    crankshaft = by_title(client, "needs", "曲轴表面耐磨强化")
    laser = by_title(client, "outcomes", "激光仿生耦合耐磨抗疲劳技术")
    other = build_context(settings, encoder=encoder)
    try:
        with TestClient(create_app(ctx=other)) as second:
            second.headers.update(client.headers)
            paths = [f"/needs/{n['id']}/matches" for n in (seahorse, crankshaft)]
            for path in paths:
                _page(second, path)
            r = client.post("/pairings", json={"need_id": crankshaft["id"], "outcome_id": laser["id"], "broker": "张"})
            assert r.status_code == 201, r.text
            hits = other.pages.hits
            assert _page(second, paths[0]) == _fresh(other, "needs", seahorse["id"]) and other.pages.hits == hits + 1
            shown = json.loads(_page(second, paths[1]))
            assert other.pages.hits == hits + 1
            assert [x["pairing"]["stage"] for x in shown["results"] if x["pairing"]] == ["proposed"]
    finally:
        other.close()
