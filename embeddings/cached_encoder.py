"""An encoder that never encodes the same text twice."""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from threading import Lock

import numpy as np

from .encoder import Encoder, ProgressCallback
from .vector_cache import VectorCache, text_key


class CachedEncoder:
    """Wraps an :class:`Encoder` with the persistent :class:`VectorCache`.

    ``encode`` returns exactly what the encoder would, but only texts never seen
    with this model are sent to the model. Short free-text queries also go
    through a small in-process LRU, so a repeated search costs no database trip.
    """

    def __init__(self, encoder: Encoder, cache: VectorCache | None, memory_items: int = 2048):
        self.encoder = encoder
        self.cache = cache
        self._memory: OrderedDict[str, np.ndarray] = OrderedDict()
        self._memory_items = memory_items
        self._unsaved: set[str] = set()  # keys in memory that were encoded with persist=False
        self._lock = Lock()
        self.encoded_count = 0  # texts actually sent to the model, for reports and tests

    @property
    def dim(self) -> int:
        return self.encoder.dim

    @property
    def model_id(self) -> str:
        return self.encoder.model_id

    def warm_up(self) -> None:
        """Let a model in this process make what its first searches would wait for (the shared process warms itself)."""
        if not self.is_remote:
            self.encoder.warm_up()

    @property
    def is_remote(self) -> bool:
        """Whether the model runs in the shared encoder process rather than in this one."""
        from .encoder_service import RemoteEncoder

        return isinstance(self.encoder, RemoteEncoder)

    def _remember(self, key: str, vec: np.ndarray) -> None:
        with self._lock:
            self._memory[key] = vec
            self._memory.move_to_end(key)
            while len(self._memory) > self._memory_items:
                self._unsaved.discard(self._memory.popitem(last=False)[0])

    def cached(self, texts: Sequence[str], kind: str) -> list[np.ndarray | None]:
        """The vector of each text already computed with this model (None where there is none); never encodes."""
        keys = [text_key(t, kind) for t in texts]
        with self._lock:
            found = {k: self._memory[k] for k in keys if k in self._memory}
        missing = [k for k in dict.fromkeys(keys) if k not in found]
        if missing and self.cache is not None:
            found.update(self.cache.get_many(self.model_id, missing))
        return [found.get(k) for k in keys]

    def encode(
        self, texts: Sequence[str], kind: str, *, on_progress: ProgressCallback | None = None, persist: bool = True
    ) -> np.ndarray:
        """Vectors for ``texts`` (n, dim) float32, from cache where possible.

        ``persist=False`` is for free text typed into a search: such a text is rarely asked twice, so the
        database cache is neither read nor written for it (a write per search would cost the search a
        transaction and grow the table by every search ever made); this process's memory still keeps it.
        """
        texts = list(texts)
        keys = [text_key(t, kind) for t in texts]
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        found: dict[str, np.ndarray] = {}
        with self._lock:
            for k in keys:
                if k in self._memory:
                    found[k] = self._memory[k]
        missing = [k for k in dict.fromkeys(keys) if k not in found]
        cache = self.cache if persist else None
        if missing and cache is not None:
            found.update(cache.get_many(self.model_id, missing))
        if cache is not None and self._unsaved:
            # Typed as a search first, now a record's text: the database must hold it like any record's.
            with self._lock:
                late = {k: found[k] for k in found if k in self._unsaved}
                self._unsaved.difference_update(late)
            if late:
                cache.put_many(self.model_id, late)
        todo = list(dict.fromkeys(k for k in keys if k not in found))
        if todo:
            first_text = {}
            for k, t in zip(keys, texts):
                first_text.setdefault(k, t)
            vecs = self.encoder.encode([first_text[k] for k in todo], kind, on_progress=on_progress)
            fresh = dict(zip(todo, vecs))
            self.encoded_count += len(todo)
            if cache is not None:
                cache.put_many(self.model_id, fresh)
            found.update(fresh)
        elif on_progress:
            on_progress(len(texts), len(texts))
        for i, k in enumerate(keys):
            out[i] = found[k]
        if len(texts) <= 4:
            for k in keys:
                self._remember(k, found[k])
            if not persist and self.cache is not None and todo:
                with self._lock:
                    self._unsaved.update(k for k in todo if k in self._memory)
        return out
