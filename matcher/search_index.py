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
from contextlib import nullcontext
from collections.abc import Callable
from pathlib import Path
from threading import Lock

import numpy as np
from sqlalchemy import event, func, inspect, select, text
from sqlalchemy.orm import Session, load_only, raiseload, sessionmaker

from embeddings.cached_encoder import CachedEncoder
from embeddings.index import IndexMeta, VectorIndex
from embeddings.lexical import LexicalIndex

from . import change_log
from .documents import MODEL_OF, SIDES, TEXT_KIND, document_text, is_indexed, sentences_of, side_of
from .models import Enterprise, IndexChange, Institution, Need, Outcome, Pairing, Project, Region
from .outcome_table import OutcomeTable
from .page_marks import NEED_FACTS, OUTCOME_FACTS, PageMarks
from .sentence_memory import DEFAULT_MB, SentenceVectors
from .tokens import TermTokenizer

log = logging.getLogger(__name__)
ProgressCallback = Callable[[int, int], None]
_BATCH = 2000
# Files only speed up start-up (a stale file is caught up from the log), so
# writes do not rewrite them each time; at most once per interval, and on close.
SAVE_INTERVAL_S = 60.0
# Any fixed number; it names the change-log lock among PostgreSQL advisory locks.
_CHANGE_LOG_LOCK = 0x6D617463
# The change-log side of writes that touch no index but change what a match page shows.
FACTS = "facts"
MATCH_FACTS = (Pairing, Project, Enterprise, Institution, Region)


@event.listens_for(Session, "before_flush")
def _serialise_change_log_writers(session: Session, _context, _instances) -> None:
    """On PostgreSQL, let one transaction at a time write needs, outcomes, match facts and the change log.

    Change numbers come from a sequence: taken at insert, seen at commit. Two
    writers could commit 11 before 10, and a worker syncing in between would
    move its version to 11 and skip 10 for good. A transaction-scoped lock,
    taken before the first such row is written and held to commit, makes
    change numbers visible in order. Taking it before any need or outcome row
    is locked keeps one lock order for every writer, so writers queue and never
    deadlock. SQLite already lets one writer at a time.
    """
    touched = (*session.new, *session.dirty, *session.deleted)
    facts = [obj for obj in touched if isinstance(obj, MATCH_FACTS)]
    if facts:
        # Pairings, projects, parties and regions are part of match pages (declined pairs, track record,
        # locality, names): a write to them moves the version too, so the pages showing them expire.
        logged = {(obj.side, obj.record_id) for obj in session.new if isinstance(obj, IndexChange)}
        for side, record_id in _facts_rows(facts) - logged:
            session.add(IndexChange(side=side, record_id=record_id))
    elif not any(isinstance(obj, (Need, Outcome, IndexChange)) for obj in touched):
        return
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _CHANGE_LOG_LOCK})


def _facts_rows(facts) -> set[tuple[str, int]]:
    """Change-log rows for written match facts: a pairing's need and outcome pages, anything else every page."""
    rows: set[tuple[str, int]] = set()
    for obj in facts:
        if not isinstance(obj, Pairing) or obj.need_id is None or _pair_moved(obj):
            return {(FACTS, 0)}
        rows.add((NEED_FACTS, obj.need_id))
        if obj.outcome_id is not None:
            rows.add((OUTCOME_FACTS, obj.outcome_id))
    return rows


def _pair_moved(pairing: Pairing) -> bool:
    """Whether a stored pairing is being pointed at another need or outcome (both old and new pages change)."""
    state = inspect(pairing)
    return state.persistent and any(state.attrs[key].history.deleted for key in ("need_id", "outcome_id"))


