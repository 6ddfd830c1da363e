"""Whether the machine's other cores are free at this instant: how many a small encode call may take.

A search's one short text encodes faster on two threads than on one (ONNX on a Zen 3 machine, alternating
runs, p50 / p95: 29.7–36.2 / 88.4–95.3 against 37.3–39.5 / 109.9–120.0 ms), but only while the other core is idle: when an API worker is ranking there, a
two-thread call waits at every layer for the thread the scheduler put aside (two to twenty times slower,
docs/benchmarks.md). Linux says how many threads are running or waiting for a core right now, machine-wide,
in ``/proc/loadavg``; reading it costs microseconds, so it is asked once per small call.
"""
from __future__ import annotations

from pathlib import Path

_LOADAVG = Path("/proc/loadavg")
# What MATCHER_SMALL_CALL_CORES may say: "auto" takes every core when nothing else runs, "one" never does.
SMALL_CALL_CORES = ("auto", "one")


def runnable_threads() -> int | None:
    """Threads on the whole machine running or ready to run now, the caller included; None where unknown.

    Not the process's own cgroup: in a container it counts the host's threads, which only makes
    :func:`cores_idle` say no more often (a small call then keeps to one thread, as with ``"one"``).
    """
    try:
        return int(_LOADAVG.read_text().split()[3].split("/")[0])
    except (OSError, ValueError, IndexError):
        return None


def cores_idle() -> bool:
    """Whether the caller is the only thread running on the machine right now (False where unknown)."""
    running = runnable_threads()
    return running is not None and running <= 1
