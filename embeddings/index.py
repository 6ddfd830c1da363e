"""An id-mapped FAISS inner-product index that is saved and loaded safely.

Ids are the database ids of the records, so a search answers with ids that
the caller looks up directly. Saving writes one self-describing file (header
with model, dimension and data version, the FAISS bytes, a checksum) to a
temporary name and renames it into place: a reader sees the old file or the
new one, never half of one. Loading refuses a file whose header does not match
what the caller expects, or whose checksum fails; the caller then rebuilds.
"""
from __future__ import annotations

import hashlib
import json
import os
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path
from threading import RLock

import faiss
import numpy as np

_MAGIC = b"CXYIDX1\n"


@dataclass(frozen=True)
class IndexMeta:
    """What an index file was built from."""

    model: str
    dim: int
    version: int  # the data version (last applied change) the file reflects
    count: int = 0

    def compatible(self, other: "IndexMeta") -> bool:
        return self.model == other.model and self.dim == other.dim


class VectorIndex:
    """Exact inner-product search over normalised vectors keyed by int64 ids.

    Thread-safe: FAISS searches may run concurrently, but an add or remove must
    not interleave with a search, so all access goes through one lock.
    """

    def __init__(self, dim: int):
        self.dim = dim
        self._index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        self._lock = RLock()

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def ids(self) -> np.ndarray:
        """All ids held, as an int64 array."""
        with self._lock:
            return faiss.vector_to_array(self._index.id_map).astype(np.int64)

    def __contains__(self, item_id: int) -> bool:
        return int(item_id) in set(self.ids().tolist())

    def upsert(self, ids, vectors: np.ndarray) -> None:
        """Insert or replace the vectors of ``ids``."""
        ids = np.asarray(ids, dtype=np.int64)
        if ids.size == 0:
            return
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(ids), self.dim)
        with self._lock:
            self._index.remove_ids(ids)
            self._index.add_with_ids(vectors, ids)

    def remove(self, ids) -> int:
        """Drop ``ids`` (unknown ids are ignored); returns how many were removed."""
        ids = np.asarray(ids, dtype=np.int64)
        if ids.size == 0:
            return 0
        with self._lock:
            return int(self._index.remove_ids(ids))

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
        before ranking, so a filter never returns fewer rows than exist).
        """
        query = np.ascontiguousarray(query, dtype=np.float32).reshape(1, self.dim)
        with self._lock:
            n = self._index.ntotal
            if n == 0 or k <= 0:
                return []
            params = None
            if allowed_ids is not None:
                allowed = np.asarray(sorted(set(int(i) for i in allowed_ids)), dtype=np.int64)
                if allowed.size == 0:
                    return []
                params = faiss.SearchParameters(sel=faiss.IDSelectorBatch(allowed))
                k = min(k, int(allowed.size))
            scores, ids = self._index.search(query, min(k, n), params=params)
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]

    def save(self, path: Path, meta: IndexMeta) -> None:
        """Write the index atomically to ``path`` with ``meta`` in its header."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            body = faiss.serialize_index(self._index).tobytes()
            count = len(self)
        header = json.dumps({**meta.__dict__, "count": count}).encode()
        digest = hashlib.sha256(header + body).digest()
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(_MAGIC + struct.pack("<QQ", len(header), len(body)) + header + body + digest)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    @classmethod
    def load(cls, path: Path, expect: IndexMeta) -> tuple["VectorIndex", IndexMeta] | None:
        """Read an index saved by :meth:`save`, or None if missing, corrupt or for another model."""
        path = Path(path)
        try:
            raw = path.read_bytes()
        except OSError:
            return None
        try:
            if not raw.startswith(_MAGIC):
                return None
            hlen, blen = struct.unpack_from("<QQ", raw, len(_MAGIC))
            start = len(_MAGIC) + 16
            header = raw[start : start + hlen]
            body = raw[start + hlen : start + hlen + blen]
            digest = raw[start + hlen + blen :]
            if len(body) != blen or hashlib.sha256(header + body).digest() != digest:
                return None
            meta = IndexMeta(**json.loads(header))
            if not meta.compatible(expect):
                return None
            inner = faiss.deserialize_index(np.frombuffer(body, dtype=np.uint8))
            if inner.d != expect.dim or inner.ntotal != meta.count:
                return None
        except (ValueError, TypeError, KeyError, RuntimeError, struct.error):
            return None
        index = cls(expect.dim)
        index._index = inner
        return index, meta
