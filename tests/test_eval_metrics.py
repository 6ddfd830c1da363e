"""The harness' figures on hand-computed cases, and its reading of BEIR-style directories."""
import json
import math

import pytest

from matcher.evaluation.dataset import DatasetError, load_eval_set
from matcher.evaluation.metrics import mean_scores, mrr_at, ndcg_at, recall_at, score_run


def test_recall_counts_only_grades_at_the_threshold():
    grades = {"a": 2, "b": 1, "c": 0}
    assert recall_at(["x", "b", "a"], grades, 3) == 1.0
    assert recall_at(["x", "b", "y"], grades, 3) == 0.5
    assert recall_at(["x", "b", "a"], grades, 3, relevant_at=2) == 1.0
    assert recall_at(["x", "b", "y"], grades, 3, relevant_at=2) == 0.0
    assert recall_at(["a"], {"a": 0}, 1) == 0.0  # nothing relevant at all


def test_mrr_is_the_first_relevant_rank_within_k():
    assert mrr_at(["x", "y", "a"], {"a": 1}, 10) == pytest.approx(1 / 3)
    assert mrr_at(["x", "y", "a"], {"a": 1}, 2) == 0.0
    assert mrr_at(["b", "a"], {"a": 2, "b": 1}, 10, relevant_at=2) == 0.5


def test_ndcg_uses_grades_as_linear_gains():
    # Ranked: b (gain 1) at 1, a (gain 2) at 2. DCG = 1/log2(2) + 2/log2(3).
    # Ideal: a then b: 2/log2(2) + 1/log2(3).
    dcg = 1 + 2 / math.log2(3)
    idcg = 2 + 1 / math.log2(3)
    assert ndcg_at(["b", "a"], {"a": 2, "b": 1}, 10) == pytest.approx(dcg / idcg)
    assert ndcg_at(["a", "b"], {"a": 2, "b": 1}, 10) == pytest.approx(1.0)
    assert ndcg_at(["x"], {"a": 1}, 10) == 0.0


def test_mean_scores_average_per_figure():
    rows = [score_run(["a"], {"a": 1}, 10), score_run(["x"], {"a": 1}, 10)]
    assert mean_scores(rows) == {"recall@10": 0.5, "mrr@10": 0.5, "ndcg@10": 0.5}


def _write(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def test_dataset_reads_jsonl_split_and_drops_unlabelled_queries(tmp_path):
    _write(tmp_path / "queries.jsonl", [{"id": "q1", "text": "锂电池", "split": "dev", "category": "工学"},
                                        {"id": "q2", "text": "无标注"},
                                        {"id": "q3", "text": "测试集", "split": "test"}])
    _write(tmp_path / "corpus.jsonl", [{"id": "d1", "text": "锂离子电池热管理"}, {"id": "d2", "title": "t", "text": "x"}])
    _write(tmp_path / "qrels.jsonl", [{"query_id": "q1", "doc_id": "d1", "relevance": 2},
                                      {"query_id": "q3", "doc_id": "d2", "relevance": 1},
                                      {"query_id": "q1", "doc_id": "missing", "relevance": 1}])
    ds = load_eval_set(tmp_path, split="dev")
    assert [q.id for q in ds.queries] == ["q1"]
    assert ds.qrels["q1"] == {"d1": 2}
    assert len(ds.corpus) == 2


def test_dataset_reads_beir_tsv_qrels(tmp_path):
    _write(tmp_path / "queries.jsonl", [{"_id": "x", "id": "q1", "text": "a"}])
    _write(tmp_path / "corpus.jsonl", [{"id": "d1", "text": "b"}])
    (tmp_path / "qrels").mkdir()
    (tmp_path / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    assert load_eval_set(tmp_path).qrels == {"q1": {"d1": 1}}


@pytest.mark.parametrize("broken, message", [
    ({"queries.jsonl": None}, "queries.jsonl"),
    ({"qrels.jsonl": "{not json\n"}, "第 1 行"),
    ({"qrels.jsonl": '{"query_id": "q9", "doc_id": "d1"}\n'}, "没有带相关性标注"),
])
def test_dataset_errors_are_explained(tmp_path, broken, message):
    files = {"queries.jsonl": '{"id": "q1", "text": "a"}\n', "corpus.jsonl": '{"id": "d1", "text": "b"}\n',
             "qrels.jsonl": '{"query_id": "q1", "doc_id": "d1", "relevance": 1}\n'}
    files.update(broken)
    for name, text in files.items():
        if text is not None:
            (tmp_path / name).write_text(text, encoding="utf-8")
    with pytest.raises(DatasetError, match=message):
        load_eval_set(tmp_path)
