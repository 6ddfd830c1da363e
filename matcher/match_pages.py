"""Finished match pages of stored records, kept per worker until the data they show changes.

A broker opens the same need's matches again and again (the list, a pairing,
back to the list); between two writes the answer is the same bytes. A page is
keyed by what it was asked (record, k, filters), by who asked (role and bound
party: visibility differs), and by the change-log version the worker had
synced to. Every write that can change a page logs a change (records, and
``facts`` for pairings, projects, parties and regions), so after any write each
worker's next request has a new version and recomputes: a page is never served
for data older than the request's own sync.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from threading import Lock

# A page of 10 explained results is ~10–15 kB of JSON.
DEFAULT_MAX_BYTES = 32 * 1024 * 1024


class MatchPages:
    """A bounded LRU of serialized match pages; ``max_bytes=0`` turns it off."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES):
        self.max_bytes = max_bytes
        self._pages: OrderedDict[Hashable, bytes] = OrderedDict()
        self._bytes = 0
        self._version = -1
        self._lock = Lock()
        self.hits = self.misses = 0

    def get_or_make(self, version: int, key: Hashable, make: Callable[[], bytes]) -> bytes:
        """The page for ``key`` at data ``version``: from memory if made at that version, else ``make()``.

        Pages of older versions are dropped as soon as a newer version is seen.
        """
        if self.max_bytes <= 0:
            return make()
        with self._lock:
            if version > self._version:
                self._pages.clear()
                self._bytes, self._version = 0, version
            page = self._pages.get(key) if version == self._version else None
            if page is not None:
                self._pages.move_to_end(key)
                self.hits += 1
                return page
            self.misses += 1
        page = make()
        with self._lock:
            # A page made while another request moved the version on is served once, never kept.
            if version == self._version and key not in self._pages and len(page) <= self.max_bytes:
                self._pages[key] = page
                self._bytes += len(page)
                while self._bytes > self.max_bytes:
                    self._bytes -= len(self._pages.popitem(last=False)[1])
        return page

    def __len__(self) -> int:
        return len(self._pages)
