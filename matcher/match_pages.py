"""Finished match pages of stored records, kept per worker until the data they show changes.

A broker opens the same need's matches again and again (the list, a pairing,
back to the list); between two writes the answer is the same bytes. A page is
keyed by what it was asked (record, k, filters), by who asked (role and bound
party: visibility differs), and by the change-log version the worker had
synced to. Every write that can change a page logs a change (records, and
``facts`` for pairings, projects, parties and regions), so after any write each
worker's next request has a new version and recomputes: a page is never served
for data older than the request's own sync.

Each page's *recipe* (how to make it again) is remembered across versions for
the most recently asked pages, so a :class:`~matcher.page_warmer.PageWarmer`
can re-make them in the background after a write: the broker's next view of a
need they were working on is then a repeat view, not a first one.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from threading import Lock
from typing import Any

# A page of 10 explained results is ~10–15 kB of JSON.
DEFAULT_MAX_BYTES = 32 * 1024 * 1024


class MatchPages:
    """A bounded LRU of serialized match pages; ``max_bytes=0`` turns it off.

    ``recipes`` is how many recently asked pages' recipes are kept for re-making
    after a write (0: none).
    """

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES, recipes: int = 0):
        self.max_bytes = max_bytes
        self.max_recipes = recipes if max_bytes > 0 else 0
        self._pages: OrderedDict[Hashable, bytes] = OrderedDict()
        self._recipes: OrderedDict[Hashable, Any] = OrderedDict()
        self._bytes = 0
        self._version = -1
        self._lock = Lock()
        self.hits = self.misses = 0

    def get_or_make(self, version: int, key: Hashable, make: Callable[[], bytes], recipe: Any = None) -> bytes:
        """The page for ``key`` at data ``version``: from memory if made at that version, else ``make()``.

        Pages of older versions are dropped as soon as a newer version is seen.
        ``recipe``, when given, is remembered (most recently asked first) for :meth:`to_remake`.
        """
        if self.max_bytes <= 0:
            return make()
        with self._lock:
            if recipe is not None and self.max_recipes:
                self._recipes[key] = recipe
                self._recipes.move_to_end(key)
                while len(self._recipes) > self.max_recipes:
                    self._recipes.popitem(last=False)
            self._move_to(version)
            page = self._pages.get(key) if version == self._version else None
            if page is not None:
                self._pages.move_to_end(key)
                self.hits += 1
                return page
            self.misses += 1
        page = make()
        self._keep(version, key, page)
        return page

    def held(self, version: int) -> int:
        """How many pages are held for data ``version`` (older pages are as good as gone)."""
        with self._lock:
            return len(self._pages) if version == self._version else 0

    def to_remake(self, version: int) -> list[tuple[Hashable, Any]]:
        """Recipes of recently asked pages not held at ``version``, most recently asked first."""
        with self._lock:
            held = self._pages if version == self._version else {}
            return [(key, recipe) for key, recipe in reversed(self._recipes.items()) if key not in held]

    def fill(self, version: int, key: Hashable, make: Callable[[], bytes]) -> bool:
        """Make and keep the page for ``key`` at ``version`` unless it is held already or the data moved on.

        The warmer's entry: it counts neither as a hit nor as a miss. True when a page was made and kept.
        """
        with self._lock:
            self._move_to(version)
            if version != self._version or key in self._pages:
                return False
        return self._keep(version, key, make())

    def forget(self, key: Hashable) -> None:
        """Stop re-making ``key`` (its record is gone or no longer visible to the asker)."""
        with self._lock:
            self._recipes.pop(key, None)

    def _move_to(self, version: int) -> None:
        if version > self._version:
            self._pages.clear()
            self._bytes, self._version = 0, version

    def _keep(self, version: int, key: Hashable, page: bytes) -> bool:
        with self._lock:
            # A page made while another request moved the version on is served once, never kept.
            if version != self._version or key in self._pages or len(page) > self.max_bytes:
                return False
            self._pages[key] = page
            self._bytes += len(page)
            while self._bytes > self.max_bytes:
                self._bytes -= len(self._pages.popitem(last=False)[1])
            return True

    def __len__(self) -> int:
        return len(self._pages)
