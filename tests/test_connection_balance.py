"""Several workers keep their keep-alive connections even (api/connection_balance.py)."""
from __future__ import annotations

import http.client
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from api.connection_balance import ENV, ConnectionTable, shared_table, should_shed

ROOT = Path(__file__).resolve().parents[1]


async def pid_app(scope, receive, send):
    """The smallest ASGI app that says which worker answered."""
    if scope["type"] != "http":
        return
    body = str(os.getpid()).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def test_a_worker_sheds_only_when_it_holds_two_more_than_the_least_loaded():
    assert should_shed(4, [0]) and should_shed(3, [1]) and should_shed(5, [3, 9])
    assert not should_shed(2, [2]) and not should_shed(3, [2]) and not should_shed(1, [0])
    assert not should_shed(7, [])  # one worker: nobody to hand a connection to


_HOLD = """
import sys, time
from api.connection_balance import ConnectionTable
t = ConnectionTable(sys.argv[1])
for _ in range(int(sys.argv[2])):
    t.opened()
print(t.slot, flush=True)
time.sleep(60)
"""


def test_workers_claim_distinct_slots_see_each_other_and_a_dead_worker_s_slot_is_taken_again(tmp_path):
    with shared_table(2) as path:
        other = subprocess.Popen([sys.executable, "-c", _HOLD, str(path), "3"], cwd=ROOT, stdout=subprocess.PIPE,
                                 text=True)
        try:
            their_slot = int(other.stdout.readline())
            mine = ConnectionTable(path)  # this process is the second worker
            assert mine.slot != their_slot and mine.others() == [3]
            assert mine.shed_one() is False  # holding 0 against 3: the other one should shed, not this one
            for _ in range(5):
                mine.opened()
            assert mine.shed_one() is True and mine.shed_one() is False  # one connection at a time
            mine.closed(shed=True)
            assert mine.count == 4 and mine.shed_one() is False  # 4 against 3: as even as it needs to be
            third = subprocess.run([sys.executable, "-c", _HOLD, str(path), "0"], cwd=ROOT, capture_output=True,
                                   text=True, timeout=60)
            assert "every slot of the connection table is held" in third.stderr
        finally:
            other.kill()
            other.wait()
        # Its count of 3 stays in the table, but a killed worker's slot is not held: it is not a reason to shed.
        for _ in range(3):
            mine.opened()
        assert mine.others() == [3] and mine.count == 7 and mine.shed_one() is False
        # The dead worker's byte-range lock went with it: a restarted worker takes its slot and starts from 0.
        again = subprocess.Popen([sys.executable, "-c", _HOLD, str(path), "0"], cwd=ROOT, stdout=subprocess.PIPE,
                                 text=True)
        try:
            assert int(again.stdout.readline()) == their_slot
            assert mine.others() == [0]
        finally:
            again.kill()
            again.wait()
            mine.close()
    assert not path.exists()


_SERVE = """
import sys, uvicorn
from api.connection_balance import shared_table
with shared_table(2):
    uvicorn.run("tests.test_connection_balance:pid_app", host="127.0.0.1", port=int(sys.argv[1]), workers=2,
                http="api.http_protocol:NoDelayHttpToolsProtocol", loop="auto", log_level="warning")
"""


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answer(conn: http.client.HTTPConnection) -> tuple[int, bool]:
    conn.request("GET", "/")
    response = conn.getresponse()
    pid = int(response.read())
    return pid, response.getheader("connection", "").lower() == "close"


def test_four_keep_alive_connections_end_up_two_on_each_of_two_workers():
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-c", _SERVE, str(port)], cwd=ROOT)
    try:
        deadline = time.monotonic() + 60
        while True:
            pids = set()
            for _ in range(20):
                probe = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                try:
                    pids.add(_answer(probe)[0])
                except OSError:
                    break
                finally:
                    probe.close()  # an open probe would count as a connection in the balance
            if len(pids) == 2 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert len(pids) == 2, "both workers should be up and answering"
        # Opened together, as a load generator or a proxy's upstream pool opens them; http.client opens a new
        # connection by itself for the request after a response that said Connection: close.
        conns = [http.client.HTTPConnection("127.0.0.1", port, timeout=5) for _ in range(4)]
        for c in conns:
            c.connect()
        def round_of_requests() -> tuple[list[int], int]:
            answers = [_answer(c) for c in conns]
            return sorted(Counter(pid for pid, _ in answers).values()), sum(closed for _, closed in answers)

        # A reconnect lands on whichever worker accepts first, and a worker starved of CPU (the suite runs beside
        # this) may lose that race many times in a row: the test waits for the even split, not a fixed number of
        # rounds. Without the table the split never changes, since keep-alive connections stay where they landed.
        closes, rounds, deadline = 0, 0, time.monotonic() + 30
        landing, closed = round_of_requests()
        while (landing != [2, 2] or closed) and time.monotonic() < deadline:
            landing, closed = round_of_requests()
            closes, rounds = closes + closed, rounds + 1
        assert landing == [2, 2], f"connections per worker after {rounds} rounds: {landing} ({closes} closed to rebalance)"
        for _ in range(20):  # and once even, it stays so: no connection is closed again
            assert round_of_requests() == ([2, 2], 0)
        for c in conns:
            c.close()
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@pytest.mark.parametrize("workers, expected", [(1, False), (2, True)])
def test_serve_gives_several_workers_a_table_with_a_slot_each(monkeypatch, workers, expected):
    import uvicorn
    from typer.testing import CliRunner

    from matcher.cli import app

    seen = []

    def run(*args, **kwargs):
        path = os.environ.get(ENV)
        seen.append(Path(path).stat().st_size if path else None)

    monkeypatch.delenv(ENV, raising=False)
    monkeypatch.setattr(uvicorn, "run", run)
    result = CliRunner().invoke(app, ["serve", "--workers", str(workers), "--no-shared-encoder"])
    assert result.exit_code == 0, result.output
    assert seen == [8 * workers if expected else None]
    assert ENV not in os.environ  # the table goes with the server
