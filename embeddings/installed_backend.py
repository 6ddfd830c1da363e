"""``auto`` for an installation that already holds vectors: the backend they were made with.

The backend is part of the model id every vector is cached and indexed under (``…+onnx``,
``…+onnx-int8.<recipe>``). Were ``auto`` decided by the CPU alone, a default that changed between releases, a
data directory moved to another kind of CPU, or a worker on another machine sharing the PostgreSQL store would
file new vectors under a new id and re-encode every record: about 10-25 abstracts a second on two cores, hours
at 10^5 and days at 10^6. The database is the one source of truth, so its vector cache decides, alike for every
worker; only an installation with no vectors of this model yet gets the fastest backend for its CPU
(:func:`embeddings.onnx_backend.check_backend`).
"""
from __future__ import annotations

import logging
from pathlib import Path

from .encoder import base_model_id
from .onnx_backend import AUTO, BACKENDS, backend_model_id, check_backend
from .vector_cache import VectorCache

log = logging.getLogger(__name__)

# Enough to tell which backend an installation encodes with (a seed load alone files ~100 vectors), small enough
# that asking takes milliseconds at 10^6 vectors.
COUNT_CAP = 10_000


def backends_held(cache: VectorCache, base_id: str, cap: int = COUNT_CAP) -> dict[str, int]:
    """The backends with vectors of the model ``base_id`` in ``cache``, each with its count (capped at ``cap``)."""
    counts = {backend: cache.count(backend_model_id(base_id, backend), cap) for backend in BACKENDS}
    return {backend: n for backend, n in counts.items() if n}


def reads_store(name: str) -> bool:
    """Whether resolving the backend ``name`` reads the stored vectors: only ``auto`` does."""
    return (name or "").strip().lower() == AUTO


def installed_backend(name: str, spec: str, data_dir: Path | str, cache: VectorCache | None) -> str:
    """``name`` resolved for the installation whose vectors ``cache`` holds.

    A named backend is taken as named (and a typo refused, :class:`~embeddings.onnx_backend.UnknownBackendError`);
    ``cache`` is not read then and may be ``None`` (:func:`reads_store`).
    ``auto`` is the backend most of the stored vectors of ``spec`` were made with; where several hold as many,
    the one this CPU would choose, else the first in :data:`~embeddings.onnx_backend.BACKENDS`. With no vectors
    of this model stored, ``auto`` is this CPU's choice for a new installation.
    """
    if not reads_store(name):
        return check_backend(name, data_dir)
    held = backends_held(cache, base_model_id(spec, data_dir))
    fresh = check_backend(AUTO, data_dir)
    if not held:
        return fresh
    most = max(held.values())
    tied = [backend for backend in BACKENDS if held.get(backend) == most]
    kept = fresh if fresh in tied else tied[0]
    if kept != fresh:
        log.warning("auto keeps %s, the backend of the %s%d vectors already stored; a new installation on this CPU "
                    "would take %s. Set MATCHER_EMBEDDING_BACKEND=%s to switch (every record is encoded again once).",
                    kept, "≥ " if most >= COUNT_CAP else "", most, fresh, fresh)
    return kept
