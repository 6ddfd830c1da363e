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


def _searches_merged_behind(encoder, busy: list[threading.Thread]) -> None:
    """Start ``busy`` (calls that take every lane of the encoder's queue), queue the searches behind them from
    threads of their own, and check that they shared one pass and got their own vectors."""
    before = encoder.merged_calls
    results: dict[str, np.ndarray] = {}
    for t in busy:
        t.start()
    deadline = time.monotonic() + 30
    while encoder._queue._running < encoder.small_call_lanes and time.monotonic() < deadline:
        time.sleep(0.005)
    threads = [threading.Thread(target=lambda s=s: results.__setitem__(s, encoder.encode([s], "query")))
               for s in SEARCHES]
    for t in threads:
        t.start()
    while len(encoder._queue._waiting) < len(SEARCHES) and time.monotonic() < deadline:
        time.sleep(0.005)
    assert all(t.is_alive() for t in busy), "a busy call ended before the searches queued: nothing to test"
    for t in [*busy, *threads]:
        t.join()
    assert encoder.merged_calls - before == len(SEARCHES) - 1
    for s in SEARCHES:
        assert np.allclose(results[s], encoder.encode([s], "query"), atol=1e-5)


def test_the_torch_encoders_own_small_calls_from_request_threads_are_merged(encoder):
    """One worker without the shared process: its request threads call the encoder directly."""
    slow = ["面向海洋牧场的智能投喂、水质在线监测与病害预警系统研发，" * 12] * SMALL_CALL  # a small call of long texts
    assert encoder.small_call_batch == SMALL_CALL
    # Small calls run side by side, one a core: fill every lane before the searches come.
    _searches_merged_behind(encoder, [threading.Thread(target=encoder.encode, args=(slow, "passage"))
                                      for _ in range(encoder.small_call_lanes)])


def test_small_passes_run_side_by_side_up_to_the_lanes_and_a_big_call_alone_before_later_small_ones():
    lock = threading.Lock()
    running: list[str] = []
    seen: list[tuple[str, tuple[str, ...]]] = []  # (what started, what else was running then)

    def encode(texts, kind, **kwargs):
        name = texts[0]
        with lock:
            seen.append((name, tuple(running)))
            running.append(name)
        time.sleep(0.15)
        with lock:
            running.remove(name)
        return np.zeros((len(texts), 2), dtype=np.float32)

    queue = EncodeQueue(encode, max_texts=2, lanes=2)
    calls = [(["a"], 0.0), (["b"], 0.0), (["big", "x", "y"], 0.05), (["c"], 0.1)]
    threads = [threading.Thread(target=lambda t=t, d=d: (time.sleep(d), queue.encode(t, "query"))) for t, d in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    started = dict(seen)
    assert set(started["b"] + started["a"]) in ({"a"}, {"b"})  # a and b side by side
    assert started["big"] == ()  # the big call alone, once a and b were done
    assert started["c"] == () and [n for n, _ in seen].index("c") > [n for n, _ in seen].index("big")  # not before it
    assert queue.side_by_side == 1 and queue._running == 0


def test_the_torch_encoders_small_calls_run_side_by_side_with_the_vectors_of_one_at_a_time(encoder):
    texts = [f"{s}（第{i}轮）" for i in range(6) for s in SEARCHES]
    alone = {t: encoder.encode([t], "query") for t in texts}
    before = encoder.small_calls_side_by_side
    got: dict[str, np.ndarray] = {}

    def run(part: list[str]) -> None:
        for t in part:
            got[t] = encoder.encode([t], "query")

    threads = [threading.Thread(target=run, args=(texts[i::2],)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert encoder.small_call_lanes == encoder._threads
    if encoder.small_call_lanes > 1:
        assert encoder.small_calls_side_by_side > before
    for t in texts:
        assert np.allclose(got[t], alone[t], atol=1e-5)


def test_searches_behind_the_torch_encoders_own_big_call_wait_for_it_and_share_one_pass(encoder):
    """An import in a single worker goes through the same queue, so searches meanwhile merge instead of racing it."""
    big = [f"第{i}号成果：海洋生物活性物质的提取、纯化与功能评价，面向功能食品。" for i in range(96)]
    _searches_merged_behind(encoder, [threading.Thread(target=encoder.encode, args=(big, "passage"))])
