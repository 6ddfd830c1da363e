"""Finished match pages of stored records, kept per worker until the data they show changes.

A broker opens the same need's matches again and again (the list, a pairing,
back to the list); between two writes the answer is the same bytes. A page is
keyed by what it was asked (record, k, filters) and by the visibility scope of
who asked, and remembers the change-log version it was made at. Every write
that can change a page logs a change (records, and facts for pairings,
projects, parties and regions); :mod:`matcher.page_marks` says which pages each
change makes stale. A page is served while no change it shows came after it
was made: editing one need or moving one pairing leaves every other need's page
served, while an outcome write makes every need's page stale. A page is never
served for data older than the request's own sync.

Each page's *recipe* (how to make it again) is remembered across versions for
the most recently asked pages, so a :class:`~matcher.page_warmer.PageWarmer`
can re-make them in the background after a write: the broker's next view of a
need they were working on is then a repeat view, not a first one.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from threading import Lock
from typing import Any, NamedTuple

# A page of 10 explained results is ~10–15 kB of JSON.
DEFAULT_MAX_BYTES = 32 * 1024 * 1024


class _Held(NamedTuple):
    made_at: int
    ref: Hashable
    body: bytes


class MatchPages:
    """A bounded LRU of serialized match pages; ``max_bytes=0`` turns it off.

    ``recipes`` is how many recently asked pages' recipes are kept for re-making
    after a write (0: none). ``changed_at(ref)`` gives the version of the last
    change shown by the pages of ``ref`` (a record; see :class:`~matcher.page_marks.PageMarks`);
    without it, or for a page given no ``ref``, any newer version makes the page stale.
    """

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES, recipes: int = 0,
                 changed_at: Callable[[Hashable], int] | None = None):
        self.max_bytes = max_bytes
        self.max_recipes = recipes if max_bytes > 0 else 0
        self._changed_at = changed_at
        self._pages: OrderedDict[Hashable, _Held] = OrderedDict()
        self._recipes: OrderedDict[Hashable, tuple[Any, Hashable]] = OrderedDict()
        self._bytes = 0
        self._latest = -1  # the newest version asked about
        self._lock = Lock()
        self.hits = self.misses = 0

    def _since(self, ref: Hashable, version: int) -> int:
        """The oldest version a page of ``ref`` may have been made at to be current at ``version``."""
        self._latest = max(self._latest, version)
        if ref is None or self._changed_at is None:
            return self._latest
        return self._changed_at(ref)

    def _current(self, key: Hashable, version: int) -> _Held | None:
        held = self._pages.get(key)
        if held is not None and self._since(held.ref, version) <= held.made_at <= version:
            return held
        return None

    def get_or_make(self, version: int, key: Hashable, make: Callable[[], bytes], recipe: Any = None,
                    ref: Hashable = None) -> bytes:
        """The page for ``key`` at data ``version``: from memory if nothing it shows changed since, else ``make()``.

        ``ref`` names the record the page is of (for ``changed_at``). ``recipe``, when given, is
        remembered (most recently asked first) for :meth:`to_remake`.
        """
        if self.max_bytes <= 0:
            return make()
        with self._lock:
            if recipe is not None and self.max_recipes:
                self._recipes[key] = (recipe, ref)
                self._recipes.move_to_end(key)
                while len(self._recipes) > self.max_recipes:
                    self._recipes.popitem(last=False)
            held = self._current(key, version)
            if held is not None:
                self._pages.move_to_end(key)
                self.hits += 1
                return held.body
            self.misses += 1
        page = make()
        self._keep(version, key, ref, page)
        return page

    def remember(self, key: Hashable, recipe: Any, ref: Hashable = None, recent: bool = True) -> None:
        """Remember ``recipe`` for :meth:`to_remake` as if asked: most recently (``recent``), or after every
        recipe remembered already and only while there is room (pages nobody asked yet)."""
        if not self.max_recipes:
            return
        with self._lock:
            if key in self._recipes:
                return
            if not recent and len(self._recipes) >= self.max_recipes:
                return
            self._recipes[key] = (recipe, ref)
            if not recent:
                self._recipes.move_to_end(key, last=False)
            while len(self._recipes) > self.max_recipes:
                self._recipes.popitem(last=False)

    def held(self, version: int) -> int:
        """How many pages are current at data ``version`` (stale ones are as good as gone)."""
        with self._lock:
            return sum(1 for key in self._pages if self._current(key, version) is not None)

    def to_remake(self, version: int) -> list[tuple[Hashable, Any]]:
        """Recipes of recently asked pages not current at ``version``, most recently asked first."""
        with self._lock:
            return [(key, recipe) for key, (recipe, _) in reversed(self._recipes.items())
                    if self._current(key, version) is None]

    def fill(self, version: int, key: Hashable, make: Callable[[], bytes], ref: Hashable = None) -> bool:
        """Make and keep the page for ``key`` at ``version`` unless a current one is held already.

        The warmer's entry: it counts neither as a hit nor as a miss. True when a page was made and kept.
        """
        with self._lock:
            if ref is None and key in self._recipes:
                ref = self._recipes[key][1]
            if self._current(key, version) is not None or self._since(ref, version) > version:
                return False
        return self._keep(version, key, ref, make())

    def forget(self, key: Hashable) -> None:
        """Stop re-making ``key`` (its record is gone or no longer visible to the asker)."""
        with self._lock:
            self._recipes.pop(key, None)

    def _keep(self, version: int, key: Hashable, ref: Hashable, page: bytes) -> bool:
        with self._lock:
            # A page made while a change it shows was applied is served once, never kept.
            if self._since(ref, version) > version or len(page) > self.max_bytes:
                return False
            old = self._pages.get(key)
            if old is not None:
                if old.made_at >= version:
                    return False
                self._bytes -= len(old.body)
            self._pages[key] = _Held(version, ref, page)
            self._pages.move_to_end(key)
            self._bytes += len(page)
            while self._bytes > self.max_bytes:
                self._bytes -= len(self._pages.popitem(last=False)[1].body)
            return True

    def __len__(self) -> int:
        return len(self._pages)
