"""Match pages of stored records are reused between writes and never outlive a write that changes them."""
from __future__ import annotations

import json

from sqlalchemy import func, select

from matcher.match_pages import MatchPages
from matcher.models import IndexChange

from .helpers import by_title, load_small


def _page(client, path, **params):
    r = client.get(path, params=params)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"
    return r.content


def test_repeat_view_is_the_same_page_from_memory(client, ctx):
    load_small(client)
    need = by_title(client, "needs", "海马人工繁育技术")
    path = f"/needs/{need['id']}/matches"
    first = _page(client, path)
    hits = ctx.pages.hits
    assert _page(client, path) == first
    assert ctx.pages.hits == hits + 1
    # Another k or filter is another page, computed fresh.
    other = json.loads(_page(client, path, k=1))
    assert other["query"] == {"need_id": need["id"], "k": 1} and len(other["results"]) == 1
    assert ctx.pages.hits == hits + 1
    body = json.loads(first)
    assert body["query"] == {"need_id": need["id"], "k": 10}
    assert body["results"][0]["outcome"]["title"] == "海马新种质创制及产业化应用"


def test_declined_pairing_and_renamed_party_show_at_once(client, ctx):
    load_small(client)
    need = by_title(client, "needs", "海马人工繁育技术")
    outcome = by_title(client, "outcomes", "海马新种质创制及产业化应用")
    path = f"/needs/{need['id']}/matches"
    before = json.loads(_page(client, path))
    assert before["results"][0]["outcome"]["id"] == outcome["id"]

    with ctx.sessions() as s:
        logged = s.scalar(select(func.count()).select_from(IndexChange).where(IndexChange.side == "facts"))
    inst = outcome["institution"]["id"]
    assert client.patch(f"/institutions/{inst}", json={"name": "鲁东大学海洋学院"}).status_code == 200
    renamed = json.loads(_page(client, path))
    assert renamed["results"][0]["outcome"]["institution"]["name"] == "鲁东大学海洋学院"
    with ctx.sessions() as s:
        assert s.scalar(select(func.count()).select_from(IndexChange).where(IndexChange.side == "facts")) == logged + 1

    pairing = client.post("/pairings", json={"need_id": need["id"], "outcome_id": outcome["id"], "broker": "张"}).json()
    shown = json.loads(_page(client, path))
    assert shown["results"][0]["pairing"]["stage"] == "proposed"
    r = client.post(f"/pairings/{pairing['id']}/moves",
                    json={"to_stage": "declined", "actor": "张", "version": pairing["version"], "decline_reason": "price"})
    assert r.status_code == 200, r.text
    after = json.loads(_page(client, path))
    assert outcome["id"] not in [x["outcome"]["id"] for x in after["results"]]


def test_a_write_through_another_worker_expires_the_page(client, ctx, settings, encoder):
    """Two contexts on one database stand for two workers: the second's page follows the first's write."""
    from fastapi.testclient import TestClient

    from api.main import create_app
    from matcher.context import build_context

    load_small(client)
    need = by_title(client, "needs", "曲轴表面耐磨强化")
    path = f"/needs/{need['id']}/matches"
    other = build_context(settings, encoder=encoder)
    try:
        with TestClient(create_app(ctx=other)) as second:
            second.headers.update(client.headers)
            raw = _page(second, path)
            assert _page(second, path) == raw and other.pages.hits == 1
            before = json.loads(raw)
            top = before["results"][0]["outcome"]
            assert client.patch(f"/outcomes/{top['id']}", json={"title": "曲轴激光仿生强化"}).status_code == 200
            after = json.loads(_page(second, path))
            assert [x["outcome"]["title"] for x in after["results"] if x["outcome"]["id"] == top["id"]] == ["曲轴激光仿生强化"]
    finally:
        other.close()


