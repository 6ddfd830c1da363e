"""The cores an ONNX encoder hands out to the calls running at once: a small call one, a big call all.

ONNX Runtime runs one session's ``run`` from several threads at once, so two searches arriving together
can be encoded side by side on one core each instead of one after the other (which left a core idle
while the API workers waited for their vectors). A big call (an import, an index build) runs on the
all-core session and must not share the cores with anything, or its threads wait on each other at
every layer; it takes every slot, and small calls arriving while it waits queue behind it, so a stream
of searches cannot starve an import (the encoder takes slots one batch at a time, so a search waits
behind at most one batch of it). A small call that finds every slot free, nobody in line and the
machine otherwise idle takes them all: alone, it took about 0.8× the time on two Zen 3 cores
(:mod:`embeddings.cpu_load`).
"""
from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager


class CoreSlots:
    """``cores`` slots handed out first come, first served; :meth:`take` yields how many a call got."""

    def __init__(self, cores: int, idle: Callable[[], bool]):
        self.cores = max(1, cores)
        self._idle = idle
        self._free = self.cores
        self._line: deque[object] = deque()  # calls waiting, oldest first: nobody is passed over
        self._state = threading.Condition()
        self.side_by_side = 0  # small calls that started while another call was running
        self.widened = 0  # small calls that took every slot (the machine otherwise idle)

    @contextmanager
    def take(self, small: bool, may_widen: bool = True) -> Iterator[int]:
        """Hold the call's cores while the body runs: 1 for a small call (or all of them, when
        ``may_widen`` and nothing else runs or waits here or runs on the machine), all for a big one.

        Strictly in arrival order, so a big call's next chunk cannot overtake the searches that
        arrived while its last chunk ran, and a stream of searches cannot starve a big call.
        """
        ticket = object()
        with self._state:
            self._line.append(ticket)
            self._state.wait_for(lambda: self._line[0] is ticket and self._free >= (1 if small else self.cores))
            self._line.popleft()
            if not small:
                got = self.cores
            elif self._free < self.cores:
                self.side_by_side += 1
                got = 1
            elif self.cores > 1 and may_widen and not self._line and self._idle():  # nobody waiting, here or elsewhere
                self.widened += 1
                got = self.cores
            else:
                got = 1
            self._free -= got
            self._state.notify_all()  # the next in line may fit in what is left
        try:
            yield got
        finally:
            with self._state:
                self._free += got
                self._state.notify_all()
