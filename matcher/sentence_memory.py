"""Each record's sentence vectors in the worker's own memory, so ranking and explaining read no database.

A match page needs the sentence vectors of its long candidates (sentence-level scoring) and of its ten
results (the quoted best sentences). Read from the vector cache they cost a first view two database
round trips and, on a machine whose kernel has paged the file out, ~25 random disk reads. So every
worker holds them: filled at start from the vector cache (newest records first, while the byte budget
lasts; :meth:`SentenceVectors.fill`), kept current by the change log (:meth:`put`, :meth:`drop`), and
beyond the budget a least-recently-used memory of what was asked. An entry carries the record's
content hash, so an edited record is never answered with its old sentences.

Vectors are held as float16, half the memory of the float32 the encoder gives (at 10^5 outcomes the
difference between fitting a worker in 1.5 GB and not). Every vector this memory returns went through
that rounding, held or not, so every worker and every path scores a sentence alike; a sentence's cosine
moves by at most 2^-11 (~5e-4) of float32's, in practice ~1e-5 (docs/benchmarks.md).
"""
from __future__ import annotations

from collections import OrderedDict
from threading import Lock

import numpy as np

from embeddings.cached_encoder import CachedEncoder

from .documents import sentences_of, side_of

# 768 bytes a sentence (384 float16). The 100k-outcome bench service (~3 sentences a record) takes ~230 MB.
DEFAULT_MB = 256
HELD = np.float16
_ITEM = np.dtype(HELD).itemsize


class SentenceVectors:
    """A bounded memory of records' sentence vectors, by (side, id), each with the content hash it is for."""

    def __init__(self, encoder: CachedEncoder, max_bytes: int = DEFAULT_MB * 1024 * 1024):
        self.encoder, self.max_bytes = encoder, max_bytes
        self._items: OrderedDict[tuple[str, int], tuple[str, np.ndarray]] = OrderedDict()
        self._bytes = 0
        self._lock = Lock()
        self.misses = 0

    def __len__(self) -> int:
        return len(self._items)

    @property
    def nbytes(self) -> int:
        """Bytes of vectors held."""
        return self._bytes

    def held(self, side: str, wanted: dict[int, str]) -> dict[int, np.ndarray]:
        """The held sentence vectors of records ``wanted`` (id → content hash), by id; nothing is read or
        encoded, and a record not held (or held for other content) is left out."""
        out: dict[int, np.ndarray] = {}
        with self._lock:
            for record_id, content_hash in wanted.items():
                got = self._items.get((side, record_id))
                if got is not None and got[0] == content_hash:
                    self._items.move_to_end((side, record_id))
                    out[record_id] = got[1].astype(np.float32)
        return out

    def get(self, records) -> dict[int, np.ndarray]:
        """Sentence vectors (one row per :func:`sentences_of` sentence) of each record, by record id.

        What is not held is read from the vector cache (encoded if new) in one call, and held as most
        recently used.
        """
        out: dict[int, np.ndarray] = {}
        todo = []
        with self._lock:
            for r in records:
                key = (side_of(r), r.id)
                got = self._items.get(key)
                if got is None or got[0] != r.content_hash:
                    todo.append(r)
                else:
                    self._items.move_to_end(key)
                    out[r.id] = got[1].astype(np.float32)
        if todo:
            sentences = [sentences_of(r) for r in todo]
            flat = self.encoder.encode([s for ss in sentences for s in ss], "passage")
            with self._lock:
                self.misses += len(todo)
                for r, vecs in zip(todo, _split(flat, sentences)):
                    out[r.id] = vecs.astype(np.float32)
                    self._hold(r, vecs, recent=True)
        return out

    def put(self, records, recent: bool = True) -> int:
        """Hold the sentence vectors of ``records`` that the vector cache already has (nothing is encoded).

        ``recent``: as most recently used (a record just written: an older entry is replaced), else only
        while the budget has room, behind everything held, and never over an entry (filling at start, from a
        snapshot the change log may have overtaken). Returns how many records were added.
        """
        with self._lock:
            records = [r for r in records if (got := self._items.get((side_of(r), r.id))) is None
                       or (recent and got[0] != r.content_hash)]
            if not recent and self._bytes >= self.max_bytes:
                return 0
        if not records:
            return 0
        sentences = [sentences_of(r) for r in records]
        found = self.encoder.cached([s for ss in sentences for s in ss], "passage")
        held = 0
        with self._lock:
            start = 0
            for r, ss in zip(records, sentences):
                vecs = found[start:start + len(ss)]
                start += len(ss)
                if any(v is None for v in vecs):
                    continue  # never encoded (written before sentences were): read on first use instead
                if not recent and self._bytes + len(ss) * self.encoder.dim * _ITEM > self.max_bytes:
                    break
                held += self._hold(r, np.stack(vecs).astype(HELD), recent)
        return held

    def fill(self, batches) -> int:
        """:meth:`put` batch after batch behind what is held, until the budget is full; returns records held."""
        held = 0
        for batch in batches:
            got = self.put(batch, recent=False)
            held += got
            if got < len(batch) and self.full:
                break
        return held

    @property
    def full(self) -> bool:
        """Whether the budget is (nearly) used: one more record of a few sentences would not fit."""
        return self._bytes + 8 * self.encoder.dim * _ITEM > self.max_bytes

    def drop(self, side: str, ids) -> None:
        """Forget the records ``ids`` of ``side`` (deleted, closed or withdrawn)."""
        with self._lock:
            for i in ids:
                got = self._items.pop((side, i), None)
                if got is not None:
                    self._bytes -= got[1].nbytes

    def _hold(self, record, vecs: np.ndarray, recent: bool) -> int:
        """Keep ``vecs`` for ``record`` (under the lock); returns 1 if held."""
        key = (side_of(record), record.id)
        if vecs.nbytes > self.max_bytes:
            return 0
        old = self._items.pop(key, None)
        if old is not None:
            self._bytes -= old[1].nbytes
        self._items[key] = (record.content_hash, vecs)
        self._bytes += vecs.nbytes
        if not recent:
            self._items.move_to_end(key, last=False)
        while self._bytes > self.max_bytes:
            self._bytes -= self._items.popitem(last=False)[1][1].nbytes
        return 1


def _split(flat: np.ndarray, sentences: list[list[str]]) -> list[np.ndarray]:
    """Each record's rows of ``flat`` as held (float16 copies: a view would keep the batch's array alive)."""
    out, start = [], 0
    for ss in sentences:
        out.append(flat[start:start + len(ss)].astype(HELD))
        start += len(ss)
    return out

