"""Re-make recently viewed match pages in the background after a write, so the next view is a repeat view.

A write makes the pages that show it stale (see :mod:`matcher.page_marks`);
ranking and explaining a page again costs tens of milliseconds at 10^5
outcomes, paid by the first broker who opens it. The warmer pays it instead:
each serving worker polls the change log, and once no newer write has come for
a quiet interval (an import is thousands of writes: warming between them would
be wasted) it re-makes the most recently asked pages that went stale, most
recent first, stopping as soon as the data moves on again.

Pages nobody asked yet are made too, for the needs a broker is likely to open
next: at start, the default page (10 results, no filters) of the most recently
updated open needs, while there is room among the remembered recipes; after a
write, the default page of each need written, as if just asked (a firm's new
need has its matches ready before the broker opens it).
"""
from __future__ import annotations

import logging
import threading
import time

from sqlalchemy import select

from .access import Forbidden
from .context import MatcherContext
from .documents import is_indexed
from .errors import NotFound
from .matching import DEFAULT_K, PageRecipe, make_page
from .models import IndexChange, Need
from .schemas import MatchFilters

log = logging.getLogger(__name__)
# At most this share (1/n) of the remembered recipes goes to needs just written.
WRITTEN_SHARE = 4


class PageWarmer:
    """One worker's background re-maker of match pages. :meth:`start` it with the app, :meth:`stop` it after."""

    def __init__(self, ctx: MatcherContext, quiet_s: float = 1.0):
        self.ctx = ctx
        self.quiet_s = quiet_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.made = 0
        # Once per version: pages that cannot be kept (the memory is full) must not be re-made on every tick.
        self._warmed_version = -1
        # The version up to which written needs have been remembered (None: not even the newest at start).
        self._needs_seen: int | None = None

    def warm_once(self) -> int:
        """Catch up with the change log, remember the default page of needs written since (or, the first
        time, of the newest open needs), and make every remembered page not current at the new version.

        Returns how many pages were made. Stops early when the version moves on
        (those pages would be expired already); a page whose record is gone or
        no longer visible to its asker is forgotten, not retried.
        """
        ctx = self.ctx
        ctx.indexes.sync()
        version = ctx.indexes.version
        self._remember_needs(version)
        made = 0
        for key, recipe in ctx.pages.to_remake(version):
            if self._stop.is_set() or ctx.indexes.version != version:
                break
            made += self._remake(version, key, recipe)
        else:
            self._warmed_version = version
        self.made += made
        return made

    def _remember_needs(self, version: int) -> None:
        """Remember the default page of the newest open needs (first call) or of the needs written since."""
        pages, since = self.ctx.pages, self._needs_seen
        if not pages.max_recipes or since == version:
            return
        with self.ctx.sessions() as session:
            if since is None:
                stmt = (select(Need).where(Need.deleted_at.is_(None), Need.status != "closed")
                        .order_by(Need.updated_at.desc(), Need.id.desc()).limit(pages.max_recipes))
            else:
                # An import of thousands of needs must not push out the pages brokers are working on.
                written = (select(IndexChange.record_id)
                           .where(IndexChange.side == "needs", IndexChange.seq > since, IndexChange.seq <= version))
                stmt = (select(Need).where(Need.id.in_(written)).order_by(Need.updated_at.desc(), Need.id.desc())
                        .limit(max(1, pages.max_recipes // WRITTEN_SHARE)))
            needs = [n.id for n in session.scalars(stmt) if is_indexed(n)]
            if since is not None:
                needs.reverse()  # the newest is remembered last: most recent, made first
        for need_id in needs:
            recipe = PageRecipe("needs", need_id, DEFAULT_K, MatchFilters(), None)
            pages.remember(recipe.key(), recipe, recipe.ref, recent=since is not None)
        self._needs_seen = version

    def _remake(self, version: int, key, recipe: PageRecipe) -> int:
        try:
            with self.ctx.sessions() as session:
                return int(self.ctx.pages.fill(version, key, lambda: make_page(self.ctx, session, recipe)))
        except (NotFound, Forbidden):
            self.ctx.pages.forget(key)
        except Exception:  # a broken page must not stop the others; the next view shows the error itself
            log.exception("re-making match page %s failed", key)
            self.ctx.pages.forget(key)
        return 0

    def _run(self) -> None:
        seen, since = -1, time.monotonic()
        while not self._stop.wait(self.quiet_s / 2):
            try:
                self.ctx.indexes.sync()
                version = self.ctx.indexes.version
                if version != seen:
                    seen, since = version, time.monotonic()
                    continue
                if version != self._warmed_version and time.monotonic() - since >= self.quiet_s:
                    self.warm_once()
            except Exception:  # e.g. the database restarting: try again on the next tick
                log.exception("page warmer tick failed")

    def start(self) -> "PageWarmer":
        """Run in a daemon thread until :meth:`stop`."""
        self._thread = threading.Thread(target=self._run, name="page-warmer", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Ask the thread to finish and wait for it (at most the page being made)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
