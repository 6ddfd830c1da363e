"""An id-mapped FAISS inner-product index that picks its kind by size and is saved safely.

Ids are the database ids of the records, so a search answers with ids that
the caller looks up directly. Small indexes are exact (flat); past
``FLAT_LIMIT`` vectors the index becomes an IVF-Flat index whose ``nprobe`` is
calibrated for recall (see :mod:`embeddings.index_plan`). The switch, and any
later re-plan as the index keeps growing, is a rebuild in a background thread:
searches keep using the current index until the new one is swapped in, and
writes made meanwhile go to both (to the new one by replaying them just before
the swap), so none is lost.

Saving writes one self-describing file (header with model, dimension, data
version and the index plan, the FAISS bytes, a checksum) to a temporary name
and renames it into place: a reader sees the old file or the new one, never
half of one. Loading refuses a file whose header does not match what the
caller expects, or whose checksum fails; the caller then rebuilds.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import struct
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from threading import Event, RLock, Thread

import faiss
import numpy as np

from . import index_plan
from .index_plan import FLAT_LIMIT, IndexPlan

log = logging.getLogger(__name__)
# Allowed sets up to this size are searched exactly on the approximate kind
# (all lists visited, distances only for allowed ids: measured cheaper than
# reconstructing their vectors, which copies them out one hash lookup at a time).
EXACT_FILTER_LIMIT = 16_384
_BITMAP_MAX_ID = 1 << 28  # a 32 MB bitmap at most; larger ids use a hash set
_MAGIC = b"CXYIDX1\n"


@contextmanager
def _one_thread():
    """Run FAISS on one thread in this thread only (OpenMP keeps the thread count per thread).

    One query is one thread's work; a second OpenMP thread only waits at barriers for a core that a
    serving machine's other processes hold. Measured 2026-12-01 (100k × 384 flat, top 50, the other
    core busy): p50 39 ms on two threads, 6.4 ms on one. Rebuilds run elsewhere and keep every core.
    """
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


@dataclass(frozen=True)
class IndexMeta:
    """What an index file was built from."""

    model: str
    dim: int
    version: int  # the data version (last applied change) the file reflects
    count: int = 0

    def compatible(self, other: "IndexMeta") -> bool:
        return self.model == other.model and self.dim == other.dim


def _unique_last(ids: np.ndarray, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Drop repeated ids, keeping each id's last vector (a later write wins)."""
    if len(np.unique(ids)) == len(ids):
        return ids, vectors
    rev_ids = ids[::-1]
    _, first = np.unique(rev_ids, return_index=True)
    keep = np.sort(len(ids) - 1 - first)
    return ids[keep], vectors[keep]


def _as_ids(values) -> np.ndarray:
    if isinstance(values, np.ndarray):
        return values.astype(np.int64, copy=False).ravel()
    if not hasattr(values, "__len__"):
        values = list(values)
    return np.fromiter(values, dtype=np.int64, count=len(values))


def _selector(allowed: np.ndarray) -> tuple[faiss.IDSelector, np.ndarray, int]:
    """A FAISS selector for ``allowed``, the array it reads (keep it alive while searching) and the distinct count.

    Database ids are small and dense, so a bitmap over them is cheaper to
    build and to test than a hash set; the hash set is the fallback.
    """
    if allowed.min() >= 0 and allowed.max() < _BITMAP_MAX_ID:
        bits = np.zeros(int(allowed.max()) + 1, dtype=bool)
        bits[allowed] = True
        packed = np.packbits(bits, bitorder="little")
        return faiss.IDSelectorBitmap(len(packed), faiss.swig_ptr(packed)), packed, int(np.count_nonzero(bits))
    unique = np.unique(allowed)
    return faiss.IDSelectorBatch(unique), unique, int(unique.size)


def _remove_from(index: faiss.Index, ids: np.ndarray) -> int:
    if isinstance(index, faiss.IndexIVF):
        # The id→list hash table only serves removals named one by one.
        return int(index.remove_ids(faiss.IDSelectorArray(ids.size, faiss.swig_ptr(ids))))
    return int(index.remove_ids(ids))


