"""Keep-alive connections spread evenly over the workers of ``matcher serve --workers N``.

uvicorn's workers share one listening socket, and whichever worker's event loop is waiting accepts the next
connection. A client that opens a few keep-alive connections at once (a load generator, a reverse proxy's
upstream pool) therefore often has them all, or all but one, accepted by one worker: that worker's core then
serves them all while the other core idles, for as long as the connections live (docs/scaling.md, "Served pages
at 4 connections depend on how the connections land"). Accepting one connection per wake-up did not change that.

So the workers share a small table of how many connections each holds (one 8-byte slot a worker, in a file that
``matcher serve`` creates and names in ``MATCHER_CONNECTION_TABLE``). A worker holding at least
:data:`EXCESS` more than the least loaded worker answers its next request with ``Connection: close``, one
connection at a time, and the client's reconnection lands anew; the counts converge to within one of each other.
A worker claims its slot with a byte-range lock held for its lifetime, so a worker that uvicorn restarts takes
the slot of the one that died. Without the setting (one worker, tests, another server) nothing is shed.
"""
from __future__ import annotations

import fcntl
import logging
import mmap
import os
import shutil
import struct
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)
ENV = "MATCHER_CONNECTION_TABLE"
SLOT = 8
# A difference of one is the best an odd number of connections allows; two is worth a reconnection.
EXCESS = 2


def should_shed(mine: int, others: list[int]) -> bool:
    """Whether a worker holding ``mine`` connections should close one, given the other workers' counts."""
    return bool(others) and mine >= min(others) + EXCESS


class ConnectionTable:
    """This worker's slot in the shared table, and a view of everyone's counts."""

    def __init__(self, path: str | Path):
        self._fd = os.open(path, os.O_RDWR)
        size = os.fstat(self._fd).st_size
        self.slots = size // SLOT
        if self.slots < 2:
            os.close(self._fd)
            raise ValueError(f"{path}: a connection table needs a slot for each of at least two workers")
        self._map = mmap.mmap(self._fd, self.slots * SLOT)
        self.slot = self._claim()
        self.count = 0
        self._write()
        self.shedding = False  # one connection at a time: the counts move only once it has closed

    def _claim(self) -> int:
        # A few tries: another worker checking whether a slot is held holds that slot's lock for a moment.
        for _ in range(3):
            for slot in range(self.slots):
                try:
                    fcntl.lockf(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB, SLOT, slot * SLOT)
                except OSError:
                    continue
                return slot
            time.sleep(0.01)
        raise RuntimeError("every slot of the connection table is held: more workers than slots")

    def _write(self) -> None:
        struct.pack_into("<q", self._map, self.slot * SLOT, self.count)

    def _others(self) -> list[tuple[int, int]]:
        counts = struct.unpack_from(f"<{self.slots}q", self._map)
        return [(i, c) for i, c in enumerate(counts) if i != self.slot]

    def others(self) -> list[int]:
        """The other workers' connection counts."""
        return [c for _, c in self._others()]

    def opened(self) -> None:
        """A connection was accepted by this worker."""
        self.count += 1
        self._write()

    def closed(self, shed: bool) -> None:
        """A connection of this worker ended (``shed``: one this worker chose to close)."""
        self.count = max(0, self.count - 1)
        if shed:
            self.shedding = False
        self._write()

    def close(self) -> None:
        """Give up the slot (its count set to 0) and the file."""
        self.count = 0
        self._write()
        self._map.close()
        os.close(self._fd)

    def _held(self, slot: int) -> bool:
        """Whether a live worker holds ``slot`` (a killed one's lock went with it; its count may be stale)."""
        try:
            fcntl.lockf(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB, SLOT, slot * SLOT)
        except OSError:
            return True
        fcntl.lockf(self._fd, fcntl.LOCK_UN, SLOT, slot * SLOT)
        return False

    def shed_one(self) -> bool:
        """Whether to close the connection now answering a request; at most one is being closed at a time.

        Only live workers count: while uvicorn restarts a killed one, its last count must not make the others
        close connection after connection that can only land on them again.
        """
        if self.shedding:
            return False
        others = self._others()
        if not should_shed(self.count, [c for _, c in others]):
            return False
        if not should_shed(self.count, [c for i, c in others if self._held(i)]):  # only then: a syscall a slot
            return False
        self.shedding = True
        return True


_table: ConnectionTable | None = None
_opened = False


def worker_table() -> ConnectionTable | None:
    """This worker's table, opened on first use from ``MATCHER_CONNECTION_TABLE``; None where it is not set."""
    global _table, _opened
    if not _opened:
        _opened = True
        path = os.environ.get(ENV)
        if path:
            try:
                _table = ConnectionTable(path)
            except (OSError, ValueError, RuntimeError) as exc:  # e.g. a worker started before its predecessor left
                log.warning("connection table %s unusable, this worker will not balance: %s", path, exc)
    return _table


@contextmanager
def shared_table(workers: int):
    """A fresh table for ``workers`` workers, named in the environment the workers are started with."""
    folder = tempfile.mkdtemp(prefix="matcher-connections-")
    path = Path(folder) / "table"
    path.write_bytes(bytes(SLOT * workers))
    previous = os.environ.get(ENV)
    os.environ[ENV] = str(path)
    try:
        yield path
    finally:
        if previous is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = previous
        shutil.rmtree(folder, ignore_errors=True)
