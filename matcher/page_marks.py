"""When each stored record's match page last went out of date, read off the change log a worker applies.

A need's page ranks outcomes: it shows the need itself, the outcomes corpus
(texts, vectors, BM25 statistics, institutions) and the need's own pairings. It
does not show any other need. So a firm editing its need, or a broker moving a
pairing along, makes only that need's page (and, for a need, every outcome's
page, which ranks needs) out of date, not every page of the worker. The same
holds the other way round for outcomes.

What each change-log entry makes stale (``side`` of :class:`~matcher.models.IndexChange`):

- ``needs`` N: need N's page, and every outcome's page (the needs corpus changed);
- ``outcomes`` O: outcome O's page, and every need's page;
- ``need_facts`` N / ``outc_facts`` O: only that record's page (a pairing of it changed);
- ``facts``, an unknown side, or a write that taught the tokenizer a new term (it cuts every query
  again): every page.

A page made at version v is current at a later version exactly when
:meth:`PageMarks.changed_at` of its record is at most v.
"""
from __future__ import annotations

from collections.abc import Iterable
from threading import Lock

NEED_FACTS = "need_facts"
OUTCOME_FACTS = "outc_facts"
# The record page a targeted facts entry touches, by change-log side.
_OWN_PAGE = {NEED_FACTS: "needs", OUTCOME_FACTS: "outcomes"}
# Whose corpus a record's change is part of: the other side's pages rank it.
_OTHER = {"needs": "outcomes", "outcomes": "needs"}
# Per-record marks kept per side before they are folded into the side's floor (bounds memory on big imports).
MAX_OWN_MARKS = 100_000


class PageMarks:
    """Per page side, the version below which every page is stale, and per record its own later mark."""

    def __init__(self, version: int = 0):
        self._floor = {"needs": version, "outcomes": version}
        self._own: dict[str, dict[int, int]] = {"needs": {}, "outcomes": {}}
        self._lock = Lock()

    def changed_at(self, side: str, record_id: int) -> int:
        """The version of the last change that a page of record ``record_id`` (on ``side``) shows."""
        with self._lock:
            return max(self._floor[side], self._own[side].get(record_id, 0))

    def note(self, changes: Iterable[tuple[int, str, int]], everything: bool = False) -> None:
        """Take in applied change-log rows (seq, side, record id); ``everything``: they touched every page."""
        with self._lock:
            last = 0
            for seq, side, record_id in changes:
                last = max(last, seq)
                if side in _OTHER:
                    self._mark(side, record_id, seq)
                    self._raise_floor(_OTHER[side], seq)
                elif side in _OWN_PAGE:
                    self._mark(_OWN_PAGE[side], record_id, seq)
                else:
                    everything = True
            if everything and last:
                self._raise_floors(last)

    def reset(self, version: int) -> None:
        """Everything before ``version`` is stale (the indexes were rebuilt or reloaded)."""
        with self._lock:
            self._raise_floors(version)

    def _raise_floors(self, version: int) -> None:
        for side in self._floor:
            self._raise_floor(side, version)

    def _raise_floor(self, side: str, version: int) -> None:
        # Rows come in ascending order, so no own mark is newer than ``version``: all are folded in.
        if version >= self._floor[side]:
            self._floor[side] = version
            self._own[side].clear()

    def _mark(self, side: str, record_id: int, seq: int) -> None:
        own = self._own[side]
        own[record_id] = seq
        if len(own) > MAX_OWN_MARKS:
            # Conservative: every page of the side is then stale up to the newest mark.
            self._raise_floor(side, seq)
