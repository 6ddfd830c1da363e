"""The lexical index's base + delta segments: writes never rebuild the base, scores stay bm25s's exactly."""
import json
import random
import threading
from pathlib import Path

import bm25s
import numpy as np
import pytest

import embeddings.lexical as lexical
from embeddings.lexical import LexicalIndex
from matcher.tokens import TermTokenizer

EVAL = Path(__file__).resolve().parents[2] / "shared" / "eval"
QUERIES = ("锂电池热管理", "岩溶 物探方法 高密度电法", "基于深度学习的图像识别", "保温材料 墙体", "水稻 产量")


@pytest.fixture(scope="module")
def docs() -> list[list[str]]:
    tok = TermTokenizer()
    path = EVAL / "csl_goal" / "corpus.jsonl"
    if not path.exists():
        pytest.skip("the evaluation corpus is not available")
    with path.open(encoding="utf-8") as fh:
        texts = [json.loads(next(fh))["text"] for _ in range(400)]
    return [tok.tokens(t) for t in texts]


def _reference(live: dict[int, list[str]], query: list[str]) -> dict[int, float]:
    """bm25s's scores over exactly the live documents, rebuilt from scratch."""
    ids = sorted(live)
    vocab: dict[str, int] = {}
    ref = bm25s.BM25()
    ref.index(([[vocab.setdefault(t, len(vocab)) for t in live[i]] for i in ids], vocab), show_progress=False)
    got = ref.get_scores_from_ids(sorted({vocab[t] for t in query if t in vocab}))
    return dict(zip(ids, np.asarray(got, dtype=np.float64)))


def _check(index: LexicalIndex, live: dict[int, list[str]], tok: TermTokenizer, gone: set[int]) -> None:
    assert len(index) == len(live)
    ids = sorted(live) + sorted(gone)
    for text in QUERIES:
        q = tok.tokens(text)
        expected = _reference(live, q)
        got = index.scores(q, ids)
        np.testing.assert_allclose(got[: len(live)], [expected[i] for i in sorted(live)], rtol=1e-4, atol=1e-5)
        assert not got[len(live):].any()  # removed documents score nothing
        top = index.search(q, 10)
        best = sorted((s for s in expected.values() if s > 0), reverse=True)[:10]
        np.testing.assert_allclose([s for _, s in top], best, rtol=1e-4, atol=1e-5)
        assert not {i for i, _ in top} & gone


def test_random_writes_merges_and_removals_keep_bm25s_scores(docs, monkeypatch):
    monkeypatch.setattr(lexical, "MIN_MERGE", 40)  # small segments, so merges happen many times here
    tok = TermTokenizer()
    rng = random.Random(3)
    index = LexicalIndex()
    live: dict[int, list[str]] = {}
    gone: set[int] = set()
    index.upsert(range(200), docs[:200])
    live.update(dict(enumerate(docs[:200])))
    for step in range(12):
        new_ids = rng.sample(range(600), 25)
        new_docs = [docs[rng.randrange(len(docs))] for _ in new_ids]
        index.upsert(new_ids, new_docs)
        live.update(zip(new_ids, new_docs))
        gone -= set(new_ids)
        dropped = rng.sample(sorted(live), 10)
        index.remove(dropped + [10_000])  # an unknown id is ignored
        for i in dropped:
            live.pop(i)
        gone |= set(dropped)
        if step % 4 == 3:
            _check(index, live, tok, gone)
    assert index.merges >= 2
    _check(index, live, tok, gone)


def test_a_write_does_not_rebuild_the_base(docs):
    index = LexicalIndex()
    index.upsert(range(300), docs[:300])
    index.merge()
    base, merges = index._base, index.merges
    index.upsert([5, 1000], [docs[300], docs[301]])
    index.remove([7])
    assert index._base is base and index.merges == merges  # the base matrix is untouched
    assert index.delta_size == 2 and len(index) == 300
    q = TermTokenizer().tokens("保温材料 墙体")
    assert 7 not in {i for i, _ in index.search(q, 300)}


def test_save_and_load_keep_delta_and_dead_columns(docs, tmp_path):
    tok = TermTokenizer()
    index = LexicalIndex()
    index.upsert(range(100), docs[:100])
    index.merge()
    index.upsert([3, 500], [docs[150], docs[151]])
    index.remove([4, 5])
    index.save(tmp_path / "lex.npz", {"version": 1})
    loaded, meta = LexicalIndex.load(tmp_path / "lex.npz")
    assert meta["count"] == len(index) == len(loaded) == 99
    for text in QUERIES:
        q = tok.tokens(text)
        assert loaded.search(q, 20) == index.search(q, 20)
        np.testing.assert_array_equal(loaded.scores(q, [3, 4, 500, 99]), index.scores(q, [3, 4, 500, 99]))
    loaded.merge()
    q = tok.tokens(QUERIES[0])
    np.testing.assert_allclose([s for _, s in loaded.search(q, 20)], [s for _, s in index.search(q, 20)], rtol=1e-6)


def test_filtered_search_and_ties_are_by_position(docs):
    tok = TermTokenizer()
    index = LexicalIndex()
    same = docs[0]
    index.upsert([30, 10, 20], [same, same, same])
    q = tok.tokens("岩溶 物探方法")
    assert [i for i, _ in index.search(q, 3)] == [30, 10, 20]  # equal scores keep insertion order
    assert [i for i, _ in index.search(q, 3, allowed_ids=[20, 10, 99])] == [10, 20]
    assert index.search(q, 3, allowed_ids=[]) == []


