"""What multi-worker tests and benchmarks start on this machine: ports, scratch schemas, uvicorn workers.

Shared by ``tests/`` and ``bench/`` so that both start API workers the same way
``matcher serve --workers N`` would, only each on its own loopback port so it
can be asked about its own index.
"""
from __future__ import annotations

import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A loopback TCP port that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def schema_url(base_url: str, schema: str) -> str:
    """``base_url`` with PostgreSQL's search_path set to ``schema``, so every table lands there."""
    return f"{base_url}{'&' if '?' in base_url else '?'}options=-csearch_path%3D{schema}"


@contextmanager
def scratch_schema(base_url: str, prefix: str = "t") -> Iterator[str]:
    """A new, empty PostgreSQL schema for the block, dropped with everything in it afterwards.

    Yields the URL that points at it (see :func:`schema_url`).
    """
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base_url)
    try:
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        yield schema_url(base_url, schema)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


def start_worker(port: int, env: dict, log) -> subprocess.Popen:
    """One API worker (``api.asgi:app`` under uvicorn) on ``127.0.0.1:port``, logging to the open file ``log``."""
    return subprocess.Popen([sys.executable, "-m", "uvicorn", "api.asgi:app", "--host", "127.0.0.1", "--port",
                             str(port), "--log-level", "warning"], cwd=ROOT, env=env, stdout=log, stderr=log)


class WorkerDidNotStart(RuntimeError):
    """A worker exited, or did not answer ``/health`` in time; the message ends with its log."""


def wait_healthy(base: str, proc: subprocess.Popen, log_path: Path, limit_s: float) -> None:
    """Return once ``base``/health answers 200; raise :class:`WorkerDidNotStart` if the process dies or time runs out."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise WorkerDidNotStart(f"worker exited: {log_path.read_text(errors='replace')[-3000:]}")
        try:
            if httpx.get(f"{base}/health", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise WorkerDidNotStart(f"worker did not start in {limit_s:g} s: {log_path.read_text(errors='replace')[-3000:]}")