def _upsert_into(index: faiss.Index, ids: np.ndarray, vectors: np.ndarray) -> None:
    _remove_from(index, ids)
    index.add_with_ids(vectors, ids)


def _contents(index: faiss.Index, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Copies of every (id, vector) the index holds."""
    if isinstance(index, faiss.IndexIVF):
        return index_plan.ivf_contents(index)
    n = index.ntotal
    ids = faiss.vector_to_array(index.id_map).astype(np.int64)
    flat = faiss.downcast_index(index.index)
    vectors = faiss.rev_swig_ptr(flat.get_xb(), n * dim).reshape(n, dim).copy() if n else np.zeros((0, dim), np.float32)
    return ids, vectors


class VectorIndex:
    """Inner-product search over normalised vectors keyed by int64 ids; exact below ``flat_limit``.

    Thread-safe: FAISS searches may run concurrently, but an add or remove must
    not interleave with a search, so all access to the live FAISS index goes
    through one lock. A background rebuild holds it only to copy the vectors
    out, one inverted list at a time, and to replay writes and swap at its end.
    """

    def __init__(self, dim: int, *, flat_limit: int = FLAT_LIMIT, auto: bool = True):
        self.dim = dim
        self.flat_limit = flat_limit
        self.auto = auto  # re-plan by itself when the size calls for it
        self._index: faiss.Index = index_plan.new_flat(dim)
        self._plan = IndexPlan("flat")
        self._lock = RLock()
        self._journal: list[tuple[str, np.ndarray, np.ndarray | None]] | None = None
        self._idle = Event()
        self._idle.set()
        self.last_rebuild_s: float | None = None

    @classmethod
    def build(cls, dim: int, ids, vectors: np.ndarray, **options) -> "VectorIndex":
        """An index of the kind ``len(ids)`` calls for, filled in one go (no re-plans on the way).

        Building from all vectors at once is what a rebuild from the database
        should use: adding them batch by batch would re-plan at each growth step.
        """
        index = cls(dim, **options)
        ids = np.asarray(ids, dtype=np.int64)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(ids), dim)
        ids, vectors = _unique_last(ids, vectors)
        index._index, index._plan = index_plan.build(index_plan.plan_for(len(ids), index.flat_limit), dim, ids, vectors)
        return index

    # -- what it is ------------------------------------------------------
    @property
    def plan(self) -> IndexPlan:
        """The kind and parameters of the index answering searches now."""
        return self._plan

    @property
    def kind(self) -> str:
        """``"flat"`` (exact) or ``"ivf"`` (approximate)."""
        return self._plan.kind

    @property
    def rebuilding(self) -> bool:
        """Whether a background rebuild is under way."""
        return not self._idle.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until no rebuild is running; False if ``timeout`` ran out first."""
        return self._idle.wait(timeout)

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def ids(self) -> np.ndarray:
        """All ids held, as an int64 array."""
        with self._lock:
            if isinstance(self._index, faiss.IndexIVF):
                return index_plan.ivf_contents(self._index, with_vectors=False)[0]
            return faiss.vector_to_array(self._index.id_map).astype(np.int64)

    def __contains__(self, item_id: int) -> bool:
        return self.vector(item_id) is not None

    # -- writes ----------------------------------------------------------
    def upsert(self, ids, vectors: np.ndarray) -> None:
        """Insert or replace the vectors of ``ids``; visible to the next search."""
        ids = np.asarray(ids, dtype=np.int64)
        if ids.size == 0:
            return
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(ids), self.dim)
        ids, vectors = _unique_last(ids, vectors)
        with self._lock:
            _upsert_into(self._index, ids, vectors)
            if self._journal is not None:
                self._journal.append(("upsert", ids.copy(), vectors.copy()))
        self._maybe_replan()

    def remove(self, ids) -> int:
        """Drop ``ids`` (unknown ids are ignored); returns how many were removed."""
        ids = np.unique(np.asarray(ids, dtype=np.int64))
        if ids.size == 0:
            return 0
        with self._lock:
            removed = _remove_from(self._index, ids)
            if self._journal is not None:
                self._journal.append(("remove", ids.copy(), None))
        self._maybe_replan()
        return removed

    # -- rebuilds --------------------------------------------------------
    def _maybe_replan(self) -> None:
        if self.auto and not self.rebuilding and index_plan.needs_replan(self._plan, len(self), self.flat_limit):
            self.rebuild(background=True)

    def rebuild(self, background: bool = True) -> bool:
        """Rebuild for the current size (kind, lists, calibrated ``nprobe``); False if one is already running.

        In the background, searches use the current index until the new one is
        swapped in, and writes made meanwhile reach both.
        """
        with self._lock:
            if self.rebuilding:
                return False
            self._idle.clear()
            self._journal = []  # from here on every write is also replayed onto the new index
            source = self._index
        if not background:
            self._rebuild(source)
            return True
        Thread(target=self._rebuild, args=(source,), name="vector-index-rebuild", daemon=True).start()
        return True

    def _snapshot(self, source: faiss.Index) -> tuple[np.ndarray, np.ndarray]:
        """Copies of the source's ids and vectors, taking the lock one inverted list at a time.

        Searches wait for one list's copy at most, not for the whole index. A
        write between two lists may leave an id in the copy twice or stale;
        the journal replays every such write onto the new index, so the copy
        only has to be right for ids nobody touched meanwhile.
        """
        if not isinstance(source, faiss.IndexIVF):
            with self._lock:
                return _contents(source, self.dim)
        parts = []
        for lst in range(source.nlist):
            with self._lock:
                parts.append(index_plan.ivf_list(source, lst))
        ids = np.concatenate([p[0] for p in parts])
        vectors = np.concatenate([p[1] for p in parts])
        del parts
        return _unique_last(ids, vectors)

    def _rebuild(self, source: faiss.Index) -> None:
        started = time.perf_counter()
        try:
            ids, vectors = self._snapshot(source)
            plan = index_plan.plan_for(len(ids), self.flat_limit)
            fresh, plan = index_plan.build(plan, self.dim, ids, vectors)
            del ids, vectors  # the copy is not needed past here; free it before the swap
            with self._lock:
                for op, op_ids, op_vectors in self._journal or []:
                    if op == "upsert":
                        _upsert_into(fresh, op_ids, op_vectors)
                    else:
                        _remove_from(fresh, op_ids)
                self._index, self._plan = fresh, plan
                self.last_rebuild_s = time.perf_counter() - started
            log.info("vector index rebuilt as %s for %d vectors in %.1f s", plan.describe(), len(self),
                     self.last_rebuild_s)
        except Exception:  # the old index keeps serving; a failed rebuild must not take it down
            log.exception("vector index rebuild failed; the current index keeps serving")
        finally:
            with self._lock:
                self._journal = None
            self._idle.set()
        self._maybe_replan()  # it may have grown past the new plan while building

    # -- reads -----------------------------------------------------------
    def vector(self, item_id: int) -> np.ndarray | None:
        """The stored vector of one id, or None."""
        with self._lock:
            try:
                return self._index.reconstruct(int(item_id))
            except RuntimeError:
                return None

    def vectors(self, ids) -> tuple[np.ndarray, np.ndarray]:
        """Stored vectors of ``ids`` as (n, dim) plus a mask of which ids were found (missing rows are zero)."""
        ids = np.asarray(ids, dtype=np.int64)
        out = np.zeros((len(ids), self.dim), dtype=np.float32)
        found = np.zeros(len(ids), dtype=bool)
        if ids.size == 0:
            return out, found
        with self._lock:
            try:
                out[:] = self._index.reconstruct_batch(ids)
                found[:] = True
            except RuntimeError:  # some id is not held: fall back to one by one
                for n, i in enumerate(ids):
                    try:
                        out[n] = self._index.reconstruct(int(i))
                        found[n] = True
                    except RuntimeError:
                        pass
        return out, found

    def search(self, query: np.ndarray, k: int, allowed_ids=None) -> list[tuple[int, float]]:
        """Top ``k`` (id, score) for one query vector, best first.

        ``allowed_ids`` restricts the search to those ids (filters applied
        before ranking, so a filter never returns fewer rows than exist). On
        the approximate kind, a small allowed set (``EXACT_FILTER_LIMIT``) is
        searched exactly, a larger one probes more lists the more selective it
        is, and any search that comes back short of rows is repeated over
        more lists until it is not.
        """
        query = np.ascontiguousarray(query, dtype=np.float32).reshape(1, self.dim)
        sel = None
        if allowed_ids is not None:
            allowed = _as_ids(allowed_ids)
            if allowed.size == 0:
                return []
            sel, _keep_alive, distinct = _selector(allowed)
        with self._lock, _one_thread():
            index, plan = self._index, self._plan
            n = int(index.ntotal)
            if n == 0 or k <= 0:
                return []
            k = min(k, n) if sel is None else min(k, n, distinct)
            if isinstance(index, faiss.IndexIVF):
                scores, ids = self._search_ivf(index, plan, query, k, sel, None if sel is None else distinct)
            else:
                scores, ids = index.search(query, k, params=None if sel is None else faiss.SearchParameters(sel=sel))
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]

    @staticmethod
    def _search_ivf(index: faiss.IndexIVF, plan: IndexPlan, query: np.ndarray, k: int,
                    sel: faiss.IDSelector | None, allowed: int | None) -> tuple[np.ndarray, np.ndarray]:
        nlist = index.nlist
        nprobe = max(1, min(plan.nprobe or nlist, nlist))
        if allowed is not None:
            # A small allowed set is searched exactly: every list is visited,
            # but distances are only computed for the allowed ids. A larger
            # one probes more lists the fewer ids pass, so that about as many
            # candidates are compared as without a filter.
            nprobe = nlist if allowed <= EXACT_FILTER_LIMIT else min(nlist, max(nprobe, math.ceil(
                nprobe * index.ntotal / allowed)))
        while True:
            scores, ids = index.search(query, k, params=faiss.SearchParametersIVF(sel=sel, nprobe=nprobe))
            if nprobe >= nlist or int((ids[0] >= 0).sum()) >= k:
                return scores, ids
            nprobe = min(nlist, nprobe * 4)

    # -- files -----------------------------------------------------------
    def save(self, path: Path, meta: IndexMeta) -> None:
        """Write the index atomically to ``path`` with ``meta`` and the index plan in its header."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            body = memoryview(faiss.serialize_index(self._index))
            count, plan = len(self), self._plan
        header = json.dumps({**meta.__dict__, "count": count, "index": plan.to_dict()}).encode()
        digest = hashlib.sha256(header)
        digest.update(body)
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(_MAGIC + struct.pack("<QQ", len(header), len(body)) + header)
                fh.write(body)
                fh.write(digest.digest())
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    @classmethod
    def load(cls, path: Path, expect: IndexMeta, **options) -> tuple["VectorIndex", IndexMeta] | None:
        """Read an index saved by :meth:`save`, or None if missing, corrupt or for another model."""
        path = Path(path)
        try:
            raw = memoryview(path.read_bytes())
        except OSError:
            return None
        try:
            if raw[: len(_MAGIC)] != _MAGIC:
                return None
            hlen, blen = struct.unpack_from("<QQ", raw, len(_MAGIC))
            start = len(_MAGIC) + 16
            header = bytes(raw[start : start + hlen])
            body = raw[start + hlen : start + hlen + blen]
            stored = raw[start + hlen + blen :]
            digest = hashlib.sha256(header)
            digest.update(body)
            if len(body) != blen or digest.digest() != stored:
                return None
            fields = json.loads(header)
            plan = IndexPlan.from_dict(fields.pop("index", None))  # files from before kinds are flat
            meta = IndexMeta(**fields)
            if not meta.compatible(expect):
                return None
            inner = faiss.deserialize_index(np.frombuffer(body, dtype=np.uint8))
            if inner.d != expect.dim or inner.ntotal != meta.count:
                return None
            if plan.kind == "ivf":
                if not isinstance(inner, faiss.IndexIVFFlat) or inner.direct_map.type != faiss.DirectMap.Hashtable:
                    return None
                inner.nprobe = plan.nprobe
            elif not isinstance(inner, faiss.IndexIDMap2):
                return None
        except (ValueError, TypeError, KeyError, RuntimeError, struct.error):
            return None
        index = cls(expect.dim, **options)
        index._index, index._plan = inner, plan
        return index, meta
