"""The machine-wide count of running threads that decides whether a small encode call may take every core."""
from __future__ import annotations

import subprocess
import sys
import time

import pytest

from embeddings import cpu_load


@pytest.mark.skipif(not cpu_load._LOADAVG.exists(), reason="no /proc/loadavg (not Linux)")
def test_running_threads_are_counted_and_a_busy_core_means_not_idle():
    assert cpu_load.runnable_threads() >= 1  # this very thread is running
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        time.sleep(0.3)  # both started and spinning
        reads = [cpu_load.runnable_threads() for _ in range(50)]
        assert min(reads) >= 2, reads  # the spinners are always ready to run, besides this thread
        assert not any(cpu_load.cores_idle() for _ in range(50))
    finally:
        for p in spinners:
            p.kill()
            p.wait()


def test_unknown_load_is_never_idle(monkeypatch, tmp_path):
    monkeypatch.setattr(cpu_load, "_LOADAVG", tmp_path / "missing")
    assert cpu_load.runnable_threads() is None and not cpu_load.cores_idle()
    garbled = tmp_path / "loadavg"
    garbled.write_text("0.00 0.00\n")
    monkeypatch.setattr(cpu_load, "_LOADAVG", garbled)
    assert cpu_load.runnable_threads() is None and not cpu_load.cores_idle()
