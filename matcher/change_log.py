"""Pruning the change log (``index_changes``), which otherwise grows by one row per write, forever.

A worker reads only the changes after its own version. A serving worker syncs before every request and its
page warmer polls the log twice a second, so it is never more than moments behind; old rows serve only a
worker that starts from index files older than they are. :func:`prune` deletes the rows logged before a
cut-off, always keeps the newest row (its number is the database's version), and records the highest number
it deleted as a watermark in ``service_meta``. A worker whose version is below the watermark may have missed
changes, so it rebuilds its indexes from the database instead of catching up
(:meth:`matcher.search_index.SearchIndexes.sync`).
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from .models import IndexChange, ServiceMeta

PRUNED_THROUGH = "change_log_pruned_through"


def pruned_through(session: Session) -> int:
    """The highest change number ever pruned (0 if the log was never pruned)."""
    value = session.scalar(select(ServiceMeta.value).where(ServiceMeta.key == PRUNED_THROUGH))
    return int(value) if value else 0


def prune(session: Session, older_than: datetime) -> int:
    """Delete the changes logged before ``older_than``, except the newest; returns how many were deleted.

    Commits the deletion and the raised watermark together.
    """
    newest = session.scalar(select(func.max(IndexChange.seq)))
    if newest is None:
        return 0
    doomed = (IndexChange.at < older_than) & (IndexChange.seq < newest)
    highest = session.scalar(select(func.max(IndexChange.seq)).where(doomed))
    if highest is None:
        return 0
    deleted = session.execute(delete(IndexChange).where(doomed)).rowcount
    mark = session.get(ServiceMeta, PRUNED_THROUGH)
    if mark is None:
        session.add(ServiceMeta(key=PRUNED_THROUGH, value=str(highest)))
    else:
        mark.value = str(max(int(mark.value), highest))
    session.commit()
    return deleted
