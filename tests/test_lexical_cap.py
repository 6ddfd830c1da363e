"""A long query capped at its most selective terms: exactly BM25 of those terms, the same on every worker."""
import random
from dataclasses import replace

import numpy as np
import pytest

from embeddings.lexical import LexicalIndex
from matcher.retrieval import Retriever
from matcher.scoring import DEFAULT_WEIGHTS
from tests.test_lexical_topk import corpus  # noqa: F401  (module fixture: real abstracts, long queries)

CAP = 40


def _build(docs: list[list[str]], order: list[int]) -> LexicalIndex:
    index = LexicalIndex()
    index.upsert(order, [docs[i] for i in order])
    index.merge()
    return index


def _most_selective(docs: list[list[str]], query: list[str], cap: int) -> list[str]:
    """The ``cap`` query terms in the fewest documents, ties by the term: worked out without the index."""
    df = {t: sum(t in set(d) for d in docs) for t in set(query)}
    return sorted((t for t in df if df[t]), key=lambda t: (df[t], t))[:cap]


def test_a_capped_query_is_bm25_of_its_most_selective_terms(corpus):  # noqa: F811
    docs, queries = corpus
    index = _build(docs, list(range(len(docs))))
    for query in queries[:4]:
        assert len(set(query)) > 3 * CAP
        kept = _most_selective(docs, query, CAP)
        capped = index.query(query, max_terms=CAP)
        # Same idf (from the whole corpus) and same terms: bit for bit the scores of the shorter query.
        assert capped.top(20) == index.query(kept).top(20)
        some = [i for i, _ in index.query(query).top(50)]
        assert np.array_equal(capped.of(some), index.query(kept).of(some))
        # And not the uncapped ranking: the cap does drop terms.
        assert capped.top(20) != index.query(query).top(20)


def test_the_kept_terms_do_not_depend_on_the_order_documents_arrived(corpus):  # noqa: F811
    docs, queries = corpus
    order = list(range(len(docs)))
    random.Random(3).shuffle(order)
    # Term ids follow arrival order; a cap that broke ties by id would keep different terms per worker.
    one, other = _build(docs, list(range(len(docs)))), _build(docs, order)
    every = list(range(len(docs)))
    for query in queries[:4]:
        # Every document scores the same in both (sums in another term order may differ in the last bit).
        a, b = one.query(query, max_terms=CAP).of(every), other.query(query, max_terms=CAP).of(every)
        assert np.allclose(a, b, rtol=1e-6, atol=0) and np.count_nonzero(a) > 20


def test_a_short_query_and_an_unknown_term_are_left_alone(corpus):  # noqa: F811
    docs, queries = corpus
    index = _build(docs, list(range(len(docs))))
    short = sorted(set(queries[0]))[:CAP - 1] + ["从未出现过的词"]
    assert index.query(short, max_terms=CAP).top(20) == index.query(short).top(20)
    # A term no live document holds takes no place among the kept ones.
    gone = docs[0]
    index.remove([0])
    rare = [t for t in set(gone) if not any(t in set(d) for d in docs[1:])]
    if not rare:
        pytest.skip("the first abstract has no term of its own")
    query = rare + _most_selective(docs[1:], queries[1], CAP)
    assert index.query(query, max_terms=CAP).top(20) == index.query(_most_selective(docs[1:], queries[1], CAP)).top(20)


def test_the_retriever_asks_bm25_with_the_cap_of_its_weights(seeded):
    ctx = seeded
    need_text = "　".join(r.abstract for r in _outcomes(ctx)[:3])  # a long query: three abstracts
    tokens = ctx.indexes.tokenizer.query_tokens(need_text)
    assert len(set(tokens)) > 64
    vec = ctx.encoder.encode([need_text], "query")[0]
    assert DEFAULT_WEIGHTS.lexical_terms is None  # the service ranks with every term (docs/quality.md)
    for cap in (64, None):
        cands = Retriever(ctx.indexes, ctx.encoder, replace(DEFAULT_WEIGHTS, lexical_terms=cap)).candidates(
            "outcomes", need_text, vec, 30, None)
        expected = ctx.indexes.lexical["outcomes"].query(tokens, max_terms=cap).of([c.id for c in cands])
        assert [c.lexical for c in cands] == [float(s) for s in expected]


def _outcomes(ctx):
    from sqlalchemy import select

    from matcher.models import Outcome

    with ctx.sessions() as s:
        return list(s.scalars(select(Outcome).where(Outcome.abstract.is_not(None)).order_by(Outcome.id)))