class SearchIndexes:
    """Needs and outcomes indexes for one process, synced from the database."""

    def __init__(self, encoder: CachedEncoder, sessions: sessionmaker[Session], index_dir: Path, source: str,
                 sentence_bytes: int = DEFAULT_MB * 1024 * 1024):
        self.encoder = encoder
        self.sessions = sessions
        self.index_dir = Path(index_dir)
        self.source = source
        self.indexes = {side: VectorIndex(encoder.dim) for side in SIDES}
        # The lexical channel: loaded from its file at start, or re-tokenised from the database (_open_lexical).
        self.tokenizer = TermTokenizer()
        self.lexical = {side: LexicalIndex(background_merge=True) for side in SIDES}
        self.sentences = SentenceVectors(encoder, sentence_bytes)
        self.sentences_filled = False  # set once fill_sentences has run to its end
        # What ranking reads of each indexed outcome (filled by fill_memory, kept current by _apply).
        self.outcome_table = OutcomeTable()
        self.version = 0
        # When each record's match page last went out of date (pages are checked against it, not the version).
        self.marks = PageMarks()
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

    def _index_lexical(self, side: str, records) -> int:
        """Learn the records' keywords as terms, then (re)index their tokens; returns how many terms were new."""
        learned = sum(self.tokenizer.add_terms(r.keywords or []) for r in records)
        self.lexical[side].upsert([r.id for r in records], [self.tokenizer.tokens(document_text(r)) for r in records])
        return learned

    def _live_batches(self, session: Session, side: str):
        """The side's indexable records in batches, streamed (never all in memory at once)."""
        model = MODEL_OF[side]
        stmt = select(model).where(model.deleted_at.is_(None)).order_by(model.id).execution_options(yield_per=_BATCH)
        for batch in session.scalars(stmt).partitions():
            live = [r for r in batch if is_indexed(r)]
            if live:
                yield live  # the session's identity map is weak: a batch is freed once the caller drops it

    def _learn_terms(self, session: Session, side: str) -> None:
        """Teach the tokenizer every live record's keywords before tokenising any of that side's documents."""
        model = MODEL_OF[side]
        # The same records as is_indexed() admits, read as two columns instead of whole records.
        unlisted = "closed" if side == "needs" else "withdrawn"
        stmt = select(model.keywords).where(model.deleted_at.is_(None), model.status != unlisted)
        for (keywords,) in session.execute(stmt):
            self.tokenizer.add_terms(keywords or [])

    def _build_side(self, session: Session, side: str, on_progress: ProgressCallback | None = None,
                    with_vectors: bool = True) -> tuple[VectorIndex | None, LexicalIndex]:
        """Fresh vector and lexical indexes of one side, from the database and the vector cache."""
        self._learn_terms(session, side)
        lexical = LexicalIndex(background_merge=True)  # writes from requests must not wait for a merge
        ids: list[int] = []
        vecs: list[np.ndarray] = []
        with lexical.bulk():
            for batch in self._live_batches(session, side):
                lexical.upsert([r.id for r in batch], [self.tokenizer.tokens(document_text(r)) for r in batch])
                if with_vectors:
                    ids.extend(r.id for r in batch)
                    vecs.append(self.vectors_for(batch, on_progress))
        index = None
        if with_vectors:
            # One build from all vectors: the index picks its kind for the size once, with no re-plans.
            matrix = np.concatenate(vecs) if vecs else np.zeros((0, self.encoder.dim), np.float32)
            del vecs
            index = VectorIndex.build(self.encoder.dim, ids, matrix)
        return index, lexical

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
                        self.marks.reset(meta.version)
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
        """Rebuild both indexes from the database and save them; returns counts per side.

        The new indexes are built beside the served ones and swapped in at the
        end, so requests keep being answered meanwhile; changes logged during
        the rebuild are applied right after the swap.
        """
        with self.sessions() as session:
            version = self._db_version(session)
            built = {side: self._build_side(session, side, on_progress) for side in SIDES}
        refill = self.outcome_table.filled  # a rebuild after a pruned log: what the table held may be stale
        with self._lock:
            self.marks.reset(version)
            self.indexes = {side: index for side, (index, _) in built.items()}
            self.lexical = {side: lexical for side, (_, lexical) in built.items()}
            self.version = version
            if refill:
                self.outcome_table = OutcomeTable()
        self.sync()
        if refill:
            self.fill_outcome_table()
        with self._lock:
            self._save()
        return {side: len(ix) for side, ix in self.indexes.items()}

    def sync(self, session: Session | None = None) -> int:
        """Apply every logged change after this index's version; returns how many records changed.

        If the log was pruned past this version (:mod:`matcher.change_log`), changes may be missing from it:
        the indexes are then rebuilt from the database, and the count is of the records indexed.
        ``session``: read the log (and the changed records) through this one, e.g. the request's about to
        serve, instead of opening one; on SQLite the request then reads the snapshot the index caught up to.
        """
        with self._lock:
            with nullcontext(session) if session is not None else self.sessions() as session:
                changes = session.execute(
                    select(IndexChange.seq, IndexChange.side, IndexChange.record_id)
                    .where(IndexChange.seq > self.version)
                    .order_by(IndexChange.seq)
                ).all()
                if not changes:
                    return 0
                # A gap before the first change is normal (numbers of rolled-back writes); only a pruned one matters.
                missed = changes[0][0] > self.version + 1 and self.version < change_log.pruned_through(session)
                if not missed:
                    return self._apply(session, changes)
        log.warning("change log pruned past this index's version %d: rebuilding from the database", self.version)
        return sum(self.rebuild().values())

    def _apply(self, session: Session, changes) -> int:
        """Apply ``changes`` (seq, side, record id) under the lock; returns how many records changed."""
        touched = learned = 0
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
            self.sentences.drop(side, gone)
            if side == "outcomes":
                self.outcome_table.drop(gone)
                self.outcome_table.put(live)
            if live:
                self.indexes[side].upsert([r.id for r in live], self.vectors_for(live))
                learned += self._index_lexical(side, live)
                self.sentences.put(live)
            touched += len(ids)
        if any(side == FACTS for _, side, _ in changes):
            self.outcome_table.load_institutions(session)  # an institution's name or locality may have changed
        # Marks before the version: a request between the two sees a page as stale, never a stale page as current.
        # A new term cuts every query text again, so every page may rank differently.
        self.marks.note(changes, everything=learned > 0)
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
            got = LexicalIndex.load(self._lexical_path(side), background_merge=True)
            if got is not None and all(got[1].get(k) == v for k, v in self._lexical_meta().items()):
                self.lexical[side] = got[0]
                self.tokenizer.add_terms(got[1].get("terms", []))
                continue
            log.info("lexical index %s missing or stale: re-tokenising from the database", side)
            with self.sessions() as session:
                self.lexical[side] = self._build_side(session, side, with_vectors=False)[1]

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

    def fill_memory(self, stop: Callable[[], bool] = lambda: False) -> None:
        """Fill what a worker holds beside its indexes (the outcome table, then the sentence memory) until
        ``stop()``. A serving worker runs this in the background after start (:mod:`api.main`)."""
        self.fill_outcome_table(stop)
        if not stop():
            self.fill_sentences(stop)

    def fill_outcome_table(self, stop: Callable[[], bool] = lambda: False) -> int:
        """Read every indexed outcome's ranking fields into :attr:`outcome_table`; returns how many."""
        started = time.perf_counter()
        with self.sessions() as session:
            read = self.outcome_table.fill(session, stop)
        log.info("outcome table: %d outcomes in %.1f s (%.0f MB)", read, time.perf_counter() - started,
                 self.outcome_table.nbytes / 2**20)
        return read

    def fill_sentences(self, stop: Callable[[], bool] = lambda: False) -> int:
        """Hold the sentence vectors of indexed records from the vector cache, outcomes first, newest first,
        until the memory's budget is full or ``stop()``; returns how many records were added.

        A serving worker runs this in the background after start (:mod:`api.main`); nothing is encoded.
        """
        held, started = 0, time.perf_counter()
        for side in ("outcomes", "needs"):
            model = MODEL_OF[side]
            body = model.description if side == "needs" else model.abstract
            stmt = (select(model).where(model.deleted_at.is_(None)).order_by(model.id.desc())
                    .options(load_only(model.title, body, model.content_hash, model.status, model.deleted_at,
                                       raiseload=True), raiseload("*"))
                    .execution_options(yield_per=_BATCH))

            def batches(session: Session):
                for batch in session.scalars(stmt).partitions():
                    if stop():
                        return
                    yield [r for r in batch if is_indexed(r)]

            with self.sessions() as session:
                held += self.sentences.fill(batches(session))
            if self.sentences.full or stop():
                break
        log.info("sentence memory: %d records added in %.1f s (%d held, %.0f MB)", held, time.perf_counter() - started,
                 len(self.sentences), self.sentences.nbytes / 2**20)
        self.sentences_filled = not stop()
        return held

    def sentence_vectors(self, records) -> dict[int, np.ndarray]:
        """Each record's sentence vectors by id (from memory; one batched cache read for the rest)."""
        return self.sentences.get(records)

    def vector_of(self, side: str, record_id: int) -> np.ndarray | None:
        """The indexed vector of a record, or None if it is not indexed."""
        return self.indexes[side].vector(record_id)
