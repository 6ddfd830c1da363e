"""The lexical index's base + delta segments: writes never rebuild the base, scores stay bm25s's exactly."""
import json
import random
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
