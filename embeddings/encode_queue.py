"""Encode calls take their turn, small ones side by side, and small calls that wait together run as one.

Searches arriving together each used to wait for the ones before them to be encoded alone. A batch of
queries costs far less than the same queries one by one, because a forward pass over a few dozen
tokens mostly reads weights (measured 2026-12-03, Zen 5, torch-bf16 on one thread: a short search
text of the eval set 19–22 ms, four together 42–44 ms; for texts of ~70 characters the saving is gone,
30–32 against 104–106 ms). So the call holding the model takes every small call of the same kind
waiting behind it, up to ``max_texts`` texts (the encoder's ``small_call_batch``), which still runs on
one thread. Nobody waits for company: a call that finds the model free runs at once, alone.

Small passes need not wait for each other at all: on one thread each, ``lanes`` of them (the encoder's cores) run
at once (two one-thread `torch-bf16` passes in one process gave 1.5x the texts a second of one for short search
texts, 1.7x for 72-character ones: 2026-12-06, Zen 4). A big call (an import's batch, on every core) waits for the
passes under way and takes every lane; while it waits no new small pass starts, so imports are not starved.
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

EncodeFn = Callable[..., np.ndarray]


@dataclass(eq=False)
class _Call:
    texts: list[str]
    kind: str
    done: bool = False
    vectors: np.ndarray | None = None
    error: Exception | None = None


class EncodeQueue:
    """Runs ``encode(texts, kind)`` calls up to ``lanes`` small passes at once, a big call alone; waiting calls of at
    most ``max_texts`` texts in all share one pass.

    A call with keyword arguments other than None (a progress callback, a batch size) or more than
    ``max_texts`` texts runs alone. A caller whose call another's pass answered returns as soon as that
    pass ends, without waiting for the model again; the caller that runs the model takes the oldest
    waiting calls first, so none is passed over for long. If a shared pass fails, each of its calls is
    retried alone, so an error reaches only the caller whose texts caused it. ``merged_calls`` counts
    calls answered by another's pass, ``side_by_side`` small passes that started beside another.
    """

    def __init__(self, encode: EncodeFn, max_texts: int, lanes: int = 1):
        self._encode = encode
        self.max_texts = max_texts
        # Small passes that may run at once (each on one thread); a big call takes every lane.
        self.lanes = max(1, lanes)
        self._state = threading.Condition()
        self._running = 0  # lanes taken by passes under way
        self._big_waiting = 0  # big calls waiting: no new small pass starts before them, so none starves
        self._waiting: list[_Call] = []  # oldest first
        self.merged_calls = 0
        self.side_by_side = 0  # small passes that started while another was under way

    def encode(self, texts: Sequence[str], kind: str, **kwargs) -> np.ndarray:
        """The vectors ``encode(texts, kind, **kwargs)`` gives, rows in the caller's order."""
        texts = list(texts)
        kwargs = {k: v for k, v in kwargs.items() if v is not None}
        if kwargs or not texts or len(texts) > self.max_texts:
            with self._state:
                self._big_waiting += 1
                self._state.wait_for(lambda: self._running == 0)
                self._big_waiting -= 1
                self._running = self.lanes
            try:
                return self._encode(texts, kind, **kwargs)
            finally:
                self._release(self.lanes)
        call = _Call(texts, kind)
        with self._state:
            self._waiting.append(call)
            self._state.wait_for(lambda: call.done or (self._running < self.lanes and not self._big_waiting))
            if call.done:
                return self._answer(call)
            self.side_by_side += self._running > 0
            self._running += 1
            group, size = [call], len(texts)
            for other in self._waiting:
                if other is not call and other.kind == kind and size + len(other.texts) <= self.max_texts:
                    group.append(other)
                    size += len(other.texts)
            self._waiting = [c for c in self._waiting if c not in group]
        try:
            self._run(group)
        finally:
            for c in group:
                if c.vectors is None and c.error is None:  # the pass was interrupted: nobody is left without answer
                    c.error = RuntimeError("encoding was interrupted")
                c.done = True
            self._release(1)
        return self._answer(call)

    def _release(self, lanes: int) -> None:
        with self._state:
            self._running -= lanes
            self._state.notify_all()

    @staticmethod
    def _answer(call: _Call) -> np.ndarray:
        if call.error is not None:
            raise call.error
        return call.vectors

    def _run(self, group: list[_Call]) -> None:
        if len(group) > 1:
            try:
                vectors = self._encode([t for c in group for t in c.texts], group[0].kind)
            except Exception:  # one caller's texts may be at fault: let each find out alone
                pass
            else:
                start = 0
                for c in group:
                    c.vectors, start = vectors[start : start + len(c.texts)], start + len(c.texts)
                self.merged_calls += len(group) - 1
                return
        for c in group:
            try:
                c.vectors = self._encode(c.texts, c.kind)
            except Exception as exc:
                c.error = exc
