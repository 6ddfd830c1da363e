"""Encode calls that wait together share one forward pass, and each caller still gets its own vectors."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from embeddings.encode_queue import EncodeQueue
from embeddings.encoder import SMALL_CALL

SEARCHES = ["锂离子电池热管理", "海参苗种繁育与病害防控", "曲轴表面激光强化", "工业机器人视觉定位"]
LONG_JOB = [f"第{i}号成果：海洋生物活性物质的提取、纯化与功能评价，面向功能食品和医药中间体。" for i in range(96)]


def _behind_a_long_job(queue: EncodeQueue, calls: list[tuple[list[str], str]]) -> list:
    """Start a long call, queue ``calls`` behind it from threads of their own; each call's result or error."""
    results: list = [None] * len(calls)

    def run(i: int, texts: list[str], kind: str) -> None:
        try:
            results[i] = queue.encode(texts, kind)
        except Exception as exc:  # the caller's own error, as it would see it
            results[i] = exc

    long_job = threading.Thread(target=queue.encode, args=(LONG_JOB, "passage"))
    long_job.start()
    time.sleep(0.05)  # let it take the model
    threads = [threading.Thread(target=run, args=(i, t, k)) for i, (t, k) in enumerate(calls)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while len(queue._waiting) < len(calls) and time.monotonic() < deadline:
        time.sleep(0.005)
    assert long_job.is_alive(), "the long job ended before the small calls queued: nothing to test"
    assert len(queue._waiting) == len(calls)
    for t in [long_job, *threads]:
        t.join()
    return results


def test_small_calls_waiting_together_run_as_one_and_get_their_own_vectors(encoder):
    queue = EncodeQueue(encoder.encode, max_texts=SMALL_CALL)
    results = _behind_a_long_job(queue, [([s], "query") for s in SEARCHES])
    assert queue.merged_calls == len(SEARCHES) - 1
    for text, got in zip(SEARCHES, results):
        assert got.shape == (1, encoder.dim)
        assert np.allclose(got, encoder.encode([text], "query"), atol=1e-5)
    # A call that finds the model free runs alone, at once.
    alone = queue.encode(SEARCHES[:1], "query")
    assert queue.merged_calls == len(SEARCHES) - 1 and np.allclose(alone, results[0], atol=1e-5)


def test_only_calls_of_one_kind_and_within_the_size_limit_share(encoder):
    queue = EncodeQueue(encoder.encode, max_texts=3)
    calls = [(SEARCHES[:2], "query"), (SEARCHES[2:3], "passage"), (SEARCHES[3:], "query"), (SEARCHES[:1], "query")]
    results = _behind_a_long_job(queue, calls)
    # Whichever query call leads takes query calls up to three texts; the passage call never joins them.
    assert 1 <= queue.merged_calls <= 2
    for (texts, kind), got in zip(calls, results):
        assert np.allclose(got, encoder.encode(texts, kind), atol=1e-5)


def test_a_failing_call_fails_alone_and_the_others_are_answered(encoder):
    queue = EncodeQueue(encoder.encode, max_texts=SMALL_CALL)
    calls = [(SEARCHES[:1], "query"), ([None], "query"), (SEARCHES[1:2], "query")]  # None is no text
    results = _behind_a_long_job(queue, calls)
    assert isinstance(results[1], TypeError)
    for i in (0, 2):
        assert np.allclose(results[i], encoder.encode(calls[i][0], "query"), atol=1e-5)
    assert queue.merged_calls == 0  # the shared pass failed, so nobody was answered by it


def test_calls_with_options_or_many_texts_run_alone(encoder):
    queue = EncodeQueue(encoder.encode, max_texts=SMALL_CALL)
    seen = []
    got = queue.encode(SEARCHES[:2], "query", on_progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (2, 2) and np.allclose(got, encoder.encode(SEARCHES[:2], "query"), atol=1e-5)
    assert queue.encode([], "query").shape == (0, encoder.dim)
    with pytest.raises(ValueError):
        queue.encode(SEARCHES, "not-a-kind")


def test_the_torch_encoders_own_small_calls_from_request_threads_are_merged(encoder):
    """One worker without the shared process: its request threads call the encoder directly."""
    slow = ["面向海洋牧场的智能投喂、水质在线监测与病害预警系统研发，" * 12] * SMALL_CALL  # a small call of long texts
    before = encoder._small_calls.merged_calls
    results: dict[str, np.ndarray] = {}
    first = threading.Thread(target=encoder.encode, args=(slow, "passage"))
    first.start()
    time.sleep(0.05)
    threads = [threading.Thread(target=lambda s=s: results.__setitem__(s, encoder.encode([s], "query")))
               for s in SEARCHES]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while len(encoder._small_calls._waiting) < len(SEARCHES) and time.monotonic() < deadline:
        time.sleep(0.005)
    assert first.is_alive(), "the first call ended before the searches queued: nothing to test"
    for t in [first, *threads]:
        t.join()
    assert encoder.small_call_batch == SMALL_CALL
    assert encoder._small_calls.merged_calls - before == len(SEARCHES) - 1
    for s in SEARCHES:
        assert np.allclose(results[s], encoder.encode([s], "query"), atol=1e-5)
