"""CoreSlots: small encode calls side by side on a core each, big calls alone, everyone in arrival order."""
from __future__ import annotations

import threading
import time

from embeddings.core_slots import CoreSlots


def _hold(slots: CoreSlots, small: bool, log: list, name: str, release: threading.Event, may_widen: bool = True):
    with slots.take(small, may_widen) as got:
        log.append((name, got))
        release.wait(5)


def _start(*args) -> threading.Thread:
    thread = threading.Thread(target=_hold, args=args)
    thread.start()
    return thread


def _wait_until(condition, seconds: float = 5) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_small_calls_run_side_by_side_and_a_big_call_waits_for_both():
    slots, log, go = CoreSlots(2, idle=lambda: False), [], threading.Event()
    a, b = _start(slots, True, log, "a", go), _start(slots, True, log, "b", go)
    _wait_until(lambda: len(log) == 2)
    assert sorted(log) == [("a", 1), ("b", 1)] and slots.side_by_side == 1
    big = _start(slots, False, log, "big", go)
    time.sleep(0.1)
    assert len(log) == 2  # both cores are taken: the big call waits
    go.set()
    for t in (a, b, big):
        t.join()
    assert log[-1] == ("big", 2)


def test_nobody_overtakes_a_call_waiting_in_line():
    slots, log = CoreSlots(2, idle=lambda: False), []
    first_chunk, rest = threading.Event(), threading.Event()
    big = _start(slots, False, log, "chunk 1", first_chunk)
    _wait_until(lambda: log == [("chunk 1", 2)])
    search = _start(slots, True, log, "search", rest)  # arrives while the big call's first chunk runs
    time.sleep(0.05)
    second = _start(slots, False, log, "chunk 2", rest)  # the big call's next chunk, asked for after it
    time.sleep(0.05)
    late = _start(slots, True, log, "late search", rest)  # behind the waiting chunk: must not overtake it
    time.sleep(0.05)
    first_chunk.set()
    _wait_until(lambda: len(log) >= 2)
    time.sleep(0.1)
    assert log[1] == ("search", 1) and len(log) == 2  # chunk 2 needs both cores, the late search waits behind it
    rest.set()
    for t in (big, search, second, late):
        t.join()
    assert [name for name, _ in log] == ["chunk 1", "search", "chunk 2", "late search"]


def test_a_small_call_alone_on_an_idle_machine_takes_every_core():
    idle = [True]
    slots, log, go = CoreSlots(2, idle=lambda: idle[0]), [], threading.Event()
    go.set()
    _hold(slots, True, log, "idle", go)
    idle[0] = False
    _hold(slots, True, log, "busy machine", go)
    idle[0] = True
    _hold(slots, True, log, "not allowed", go, False)
    assert log == [("idle", 2), ("busy machine", 1), ("not allowed", 1)] and slots.widened == 1
    waiting, first = threading.Event(), threading.Event()
    holder = _start(slots, True, log, "holder", first)  # alone: takes both
    _wait_until(lambda: log[-1][0] == "holder")
    queued = [_start(slots, True, log, f"queued {n}", waiting) for n in range(2)]
    time.sleep(0.05)
    first.set()
    _wait_until(lambda: len(log) == 6)
    assert log[-3][1] == 2 and log[-2:] == [("queued 0", 1), ("queued 1", 1)]  # others in line: a core each
    waiting.set()
    for t in (holder, *queued):
        t.join()
    one_core = CoreSlots(1, idle=lambda: True)
    _hold(one_core, True, log, "one core", go)
    assert log[-1] == ("one core", 1) and one_core.widened == 0


def test_a_call_that_fails_gives_its_cores_back():
    slots = CoreSlots(2, idle=lambda: False)
    try:
        with slots.take(False):
            raise RuntimeError("encoding failed")
    except RuntimeError:
        pass
    log, go = [], threading.Event()
    go.set()
    _hold(slots, False, log, "next", go)
    assert log == [("next", 2)]
