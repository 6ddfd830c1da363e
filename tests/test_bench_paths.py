"""The benchmarks run from any clone with ../shared beside it, and on one where `make run` never ran."""
from __future__ import annotations

import importlib
import subprocess
from pathlib import Path

from bench import paths, synthetic

ROOT = Path(__file__).resolve().parents[1]


def test_eval_data_is_found_beside_the_clone_or_where_the_setting_says(monkeypatch, tmp_path):
    monkeypatch.delenv("MATCHER_EVAL_DIR", raising=False)
    assert importlib.reload(paths).EVAL == ROOT.parent / "shared" / "eval"
    assert (paths.EVAL / "csl_goal" / "corpus.jsonl").exists()
    monkeypatch.setenv("MATCHER_EVAL_DIR", str(tmp_path))
    assert importlib.reload(paths).EVAL == tmp_path
    monkeypatch.delenv("MATCHER_EVAL_DIR")
    importlib.reload(paths)


def test_no_tracked_file_names_the_machine_s_own_folders():
    # A path like /work/shared holds only on the machine it was written on; CI clones elsewhere.
    listed = subprocess.run(["git", "ls-files", "*.py", "Makefile", ".ci/run", "*.toml"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.split()
    offenders = [name for name in listed if "/work/" in (ROOT / name).read_text(encoding="utf-8")
                 and name != "tests/test_bench_paths.py"]
    assert offenders == []


def test_a_bench_service_links_a_model_folder_that_exists_even_on_a_fresh_clone(tmp_path):
    shared = tmp_path / "repo" / "data" / "models"  # not there yet, as on a fresh clone
    service = tmp_path / "bench" / "100"
    service.mkdir(parents=True)
    synthetic.link_models(service, shared)
    assert (service / "models").resolve() == shared.resolve() and shared.is_dir()
    # What resolve_model_dir does first: with a link to nothing it raised FileExistsError.
    (service / "models").mkdir(parents=True, exist_ok=True)


def test_a_format_2_bench_build_gets_its_needs_query_terms_in_place(tmp_path):
    # A 10^6-outcome build takes an hour: migration 0006 and the needs' terms are added to it instead.
    from alembic import command
    from sqlalchemy import select

    from matcher.db import alembic_config, make_engine, upgrade
    from matcher.explain import query_terms
    from matcher.models import Need

    url = f"sqlite:///{tmp_path / 'matcher.db'}"
    engine = make_engine(url)
    upgrade(engine)
    cfg = alembic_config(url)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0005")
    with engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO enterprises (name, created_at, updated_at)"
                             " VALUES ('威海合成企业', '2026-12-06', '2026-12-06')")
        conn.exec_driver_sql(
            "INSERT INTO needs (enterprise_id, title, title_key, description, keywords, cooperation_modes, visibility,"
            " status, content_hash, budget_negotiable, created_at, updated_at) VALUES (1, '锂电池防爆', 'k',"
            " '需要提高锂离子电池的安全性', '[\"锂电池\"]', '[]', 'public', 'open', '', 0, '2026-12-06', '2026-12-06')")
    engine.dispose()
    synthetic._add_query_terms(url)
    engine = make_engine(url)
    with engine.connect() as conn:
        stored = conn.scalar(select(Need.query_terms))
    engine.dispose()
    expected = query_terms(Need(title="锂电池防爆", description="需要提高锂离子电池的安全性", keywords=["锂电池"]))
    assert stored == expected and "锂离子" in stored


def test_make_bench_and_the_serving_bench_say_when_the_load_generator_shares_the_cores_it_measures(monkeypatch,
                                                                                                   tmp_path):
    from bench import bench_serving, run_all

    monkeypatch.setenv("PATH", str(tmp_path))  # no wrk on this PATH
    run, named = bench_serving.load_generator("auto")
    assert run is bench_serving.run_httpx and bench_serving.HTTPX_CAVEAT in named
    assert any(bench_serving.HTTPX_CAVEAT in w for w in run_all.preflight())  # before the long run starts
    (tmp_path / "wrk").write_text("#!/bin/sh\n")
    (tmp_path / "wrk").chmod(0o755)
    run, named = bench_serving.load_generator("auto")
    assert run is bench_serving.run_wrk and bench_serving.HTTPX_CAVEAT not in named
    assert run_all.preflight() == []
    assert bench_serving.HTTPX_CAVEAT in bench_serving.load_generator("httpx")[1]