class _Gate:
    """Holds a background merge in the middle of building its new base (in ``sparse.hstack``, which only merges
    call) while ``closed``; the build runs outside the index's lock there, so the test can query and write
    meanwhile. Merges on other threads (an inline merge, an explicit one) pass."""

    def __init__(self, monkeypatch, fail: bool = False):
        self.closed, self.opened, self.entered = threading.Event(), threading.Event(), threading.Event()
        build = lexical.sparse.hstack

        def hstack(*args, **kwargs):
            if self.closed.is_set() and threading.current_thread().name == "lexical-merge":
                self.entered.set()
                assert self.opened.wait(30)
                if fail:
                    raise MemoryError("the new base does not fit")
            return build(*args, **kwargs)

        monkeypatch.setattr(lexical.sparse, "hstack", hstack)


def _in_thread(call, timeout: float = 30):
    """``call()`` on another thread; fails the test if it does not return within ``timeout`` (a held lock)."""
    out = []
    worker = threading.Thread(target=lambda: out.append(call()), daemon=True)
    worker.start()
    worker.join(timeout)
    assert out, "blocked behind the merge"
    return out[0]


def _merged_pair(docs, monkeypatch) -> tuple[LexicalIndex, LexicalIndex, _Gate]:
    """The same 200 documents, merged, in an index that merges inline and one that merges in the background."""
    monkeypatch.setattr(lexical, "MIN_MERGE", 40)
    gate = _Gate(monkeypatch)
    inline, background = LexicalIndex(), LexicalIndex(background_merge=True)
    for index in (inline, background):
        with index.bulk():
            index.upsert(range(200), docs[:200])
    gate.closed.set()
    return inline, background, gate


def test_a_background_merge_lets_queries_and_writes_go_on_and_ends_as_an_inline_merge_would(docs, monkeypatch):
    tok = TermTokenizer()
    inline, background, gate = _merged_pair(docs, monkeypatch)
    live = dict(enumerate(docs[:200]))
    writes = [("upsert", list(range(200, 245)), docs[200:245]),  # passes the threshold: the merge starts
              ("upsert", [3, 210, 300], [docs[300], docs[301], docs[302]]),  # a base, a snapshot-delta, a new id
              ("remove", [5, 220, 9999], None),
              ("upsert", [301, 301], [docs[303], docs[304]])]
    for n, (op, ids, new) in enumerate(writes):
        inline.upsert(ids, new) if op == "upsert" else inline.remove(ids)
        _in_thread(lambda: background.upsert(ids, new) if op == "upsert" else background.remove(ids))
        live.update(zip(ids, new)) if op == "upsert" else [live.pop(i, None) for i in ids]
        if n == 0:
            assert gate.entered.wait(30) and not background.wait_for_merge(0)
    assert inline.merges == 2 and background.merges == 1  # the bulk builds' merges, and the inline one
    _in_thread(lambda: _check(background, live, tok, {5, 220}))  # queries answer, and exactly, mid-merge
    gate.opened.set()
    assert background.wait_for_merge(30) and background.merges == 2
    np.testing.assert_array_equal(background._base_ids, inline._base_ids)
    assert list(background._delta) == list(inline._delta) == [3, 210, 300, 301]
    ids = sorted(live) + [5, 220]
    for text in QUERIES:
        q = tok.tokens(text)
        np.testing.assert_array_equal(background.scores(q, ids), inline.scores(q, ids))
        assert background.search(q, 20) == inline.search(q, 20)
    _check(background, live, tok, {5, 220})


def test_merge_called_during_a_background_merge_waits_for_it_then_merges(docs, monkeypatch):
    _, background, gate = _merged_pair(docs, monkeypatch)
    background.upsert(range(200, 245), docs[200:245])
    assert gate.entered.wait(30)
    background.upsert([400], [docs[300]])
    gate.closed.clear()
    explicit = threading.Thread(target=background.merge, daemon=True)
    explicit.start()
    explicit.join(0.5)
    assert explicit.is_alive() and background.merges == 1  # waiting for the running merge
    gate.opened.set()
    explicit.join(30)
    assert not explicit.is_alive() and background.merges == 3 and background.delta_size == 0
    assert len(background) == 246


def test_a_failed_background_merge_leaves_every_write_in_place(docs, monkeypatch, caplog):
    monkeypatch.setattr(lexical, "MIN_MERGE", 40)
    tok = TermTokenizer()
    gate = _Gate(monkeypatch, fail=True)
    index = LexicalIndex(background_merge=True)
    with index.bulk():
        index.upsert(range(200), docs[:200])
    gate.closed.set()
    index.upsert(range(200, 245), docs[200:245])
    assert gate.entered.wait(30)
    index.remove([7, 230])
    gate.opened.set()
    assert index.wait_for_merge(30) and index.merges == 1  # only the bulk build's
    assert "lexical merge failed" in caplog.text
    live = {i: d for i, d in enumerate(docs[:245]) if i not in (7, 230)}
    _check(index, live, tok, {7, 230})
    gate.closed.clear()
    index.merge()
    assert index.merges == 2 and index.delta_size == 0
    _check(index, live, tok, {7, 230})
