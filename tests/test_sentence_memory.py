"""The worker's sentence-vector memory: one batched read, no repeat reads, edited records re-read, bounded size."""
import numpy as np

from matcher.documents import sentences_of
from matcher.models import Outcome
from matcher.search_index import SentenceVectors


class CountingEncoder:
    """Stands in for the cached encoder: deterministic vectors, and a log of every call."""

    dim = 8

    def __init__(self):
        self.calls: list[list[str]] = []

    def encode(self, texts, kind):
        assert kind == "passage"
        self.calls.append(list(texts))
        return np.stack([np.random.default_rng(abs(hash(t)) % 2**32).standard_normal(self.dim).astype(np.float32)
                         for t in texts])


def _outcome(i: int, abstract: str, content: str = "v1") -> Outcome:
    return Outcome(id=i, title=f"成果{i}", abstract=abstract, keywords=[], content_hash=f"{i}-{content}")


ABSTRACT = "锂离子电池液冷散热技术。电芯温差控制在3℃以内。适用于储能电站和电动汽车。"


def test_one_batched_read_then_memory_then_reread_after_an_edit():
    enc = CountingEncoder()
    memory = SentenceVectors(enc)
    a, b = _outcome(1, ABSTRACT), _outcome(2, "海马人工繁育与种质创制。苗种成活率显著提高。")
    got = memory.get([a, b])
    assert len(enc.calls) == 1  # both records' sentences in one read
    assert got[1].shape == (len(sentences_of(a)), enc.dim) and got[2].shape[0] == len(sentences_of(b))
    np.testing.assert_array_equal(got[1], enc.encode(sentences_of(a), "passage"))
    enc.calls.clear()
    again = memory.get([a, b])
    assert enc.calls == [] and np.array_equal(again[1], got[1])
    edited = _outcome(1, "全新的摘要内容。与之前完全不同的句子。", content="v2")
    assert memory.get([edited])[1].shape[0] == len(sentences_of(edited)) and len(enc.calls) == 1


def test_memory_stays_under_its_byte_budget():
    enc = CountingEncoder()
    memory = SentenceVectors(enc, max_bytes=3 * 4 * enc.dim * 3)  # room for about three records of three sentences
    for i in range(20):
        memory.get([_outcome(i, ABSTRACT + f"第{i}号。")])
    assert memory._bytes <= memory.max_bytes and len(memory._items) < 20
    enc.calls.clear()
    memory.get([_outcome(19, ABSTRACT + "第19号。")])  # the most recent is still held
    assert enc.calls == []
