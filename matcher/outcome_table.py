"""What ranking reads of every indexed outcome, in the worker's memory: a first view loads only its results.

A stored need's match page scores ~100 candidate outcomes on their structured fields (industry chain,
maturity, cooperation modes, price, the institution's locality) and on whether the abstract is long
enough for sentence-level scoring. Loaded through the ORM, those ~100 rows cost a first view about a
quarter of its time at 10^5 outcomes, and at 10^6 they are random reads from disk. This table holds
those fields in columns indexed by record id (~110 bytes an outcome: 13 MB at 10^5), filled at start
beside the sentence memory (:meth:`OutcomeTable.fill`) and kept current by the change log
(:meth:`put`, :meth:`drop`), so ranking reads it and the database gives only the ten records shown
(:func:`matcher.matching.rank_scored`).

An outcome the table cannot answer for (not filled yet, more cooperation modes than a bit mask holds,
an institution it does not know) is simply absent: ranking loads that one from the database, as before.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from threading import Lock

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .models import Institution, Outcome, Project

# Outcome fields the table holds, in the order a row carries them (the abstract only for its length).
COLUMNS = (Outcome.id, Outcome.institution_id, Outcome.industry_chain, Outcome.stage, Outcome.trl,
           Outcome.cooperation_modes, Outcome.price_min, Outcome.price_max, Outcome.price_negotiable,
           Outcome.abstract, Outcome.content_hash)
_BATCH = 2000
_MAX_MODES = 63  # one bit each in an int64
_NONE = -1       # code of a missing string or number


class InstitutionFacts:
    """An institution as ranking reads it (name and locality tier)."""

    __slots__ = ("name", "locality")

    def __init__(self, name: str, locality: str | None):
        self.name, self.locality = name, locality


class OutcomeRow:
    """One outcome as the table holds it, with the attributes :func:`matcher.scoring.factors` and
    sentence-level scoring read of an :class:`~matcher.models.Outcome`. Never shown: results are loaded."""

    __slots__ = ("id", "institution_id", "institution", "industry_chain", "stage", "trl", "cooperation_modes",
                 "price_min", "price_max", "price_negotiable", "body_length", "content_hash")
    deleted_at = None  # the table holds indexed outcomes only

    def __init__(self, id, institution_id, institution, industry_chain, stage, trl, cooperation_modes,  # noqa: A002
                 price_min, price_max, price_negotiable, body_length, content_hash):
        self.id, self.institution_id, self.institution = id, institution_id, institution
        self.industry_chain, self.stage, self.trl, self.cooperation_modes = industry_chain, stage, trl, cooperation_modes
        self.price_min, self.price_max, self.price_negotiable = price_min, price_max, price_negotiable
        self.body_length, self.content_hash = body_length, content_hash


class _Codes:
    """Strings by small integer code, in order of first sight."""

    def __init__(self):
        self.names: list[str] = []
        self._code: dict[str, int] = {}

    def code(self, name: str | None) -> int:
        if name is None:
            return _NONE
        got = self._code.get(name)
        if got is None:
            got = self._code[name] = len(self.names)
            self.names.append(name)
        return got

    def name(self, code: int) -> str | None:
        return None if code == _NONE else self.names[code]


class OutcomeTable:
    """Ranking fields of indexed outcomes by id, as of the worker's synced version."""

    def __init__(self):
        self._lock = Lock()
        self._chains, self._stages, self._modes = _Codes(), _Codes(), _Codes()
        self.institutions: dict[int, InstitutionFacts] = {}
        self._institutions_read = 0
        self._signed: dict[int, int] = {}  # signed projects by institution (read with the institutions)
        self._size = 0
        self._alloc(0)
        self.filled = False  # set once fill has run to its end

    def _alloc(self, size: int) -> None:
        old = self.__dict__.get("_cols")
        self._cols = {
            "present": np.zeros(size, bool),
            "written": np.zeros(size, bool),      # put or dropped by the change log: a fill never overwrites
            "institution": np.zeros(size, np.int32),
            "chain": np.full(size, _NONE, np.int32),  # codes of free text: a district may coin thousands
            "stage": np.full(size, _NONE, np.int32),
            "trl": np.full(size, _NONE, np.int16),
            "modes": np.zeros(size, np.int64),
            "price_min": np.full(size, np.nan),
            "price_max": np.full(size, np.nan),
            "negotiable": np.zeros(size, bool),
            "body_length": np.zeros(size, np.int32),
            "hash": np.zeros(size, "S64"),
        }
        if old is not None:
            for name, col in old.items():
                self._cols[name][:len(col)] = col
        self._size = size

    def _room_for(self, max_id: int) -> None:
        if max_id >= self._size:
            self._alloc(max(max_id + 1, 2 * self._size, 1024))

    def __len__(self) -> int:
        return int(self._cols["present"].sum())

    @property
    def nbytes(self) -> int:
        """Bytes of the columns (allocated, including room to grow)."""
        return sum(col.nbytes for col in self._cols.values())

    # -- writing -------------------------------------------------------------
    def _set(self, rows, from_fill: bool) -> None:
        """Hold ``rows`` (tuples in :data:`COLUMNS` order) under the lock."""
        rows = list(rows)
        if not rows:
            return
        self._room_for(max(r[0] for r in rows))
        c = self._cols
        for (rid, institution_id, chain, stage, trl, modes, price_min, price_max, negotiable, abstract,
             content_hash) in rows:
            if from_fill and c["written"][rid]:
                continue  # the change log has spoken since the fill's snapshot was read
            bits = self._mode_bits(modes)
            c["present"][rid] = bits is not None
            c["written"][rid] |= not from_fill
            if bits is None:
                continue
            c["institution"][rid] = institution_id
            c["chain"][rid] = self._chains.code(chain)
            c["stage"][rid] = self._stages.code(stage)
            c["trl"][rid] = _NONE if trl is None else trl
            c["modes"][rid] = bits
            c["price_min"][rid] = np.nan if price_min is None else price_min
            c["price_max"][rid] = np.nan if price_max is None else price_max
            c["negotiable"][rid] = bool(negotiable)
            c["body_length"][rid] = len(abstract or "")
            c["hash"][rid] = (content_hash or "").encode()

    def _mode_bits(self, modes) -> int | None:
        bits = 0
        for mode in modes or []:
            code = self._modes.code(mode)
            if code >= _MAX_MODES:
                return None  # more modes than bits: this outcome is loaded from the database instead
            bits |= 1 << code
        return bits

    def put(self, outcomes: Iterable[Outcome]) -> None:
        """Hold the current fields of ``outcomes`` (just written and synced), over whatever was held."""
        with self._lock:
            self._set(([getattr(o, col.key) for col in COLUMNS] for o in outcomes), from_fill=False)

    def drop(self, ids: Iterable[int]) -> None:
        """Forget outcomes ``ids`` (deleted, withdrawn or unknown)."""
        with self._lock:
            ids = [i for i in ids if i < self._size]
            self._cols["present"][ids] = False
            self._cols["written"][ids] = True

    def load_institutions(self, session: Session, unless_reloaded: bool = False) -> None:
        """Read every institution's name, locality tier and signed projects (a few thousand rows at most).

        ``unless_reloaded``: keep what another caller read meanwhile (a fill's snapshot may be older than
        the change log's).
        """
        seen = self._institutions_read
        got = {i: InstitutionFacts(name, locality) for i, name, locality in
               session.execute(select(Institution.id, Institution.name, Institution.locality))}
        signed = dict(session.execute(select(Project.institution_id, func.count())
                                      .group_by(Project.institution_id)).all())
        with self._lock:
            if not (unless_reloaded and self._institutions_read != seen):
                self.institutions, self._signed = got, signed
                self._institutions_read += 1

    def signed_counts(self, institution_ids: Iterable[int]) -> dict[int, int] | None:
        """Signed projects of each of ``institution_ids`` that has any (the track-record factor), or None
        before the institutions were first read."""
        with self._lock:
            if not self._institutions_read:
                return None
            return {i: self._signed[i] for i in institution_ids if i in self._signed}

    def fill(self, session: Session, stop: Callable[[], bool] = lambda: False) -> int:
        """Hold every indexed outcome of the database (behind what the change log wrote meanwhile) until
        ``stop()``; returns how many rows were read. Sets :attr:`filled` when it ran to its end."""
        self.load_institutions(session, unless_reloaded=True)
        stmt = (select(*COLUMNS).where(Outcome.deleted_at.is_(None), Outcome.status != "withdrawn")
                .execution_options(yield_per=_BATCH))
        read = 0
        for batch in session.execute(stmt).partitions():
            if stop():
                return read
            with self._lock:
                self._set(batch, from_fill=True)
            read += len(batch)
        self.filled = True
        return read

    # -- reading -------------------------------------------------------------
    def rows(self, ids: Iterable[int]) -> dict[int, OutcomeRow]:
        """The held outcomes among ``ids``, by id (an id not held is left out)."""
        with self._lock:
            ids = np.fromiter(ids, np.int64)
            ids = ids[(ids >= 0) & (ids < self._size)]
            c = self._cols
            ids = ids[c["present"][ids]]
            got = {name: col[ids].tolist() for name, col in c.items() if name not in ("present", "written")}
            institutions, modes = self.institutions, self._modes.names
            chain, stage = self._chains.name, self._stages.name
            out = {}
            for rid, inst, ch, st, trl, bits, low, high, negotiable, length, digest in zip(
                    ids.tolist(), *(got[name] for name in ("institution", "chain", "stage", "trl", "modes", "price_min",
                                                           "price_max", "negotiable", "body_length", "hash"))):
                institution = institutions.get(inst)
                if institution is None:
                    continue  # written after the institutions were read: load it instead
                out[rid] = OutcomeRow(rid, inst, institution, chain(ch), stage(st), None if trl == _NONE else trl,
                                      [m for b, m in enumerate(modes) if bits >> b & 1], _number(low), _number(high),
                                      negotiable, length, digest.decode())
            return out


def _number(value: float) -> float | None:
    return None if value != value else value  # NaN stands for None
