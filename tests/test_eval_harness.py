"""`matcher eval` runs the real ranking on a BEIR-style set and reports the figures."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from matcher import cli
from matcher.evaluation.dataset import load_eval_set, subsample
from matcher.settings import get_settings

from .conftest import CACHE

EVAL = Path(__file__).resolve().parents[2] / "shared" / "eval"
runner = CliRunner()
pytestmark = pytest.mark.skipif(not (EVAL / "csl_goal").is_dir(), reason="../shared/eval is not beside the project")


def _write(directory: Path, eval_set, grades: dict[str, dict[str, int]] | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "queries.jsonl").write_text("".join(
        json.dumps({"id": q.id, "text": q.text, "category": q.category}, ensure_ascii=False) + "\n"
        for q in eval_set.queries), encoding="utf-8")
    (directory / "corpus.jsonl").write_text("".join(
        json.dumps({"id": d.id, "title": d.title, "text": d.text}, ensure_ascii=False) + "\n"
        for d in eval_set.corpus), encoding="utf-8")
    qrels = grades or eval_set.qrels
    (directory / "qrels.jsonl").write_text("".join(
        json.dumps({"query_id": q, "doc_id": d, "relevance": g}) + "\n" for q, docs in qrels.items()
        for d, g in docs.items()), encoding="utf-8")
    return directory


@pytest.fixture(scope="module")
def small_set():
    return subsample(load_eval_set(EVAL / "csl_goal", "dev"), docs=60, queries=12)


@pytest.fixture
def env(tmp_path, monkeypatch, encoder, vector_cache_url):
    monkeypatch.setenv("MATCHER_DATA_DIR", str(CACHE))  # the model and the eval vector cache live there
    monkeypatch.delenv("DATABASE_URL", raising=False)
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def _run(*args) -> dict:
    r = runner.invoke(cli.app, ["eval", *args, "--json"])
    assert r.exit_code == 0, r.output
    return json.loads(r.output.strip().splitlines()[-1])


def test_every_method_reports_the_figures_overall_and_per_category(env, small_set):
    directory = _write(env / "set", small_set)
    reports = {m: _run("--dataset", str(directory), "--method", m) for m in ("bm25", "dense", "hybrid", "full")}
    for m, r in reports.items():
        assert set(r["overall"]) == {"recall@10", "mrr@10", "ndcg@10"}
        assert r["queries"] == 12 and r["corpus"] == len(small_set.corpus)
        assert r["queries_per_s"] > 0
        assert sum(c["queries"] for c in r["per_category"].values()) == 12
        # The goal clause was cut from these very abstracts: every method finds most of them.
        assert r["overall"]["recall@10"] >= 0.75, (m, r["overall"])
    assert reports["full"]["weak_below"] == 0.88


def test_judged_candidates_and_graded_relevance(env, small_set):
    # Each query judges its labelled document (grade 2) and one distractor (grade 1).
    distractor = next(d.id for d in small_set.corpus if all(d.id not in g for g in small_set.qrels.values()))
    grades = {q: {**docs, **{d: 2 for d in docs}, distractor: 1} for q, docs in small_set.qrels.items()}
    directory = _write(env / "graded", small_set, grades)
    judged = _run("--dataset", str(directory), "--method", "dense", "--candidates", "judged", "--relevant-at", "2")
    # Only two candidates per query, both judged: the labelled one is always within the top 10.
    assert judged["overall"]["recall@10"] == 1.0
    assert 0.5 <= judged["overall"]["mrr@10"] <= 1.0
    lenient = _run("--dataset", str(directory), "--method", "dense", "--candidates", "judged")
    assert lenient["overall"]["mrr@10"] == 1.0  # with relevant-at 1 either judged document counts


def test_a_rerun_reads_vectors_from_the_cache(env, small_set, monkeypatch):
    directory = _write(env / "again", small_set)
    _run("--dataset", str(directory), "--method", "dense")
    from embeddings.encoder import Encoder

    calls = []
    original = Encoder.encode
    monkeypatch.setattr(Encoder, "encode", lambda self, texts, kind, **kw: calls.append(len(texts)) or original(self, texts, kind, **kw))
    _run("--dataset", str(directory), "--method", "dense")
    assert sum(calls) <= 3  # the model's own start-up probe only: no document or query re-encoded


def test_bad_dataset_and_options_are_explained(env):
    (env / "empty").mkdir()
    r = runner.invoke(cli.app, ["eval", "--dataset", str(env / "empty")])
    assert r.exit_code == 2 and "queries.jsonl" in r.output
    r = runner.invoke(cli.app, ["eval", "--dataset", str(env / "empty"), "--method", "magic"])
    assert r.exit_code != 0 and "method" in r.output
    r = runner.invoke(cli.app, ["eval", "--dataset", str(env / "empty"), "--set", "nonsense=1"])
    assert r.exit_code != 0 and "未知的权重" in r.output


def test_weight_overrides_are_typed_as_declared():
    from matcher.cli_quality import parse_overrides
    from matcher.scoring import DEFAULT_WEIGHTS

    got = parse_overrides(["lexical=0.3", "fusion=rrf", "long_text_chars=300", "lexical_terms=64"])
    assert (got.lexical, got.fusion, got.long_text_chars, got.lexical_terms) == (0.3, "rrf", 300, 64)
    assert parse_overrides(["lexical_terms=none"], got).lexical_terms is None
    assert DEFAULT_WEIGHTS.lexical_terms is None
    with pytest.raises(typer.BadParameter, match="无法解析"):
        parse_overrides(["long_text_chars=many"])
