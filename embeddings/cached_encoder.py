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
        self._lock = Lock()
        self.encoded_count = 0  # texts actually sent to the model, for reports and tests

    @property
    def dim(self) -> int:
        return self.encoder.dim

    @property
    def model_id(self) -> str:
        return self.encoder.model_id

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
                self._memory.popitem(last=False)

    def encode(
        self, texts: Sequence[str], kind: str, *, on_progress: ProgressCallback | None = None
    ) -> np.ndarray:
        """Vectors for ``texts`` (n, dim) float32, from cache where possible."""
        texts = list(texts)
        keys = [text_key(t, kind) for t in texts]
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        found: dict[str, np.ndarray] = {}
        with self._lock:
            for k in keys:
                if k in self._memory:
                    found[k] = self._memory[k]
        missing = [k for k in dict.fromkeys(keys) if k not in found]
        if missing and self.cache is not None:
            found.update(self.cache.get_many(self.model_id, missing))
        todo = list(dict.fromkeys(k for k in keys if k not in found))
        if todo:
            first_text = {}
            for k, t in zip(keys, texts):
                first_text.setdefault(k, t)
            vecs = self.encoder.encode([first_text[k] for k in todo], kind, on_progress=on_progress)
            fresh = dict(zip(todo, vecs))
            self.encoded_count += len(todo)
            if self.cache is not None:
                self.cache.put_many(self.model_id, fresh)
            found.update(fresh)
        elif on_progress:
            on_progress(len(texts), len(texts))
        for i, k in enumerate(keys):
            out[i] = found[k]
        if len(texts) <= 4:
            for k in keys:
                self._remember(k, found[k])
        return out
