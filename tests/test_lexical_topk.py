"""MaxScore top-k of long queries: the same ids, scores and order as one full pass over every posting."""
import json
import random

import numpy as np
import pytest

import embeddings.lexical as lexical
from embeddings.lexical import LexicalIndex
from matcher.tokens import TermTokenizer
from tests.test_lexical_segments import EVAL

N_DOCS = 3000


@pytest.fixture(scope="module")
def corpus() -> tuple[list[list[str]], list[list[str]]]:
    """Real abstracts as documents, and whole other abstracts as long queries (hundreds of terms)."""
    path = EVAL / "csl_goal" / "corpus.jsonl"
    if not path.exists():
        pytest.skip("the evaluation corpus is not available")
    tok = TermTokenizer()
    with path.open(encoding="utf-8") as fh:
        texts = [json.loads(next(fh))["text"] for _ in range(N_DOCS + 24)]
    docs = [tok.tokens(t) for t in texts]
    # Two abstracts per query: as many terms as a stored need (jieba words + bigrams, ~150-300).
    return docs[:N_DOCS], [docs[i] + docs[i + 1] for i in range(N_DOCS, N_DOCS + 24, 2)]


@pytest.fixture
def prune_always(monkeypatch):
    """Prune even small queries, in small rounds, so every branch of the pruned path runs."""
    monkeypatch.setattr(lexical, "PRUNE_MIN_POSTINGS", 0)
    monkeypatch.setattr(lexical, "PRUNE_MIN_TERMS", 2)
    monkeypatch.setattr(lexical, "GATHER_MIN", 64)


def _brute_top(scores: lexical.LexicalScores, k: int, allowed=None) -> list[tuple[int, float]]:
    """Top-k from the full pass: every position scored, sorted by score then position."""
    full = scores._full_scores()
    if allowed is None:
        pos = np.arange(len(full))
    else:
        pos = scores._position_of(np.unique(np.asarray(list(allowed), dtype=np.int64)))
        pos = np.sort(pos[pos >= 0])
    order = np.lexsort((pos, -full[pos]))
    order = order[full[pos][order] > 0][:k]
    return [(int(scores.ids[pos[i]]), float(full[pos[i]])) for i in order]


def _assert_same(index: LexicalIndex, query: list[str], k: int, allowed=None) -> None:
    pruned = index.query(query).top(k, allowed)
    assert pruned == _brute_top(index.query(query), k, allowed)


@pytest.fixture
def index(corpus) -> LexicalIndex:
    """A merged base with dead columns, plus a delta holding new documents and replacements."""
    docs, _ = corpus
    rng = random.Random(5)
    index = LexicalIndex()
    index.upsert(range(N_DOCS), docs)
    index.merge()
    index.remove(rng.sample(range(N_DOCS), 200))
    replaced = rng.sample(range(N_DOCS), 60)
    index.upsert(replaced + list(range(10_000, 10_090)), [docs[rng.randrange(N_DOCS)] for _ in range(150)])
    assert index.delta_size == 150 and index._base_live < N_DOCS
    return index


@pytest.mark.parametrize("k", [1, 10, 50, 400])
def test_long_queries_match_the_full_pass(index, corpus, k, prune_always):
    _, queries = corpus
    for q in queries:
        assert len(set(q)) > 150
        _assert_same(index, q, k)


def test_long_queries_prune_with_the_default_rounds(index, corpus, monkeypatch):
    # Only the size gate is lowered (a query here reads far fewer postings than one at 10^5 documents).
    monkeypatch.setattr(lexical, "PRUNE_MIN_POSTINGS", 20_000)
    _, queries = corpus
    scores = index.query(queries[0])
    assert scores._worth_pruning()
    for q in queries:
        _assert_same(index, q, 50)
    assert scores.top(50) and scores._full is None  # the full pass was never run


def test_allowed_ids_match_the_full_pass(index, corpus, prune_always):
    _, queries = corpus
    rng = random.Random(9)
    everything = list(range(N_DOCS)) + list(range(10_000, 10_090))
    filters = [rng.sample(everything, 1500), rng.sample(everything, 30), rng.sample(everything, 300) + [99_999], []]
    for q in queries[:6]:
        for allowed in filters:
            for k in (5, 50):
                _assert_same(index, q, k, allowed)


def test_k_beyond_the_positive_documents(index, corpus, prune_always):
    docs, queries = corpus
    rare = [t for t in queries[0] if sum(t in set(d) for d in docs[:300]) == 0][:5]
    for q in (queries[1], rare + ["不存在的词"], queries[2][:40]):
        full = index.query(q)._full_scores()
        k = int((full > 0).sum()) + 10
        _assert_same(index, q, k)
        assert len(index.query(q).top(k)) == int((full > 0).sum())


def test_ties_keep_the_lower_position(corpus, prune_always):
    docs, queries = corpus
    index = LexicalIndex()
    # Forty copies of a few documents: equal scores straddle every k below.
    ids = list(range(400))
    index.upsert(ids, [docs[i % 7] for i in ids] + [])
    index.merge()
    index.upsert(range(400, 420), [docs[i % 7] for i in range(20)])
    for q in queries[:4]:
        for k in (3, 13, 57, 100):
            _assert_same(index, q, k)


def test_scores_of_ids_are_exact(index, corpus, prune_always):
    _, queries = corpus
    rng = random.Random(2)
    ids = rng.sample(range(N_DOCS), 150) + list(range(10_000, 10_090, 7)) + [55_555, -1]
    for q in queries[:5]:
        np.testing.assert_array_equal(index.query(q).of(ids), index.query(q)._full_scores()[
            np.maximum(index.query(q)._position_of(np.asarray(ids)), 0)] * (index.query(q)._position_of(
                np.asarray(ids)) >= 0))


def test_a_write_after_the_query_does_not_change_its_answer(index, corpus, prune_always):
    docs, queries = corpus
    q = queries[3]
    scores = index.query(q)
    expected_top = _brute_top(index.query(q), 20)
    ids = [i for i, _ in expected_top]
    expected_of = index.query(q).of(ids)
    index.remove(ids[:5])
    index.upsert(ids[5:10], [docs[0]] * 5)
    index.merge()
    index.remove(ids[10:12])
    assert scores.top(20) == expected_top
    np.testing.assert_array_equal(scores.of(ids), expected_of)
    _assert_same(index, q, 20)


def test_live_document_frequency_stays_exact_through_removals(corpus, monkeypatch):
    monkeypatch.setattr(lexical, "MIN_MERGE", 10_000)  # no merge: dead columns pile up
    docs, queries = corpus
    index = LexicalIndex()
    index.upsert(range(1000), docs[:1000])
    index.merge()
    live = dict(enumerate(docs[:1000]))
    rng = random.Random(4)
    terms = sorted(set(queries[0]))
    for step in range(8):
        gone = rng.sample(sorted(live), 1 if step % 2 else 120)  # few: searched in rows; many: one pass
        index.remove(gone)
        for i in gone:
            live.pop(i)
        scores = index.query(terms)
        t = np.asarray(sorted(index._vocab[x] for x in terms if x in index._vocab))
        vocab_of = {index._vocab[x]: x for x in terms if x in index._vocab}
        df = np.asarray([sum(vocab_of[i] in set(d) for d in live.values()) for i in t])
        n = len(live)
        np.testing.assert_array_equal(scores.idf, np.log(1 + (n - df + 0.5) / (df + 0.5)).astype(np.float32))
