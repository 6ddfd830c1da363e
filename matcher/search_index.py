"""The two FAISS indexes of one worker, kept in step with the database.

Writers append to ``index_changes`` in the same transaction as the record;
``sync`` applies every change after the index's version, so each worker catches
up with every other worker's writes on its next request. Files under the data
directory only make start-up fast: a missing, corrupt, stale or foreign file is
rebuilt from the database and the vector cache, never served.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from threading import Lock

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from embeddings.cached_encoder import CachedEncoder
from embeddings.index import IndexMeta, VectorIndex
from embeddings.lexical import LexicalIndex

from .documents import MODEL_OF, SIDES, TEXT_KIND, document_text, is_indexed, sentences_of, side_of
from .models import IndexChange
from .tokens import TermTokenizer

log = logging.getLogger(__name__)
ProgressCallback = Callable[[int, int], None]
_BATCH = 2000
# Files only speed up start-up (a stale file is caught up from the log), so
# writes do not rewrite them each time; at most once per interval, and on close.
SAVE_INTERVAL_S = 60.0


class SearchIndexes:
    """Needs and outcomes indexes for one process, synced from the database."""

    def __init__(self, encoder: CachedEncoder, sessions: sessionmaker[Session], index_dir: Path, source: str):
        self.encoder = encoder
        self.sessions = sessions
        self.index_dir = Path(index_dir)
        self.source = source
        self.indexes = {side: VectorIndex(encoder.dim) for side in SIDES}
        # The lexical channel is rebuilt from the database at start (it has no file).
        self.tokenizer = TermTokenizer()
        self.lexical = {side: LexicalIndex() for side in SIDES}
        self.version = 0
        self._lock = Lock()
        self._saved_at = 0.0
        self._saved_version = -1

    # -- vectors -------------------------------------------------------
    def vectors_for(self, records, on_progress: ProgressCallback | None = None) -> np.ndarray:
        """Document vectors of records of one side (from the cache where possible)."""
        if not records:
            return np.zeros((0, self.encoder.dim), dtype=np.float32)
        kind = TEXT_KIND[side_of(records[0])]
        return self.encoder.encode([document_text(r) for r in records], kind, on_progress=on_progress)

    def prepare(self, records, on_progress: ProgressCallback | None = None) -> None:
        """Encode everything a record will need (document and sentences) ahead of a write.

        Called before the database transaction, so the slow part can fail
        without leaving anything half-written.
        """
        by_kind: dict[str, list[str]] = {"query": [], "passage": []}
        for r in records:
            by_kind[TEXT_KIND[side_of(r)]].append(document_text(r))
            by_kind["passage"].extend(sentences_of(r))
        total = sum(len(v) for v in by_kind.values())
        done = 0
        for kind, texts in by_kind.items():
            if not texts:
                continue
            base = done
            self.encoder.encode(
                texts, kind, on_progress=(lambda d, _t, b=base: on_progress(b + d, total)) if on_progress else None
            )
            done += len(texts)

    def _index_lexical(self, side: str, records) -> None:
        """Learn the records' keywords as terms, then (re)index their tokens."""
        for r in records:
            self.tokenizer.add_terms(r.keywords or [])
        self.lexical[side].upsert([r.id for r in records], [self.tokenizer.tokens(document_text(r)) for r in records])

    def _live_records(self, session: Session, side: str) -> list:
        model = MODEL_OF[side]
        return [r for r in session.scalars(select(model).where(model.deleted_at.is_(None))).unique() if is_indexed(r)]

    # -- lifecycle -----------------------------------------------------
    def _path(self, side: str) -> Path:
        return self.index_dir / f"{side}.faissidx"

    def _meta(self, count: int = 0) -> IndexMeta:
        return IndexMeta(model=f"{self.encoder.model_id}|{self.source}", dim=self.encoder.dim, version=self.version,
                         count=count)

    def _db_version(self, session: Session) -> int:
        return int(session.scalar(select(func.max(IndexChange.seq))) or 0)

    def open(self, on_progress: ProgressCallback | None = None) -> str:
        """Load the saved indexes if they are sound and current enough, else rebuild.

        Returns "loaded" or "rebuilt" (with the reason logged).
        """
        with self.sessions() as session:
            db_version = self._db_version(session)
        loaded = {}
        for side in SIDES:
            got = VectorIndex.load(self._path(side), self._meta())
            if got is None:
                loaded = None
                log.info("index %s missing, corrupt or for another model/database: rebuilding", side)
                break
            loaded[side] = got
        if loaded:
            versions = {meta.version for _, meta in loaded.values()}
            if len(versions) == 1 and versions.pop() <= db_version:
                with self._lock:
                    for side, (index, meta) in loaded.items():
                        self.indexes[side] = index
                        self.version = meta.version
                    self._open_lexical()
                self._saved_at, self._saved_version = time.monotonic(), self.version
                self.sync()
                return "loaded"
            log.info("index files disagree with the database version: rebuilding")
        self.rebuild(on_progress=on_progress)
        return "rebuilt"

    def rebuild(self, on_progress: ProgressCallback | None = None) -> dict[str, int]:
        """Rebuild both indexes from the database and save them; returns counts per side."""
        with self._lock:
            with self.sessions() as session:
                version = self._db_version(session)
                fresh = {}
                for side in SIDES:
                    index = VectorIndex(self.encoder.dim)
                    records = self._live_records(session, side)
                    for start in range(0, len(records), _BATCH):
                        batch = records[start : start + _BATCH]
                        index.upsert([r.id for r in batch], self.vectors_for(batch, on_progress))
                    fresh[side] = index
                    self.lexical[side] = LexicalIndex()
                    self._index_lexical(side, records)
            self.indexes = fresh
            self.version = version
            self._save()
        return {side: len(ix) for side, ix in self.indexes.items()}

    def sync(self) -> int:
        """Apply every logged change after this index's version; returns how many records changed."""
        with self._lock:
            with self.sessions() as session:
                changes = session.execute(
                    select(IndexChange.seq, IndexChange.side, IndexChange.record_id)
                    .where(IndexChange.seq > self.version)
                    .order_by(IndexChange.seq)
                ).all()
                if not changes:
                    return 0
                touched = 0
                for side in SIDES:
                    ids = sorted({rid for _, s, rid in changes if s == side})
                    if not ids:
                        continue
                    model = MODEL_OF[side]
                    records = {r.id: r for r in session.scalars(select(model).where(model.id.in_(ids))).unique()}
                    live = [records[i] for i in ids if i in records and is_indexed(records[i])]
                    gone = [i for i in ids if i not in records or not is_indexed(records[i])]
                    self.indexes[side].remove(gone)
                    self.lexical[side].remove(gone)
                    if live:
                        self.indexes[side].upsert([r.id for r in live], self.vectors_for(live))
                        self._index_lexical(side, live)
                    touched += len(ids)
                self.version = changes[-1][0]
            if time.monotonic() - self._saved_at >= SAVE_INTERVAL_S:
                self._save()
            return touched

    def _lexical_path(self, side: str) -> Path:
        return self.index_dir / f"{side}.lexical.npz"

    def _lexical_meta(self) -> dict:
        return {"source": self.source, "version": self.version, "tokenizer": self.tokenizer.signature}

    def _open_lexical(self) -> None:
        """Load the lexical files saved with the vector files, or re-tokenise from the database."""
        for side in SIDES:
            got = LexicalIndex.load(self._lexical_path(side))
            if got is not None and all(got[1].get(k) == v for k, v in self._lexical_meta().items()):
                self.lexical[side] = got[0]
                self.tokenizer.add_terms(got[1].get("terms", []))
                continue
            log.info("lexical index %s missing or stale: re-tokenising from the database", side)
            with self.sessions() as session:
                self.lexical[side] = LexicalIndex()
                self._index_lexical(side, self._live_records(session, side))

    def _save(self) -> None:
        for side, index in self.indexes.items():
            index.save(self._path(side), self._meta(len(index)))
            self.lexical[side].save(self._lexical_path(side), {**self._lexical_meta(), "terms": self.tokenizer.terms})
        self._saved_at, self._saved_version = time.monotonic(), self.version

    def save(self) -> None:
        """Write the index files now if they lag behind (called on shutdown)."""
        with self._lock:
            if self._saved_version != self.version:
                self._save()

    def search(self, side: str, vector: np.ndarray, k: int, allowed_ids=None) -> list[tuple[int, float]]:
        """Top-k (id, score) of ``side`` for a vector."""
        return self.indexes[side].search(vector, k, allowed_ids)

    def vector_of(self, side: str, record_id: int) -> np.ndarray | None:
        """The indexed vector of a record, or None if it is not indexed."""
        return self.indexes[side].vector(record_id)
