"""The BM25 channel: bm25s's scores, writes without re-indexing by hand, files that survive a restart."""
import json
from pathlib import Path

import bm25s
import numpy as np
import pytest

from embeddings.lexical import LexicalIndex
from matcher.tokens import TermTokenizer

EVAL = Path(__file__).resolve().parents[2] / "shared" / "eval"
DOCS = ["锂离子动力电池液冷散热技术，电芯温差控制在3℃以内。", "海马人工繁育与种质创制，苗种成活率显著提高。",
        "激光仿生耦合耐磨抗疲劳技术，提高曲轴耐磨性。", "电池热管理系统与液冷板设计。", "无关文本"]


def _corpus() -> list[str]:
    path = EVAL / "csl_goal" / "corpus.jsonl"
    if path.exists():
        with path.open(encoding="utf-8") as fh:
            return [json.loads(next(fh))["text"] for _ in range(300)]
    return DOCS


def test_scores_equal_bm25s_on_real_abstracts():
    tok = TermTokenizer()
    docs = [tok.tokens(d) for d in _corpus()]
    index = LexicalIndex()
    index.upsert(range(len(docs)), docs)
    vocab: dict[str, int] = {}
    ref = bm25s.BM25()
    ref.index(([[vocab.setdefault(t, len(vocab)) for t in d] for d in docs], vocab), show_progress=False)
    for query in ("锂电池热管理", "岩溶 物探方法 高密度电法", "基于深度学习的图像识别"):
        q = tok.tokens(query)
        expected = ref.get_scores_from_ids(sorted({vocab[t] for t in q if t in vocab}))
        np.testing.assert_allclose(index.scores(q, list(range(len(docs)))), expected, rtol=1e-4, atol=1e-5)


def test_upsert_remove_and_filters():
    tok = TermTokenizer(["锂离子电池"])
    index = LexicalIndex()
    index.upsert([10, 11, 12, 13, 14], [tok.tokens(d) for d in DOCS])
    q = tok.tokens("电池液冷")
    assert [i for i, _ in index.search(q, 2)] == [10, 13]
    assert [i for i, _ in index.search(q, 5, allowed_ids=[11, 13])] == [13]  # 11 shares nothing: not returned
    index.remove([10])
    assert [i for i, _ in index.search(q, 5)] == [13]
    index.upsert([13], [tok.tokens("海马养殖")])
    assert index.search(q, 5) == []
    assert index.search(tok.tokens("完全不相干的词"), 5) == []


def test_save_and_load_round_trip_and_refuse_corrupt_files(tmp_path):
    tok = TermTokenizer()
    index = LexicalIndex()
    index.upsert([1, 2], [tok.tokens(DOCS[0]), tok.tokens(DOCS[1])])
    index.save(tmp_path / "x.npz", {"version": 7})
    loaded, meta = LexicalIndex.load(tmp_path / "x.npz")
    assert meta["version"] == 7 and meta["count"] == 2
    q = tok.tokens("电池散热")
    assert loaded.search(q, 5) == index.search(q, 5)
    (tmp_path / "bad.npz").write_bytes((tmp_path / "x.npz").read_bytes()[:100])
    assert LexicalIndex.load(tmp_path / "bad.npz") is None
    assert LexicalIndex.load(tmp_path / "missing.npz") is None


@pytest.mark.parametrize("bigrams", [True, False])
def test_tokens_are_normalised_and_bigrams_optional(bigrams):
    tok = TermTokenizer(bigrams=bigrams)
    out = tok.tokens("蓬莱９－１油田ＬＩＤＡＲ")
    assert "蓬莱" in out and "lidar" in out and "油田" in out
    assert any(t.startswith("#") for t in out) is bigrams


def test_query_tokens_are_remembered_until_a_new_term_changes_the_cut():
    from matcher import tokens as tokens_module

    tokenizer = TermTokenizer()
    text = "锂离子电池极片涂布均匀性控制"
    first = tokenizer.query_tokens(text)
    assert list(first) == tokenizer.tokens(text) and "锂离子电池" not in first
    assert tokenizer.query_tokens(text) is first  # remembered, not cut again
    tokenizer.add_terms(["锂离子电池"])
    again = tokenizer.query_tokens(text)
    assert again is not first and "锂离子电池" in again and list(again) == tokenizer.tokens(text)
    for n in range(tokens_module.QUERY_MEMORY + 1):
        tokenizer.query_tokens(f"第{n}号需求：轴承噪声在线诊断")
    assert tokenizer.query_tokens(text) is not again  # the oldest texts are forgotten past QUERY_MEMORY