def test_page_memory_is_bounded_and_versioned():
    pages = MatchPages(max_bytes=10)
    made = []

    def make(body: bytes):
        def run() -> bytes:
            made.append(body)
            return body
        return run

    assert pages.get_or_make(1, "a", make(b"aaaa")) == b"aaaa"
    assert pages.get_or_make(1, "a", make(b"zzzz")) == b"aaaa"  # kept
    pages.get_or_make(1, "b", make(b"bbbb"))
    pages.get_or_make(1, "c", make(b"cccc"))  # 12 bytes > 10: the least recently used ("a") goes
    assert len(pages) == 2 and pages.get_or_make(1, "a", make(b"AAAA")) == b"AAAA"
    # Without marks a newer version makes every older page stale; an older version is served fresh and not kept.
    assert pages.get_or_make(2, "b", make(b"B2")) == b"B2"
    assert pages.held(2) == 1
    assert pages.get_or_make(1, "b", make(b"B1")) == b"B1" and pages.get_or_make(2, "b", make(b"x")) == b"B2"
    off = MatchPages(max_bytes=0)
    assert off.get_or_make(1, "a", make(b"1")) == b"1" and off.get_or_make(1, "a", make(b"2")) == b"2"
    assert len(off) == 0


def test_rows_without_stored_terms_are_explained_as_before(client, ctx):
    """Rows written before terms were stored (NULL) are segmented when explained: same answer as stored terms."""
    from sqlalchemy import update

    from matcher.models import Outcome

    load_small(client)
    need = by_title(client, "needs", "曲轴表面耐磨强化")
    path = f"/needs/{need['id']}/matches"
    stored = json.loads(_page(client, path, k=3))
    with ctx.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Outcome).where(Outcome.explain_terms.is_(None))) == 0
        s.execute(update(Outcome).values(explain_terms=None))  # as a row from before migration 0005
        s.commit()
    segmented = json.loads(_page(client, path, k=2))  # another page: not the one made with stored terms
    assert [r["explanation"] for r in segmented["results"]] == [r["explanation"] for r in stored["results"][:2]]
    assert any(r["explanation"]["shared_terms"] for r in stored["results"])


def test_a_need_keeps_the_terms_it_asks_with_and_a_row_without_them_is_explained_as_before(client, ctx):
    """A need stores the terms of the text its matches ask with at write, again after an edit; a row without
    them (NULL, as before migration 0006) has its text segmented instead, and its page explains the same."""
    from sqlalchemy import update
    from sqlalchemy.orm import undefer

    from matcher.documents import document_text
    from matcher.models import Need
    from matcher.textutil import terms

    def stored(need_id):
        with ctx.sessions() as s:
            need = s.scalars(select(Need).options(undefer(Need.query_terms)).where(Need.id == need_id)).one()
            return need.query_terms, terms(document_text(need))

    load_small(client)
    need = by_title(client, "needs", "曲轴表面耐磨强化")
    kept, segmented = stored(need["id"])
    assert kept and kept == segmented
    path = f"/needs/{need['id']}/matches"
    with_terms = json.loads(_page(client, path, k=3))
    with ctx.sessions() as s:
        s.execute(update(Need).where(Need.id == need["id"]).values(query_terms=None))
        s.commit()
    without = json.loads(_page(client, path, k=2))  # another page: not the one made with stored terms
    assert [r["explanation"] for r in without["results"]] == [r["explanation"] for r in with_terms["results"][:2]]
    assert any(r["explanation"]["shared_terms"] for r in with_terms["results"])
    # The stored list is what a page reads: a list of one term gives explanations of that term alone.
    only = with_terms["results"][0]["explanation"]["shared_terms"][-1]
    with ctx.sessions() as s:
        s.execute(update(Need).where(Need.id == need["id"]).values(query_terms=[only]))
        s.commit()
    one = json.loads(_page(client, path, k=1))
    assert one["results"][0]["explanation"]["shared_terms"] == [only]
    r = client.patch(f"/needs/{need['id']}", json={"description": need["description"] + "需要激光熔覆再制造。"})
    assert r.status_code == 200, r.text
    kept, segmented = stored(need["id"])
    assert kept == segmented and "激光" in kept


def _warm_after_patch(client, ctx):
    """Start a warmer (it makes both needs' pages), view a need's matches, rename its top outcome (every
    need's page goes stale); returns (path, warmer, the renamed outcome's id)."""
    from matcher.page_warmer import PageWarmer

    load_small(client)
    warmer = PageWarmer(ctx)
    assert warmer.warm_once() == 2
    need = by_title(client, "needs", "曲轴表面耐磨强化")
    path = f"/needs/{need['id']}/matches"
    top = json.loads(_page(client, path))["results"][0]["outcome"]
    assert client.patch(f"/outcomes/{top['id']}", json={"title": "曲轴激光仿生强化"}).status_code == 200
    return path, warmer, top["id"]


