"""The id-mapped FAISS index: upsert, delete, filters, safe files."""
from __future__ import annotations

import numpy as np
import pytest

from embeddings.index import IndexMeta, VectorIndex


def _unit(rows):
    m = np.asarray(rows, dtype=np.float32)
    return m / np.linalg.norm(m, axis=1, keepdims=True)


@pytest.fixture
def index():
    ix = VectorIndex(3)
    ix.upsert([10, 20, 30], _unit([[1, 0, 0], [0, 1, 0], [1, 1, 0]]))
    return ix


def test_search_returns_database_ids_best_first(index):
    hits = index.search(_unit([[1, 0.1, 0]])[0], 3)
    assert [i for i, _ in hits] == [10, 30, 20]
    assert hits[0][1] > hits[1][1] > hits[2][1]


def test_upsert_replaces_and_remove_deletes(index):
    index.upsert([10], _unit([[0, 0, 1]]))
    assert len(index) == 3
    assert index.search(_unit([[0, 0, 1]])[0], 1)[0][0] == 10
    assert index.remove([20, 999]) == 1
    assert 20 not in [i for i, _ in index.search(_unit([[0, 1, 0]])[0], 5)]


def test_allowed_ids_filter_before_ranking(index):
    hits = index.search(_unit([[1, 0, 0]])[0], 5, allowed_ids=[20])
    assert [i for i, _ in hits] == [20]
    assert index.search(_unit([[1, 0, 0]])[0], 5, allowed_ids=[]) == []


def test_save_and_load_round_trip(index, tmp_path):
    meta = IndexMeta(model="m", dim=3, version=7)
    index.save(tmp_path / "x.idx", meta)
    loaded, got = VectorIndex.load(tmp_path / "x.idx", meta)
    assert got.version == 7 and got.count == 3
    assert sorted(loaded.ids().tolist()) == [10, 20, 30]


def test_load_refuses_corrupt_foreign_or_missing_files(index, tmp_path):
    meta = IndexMeta(model="m", dim=3, version=1)
    path = tmp_path / "x.idx"
    assert VectorIndex.load(path, meta) is None
    index.save(path, meta)
    assert VectorIndex.load(path, IndexMeta(model="other", dim=3, version=1)) is None
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))
    assert VectorIndex.load(path, meta) is None
    path.write_bytes(b"not an index")
    assert VectorIndex.load(path, meta) is None


def test_save_leaves_no_temporary_files(index, tmp_path):
    index.save(tmp_path / "x.idx", IndexMeta(model="m", dim=3, version=1))
    assert [p.name for p in tmp_path.iterdir()] == ["x.idx"]


def test_a_search_gives_the_callers_faiss_thread_count_back():
    # Searches run FAISS on one thread; a rebuild in the same thread afterwards must still get every core.
    import faiss

    rng = np.random.default_rng(3)
    ix = VectorIndex(16)
    ix.upsert(np.arange(2000), _unit(rng.normal(size=(2000, 16))))
    before = faiss.omp_get_max_threads()
    try:
        for threads in {2, 1, before}:
            faiss.omp_set_num_threads(threads)
            ix.search(_unit(rng.normal(size=(1, 16)))[0], 5)
            ix.search(_unit(rng.normal(size=(1, 16)))[0], 5, allowed_ids=np.arange(0, 2000, 3))
            assert faiss.omp_get_max_threads() == threads
    finally:
        faiss.omp_set_num_threads(before)