def test_a_viewed_page_is_remade_after_a_write_and_served_as_a_repeat_view(client, ctx):
    from matcher.matching import make_page

    path, warmer, top_id = _warm_after_patch(client, ctx)
    assert client.get("/health").json()["match_pages"] == {"held": 0, "to_remake": 2}
    assert warmer.warm_once() == 2  # the viewed page, and the other need's page nobody asked
    assert client.get("/health").json()["match_pages"] == {"held": 2, "to_remake": 0}
    assert warmer.warm_once() == 0  # held at this version: nothing to do
    hits = ctx.pages.hits
    served = _page(client, path)
    assert ctx.pages.hits == hits + 1, "the view after the write must come from the warmed page"
    titles = [x["outcome"]["title"] for x in json.loads(served)["results"] if x["outcome"]["id"] == top_id]
    assert titles == ["曲轴激光仿生强化"]
    # The warmed page is exactly what ranking now would give the same asker.
    # Every remembered recipe: no page is held at version -2.
    recipe, = [r for _, r in ctx.pages.to_remake(-2) if r.record_id == int(path.split("/")[2])]
    with ctx.sessions() as s:
        assert make_page(ctx, s, recipe) == served


def test_the_warmer_forgets_a_deleted_record_and_never_serves_it(client, ctx):
    path, warmer, _ = _warm_after_patch(client, ctx)
    need_id = int(path.split("/")[2])
    assert client.delete(f"/needs/{need_id}").status_code == 204
    assert warmer.warm_once() == 1  # the other need's page only
    assert ctx.pages.to_remake(ctx.indexes.version) == []
    assert client.get(path).status_code == 404


def test_warmed_pages_keep_the_askers_scope(client, ctx):
    """A page asked with k=3 is re-made with k=3 for the asker's scope, beside the k=10 one."""
    path, warmer, _ = _warm_after_patch(client, ctx)
    _page(client, path, k=3)
    (key3, recipe3), (key10, _), _other_need = ctx.pages.to_remake(-2)  # most recently asked first
    assert recipe3.k == 3 and key3[2] is None  # every live outcome is public: one page for all who may open it
    assert key10[1] != key3[1] and key10[2] == key3[2]
    assert warmer.warm_once() == 2  # the k=3 view was made at the current version: k=10 and the other need
    assert ctx.pages.to_remake(ctx.indexes.version) == []


def test_the_background_warmer_remakes_pages_once_writes_stop(client, ctx):
    import time

    from matcher.page_warmer import PageWarmer

    path, _, _ = _warm_after_patch(client, ctx)
    warmer = PageWarmer(ctx, quiet_s=0.1).start()
    try:
        deadline = time.monotonic() + 30
        while warmer.made < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        warmer.stop()
    assert warmer.made == 2  # the viewed need's page and the other need's
    hits = ctx.pages.hits
    _page(client, path)
    assert ctx.pages.hits == hits + 1


def test_page_recipes_are_bounded_and_filled_once_per_version():
    pages = MatchPages(max_bytes=100, recipes=2)
    for key in "abc":
        pages.get_or_make(1, key, lambda: b"x", recipe=key.upper())
    assert pages.to_remake(1) == []  # all held
    assert pages.to_remake(2) == [("c", "C"), ("b", "B")]  # "a" fell out of the two remembered
    assert pages.fill(2, "c", lambda: b"C2") is True and pages.fill(2, "c", lambda: b"no") is False
    assert pages.fill(1, "b", lambda: b"old") is False  # an older version is never kept
    hits, misses = pages.hits, pages.misses
    assert pages.get_or_make(2, "c", lambda: b"no") == b"C2" and pages.hits == hits + 1 and pages.misses == misses
    pages.forget("b")
    assert pages.to_remake(2) == []
    assert MatchPages(max_bytes=0, recipes=5).max_recipes == 0
