"""Run a sentence-transformers model through ONNX Runtime, in fp32 or dynamically quantised to int8.

sentence-transformers' own ``backend="onnx"`` needs optimum-onnx, whose newest release (0.1.0) pins
transformers < 4.58 and does not import with the transformers 5 this project uses. The same three steps
are done here with the libraries it would call: ``torch.onnx.export`` of the whole sentence pipeline
(transformer + pooling + normalisation), ``onnxruntime.quantization.quantize_dynamic`` with per-channel
int8 weights (what optimum's ``avx512_vnni`` preset does, but 7-bit and not in the FFN's second multiply:
:func:`int8_nodes`), and an ``onnxruntime`` session.

The files are written once, beside the model folder, into ``onnx/<fp32 model id>/`` under a file lock,
so a fine-tuned or replaced model (a different id) is exported afresh and never served from stale files.
"""
from __future__ import annotations

import fcntl
import logging
import os
import re
import tempfile
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

TORCH = "torch"
TORCH_BF16 = "torch-bf16"
ONNX = "onnx"
ONNX_INT8 = "onnx-int8"
AUTO = "auto"
BACKENDS = (ONNX_INT8, ONNX, TORCH_BF16, TORCH)
# auto, for an installation with no vectors yet (one that has some keeps their backend: embeddings.installed_backend):
# int8 under ONNX Runtime, which leaves the FFN output in fp32 and stays within the 0.01 nDCG@10 bound (-0.0013 /
# -0.0061 on Zen 3, -0.0001 / -0.0022 on Zen 4 and on an Intel Xeon with VNNI, 3,000-document subsamples) and was the
# fastest measured on Zen 3 (1.61x fp32 on abstracts, 3.9x a single query), on Zen 4 with VNNI (2.0x, ahead of bf16's
# 1.75x) and on that Xeon (1.39-1.45x on abstracts, 3.1x a single query; fp32 ONNX 1.03-1.07x). Only where bf16
# multiplies several times faster than fp32 (AMX: 7.2x) does torch-bf16 encode more a second; embeddings.backend_choice
# measures that where the CPU's flags show bf16.
DEFAULT_BACKEND = AUTO
_BF16_CPU_FLAGS = {"avx512_bf16", "amx_bf16"}

_FP32_FILE = "model.onnx"
# The quantisation recipe is part of the int8 model id: vectors of two recipes must never share a cache.
INT8_RECIPE = "rr-no-ffn-out"
_INT8_FILE = f"model_qint8_{INT8_RECIPE}.onnx"
_INPUTS = ("input_ids", "attention_mask")
_OUTPUT = "sentence_embedding"


class UnknownBackendError(ValueError):
    """The backend setting names no backend this build knows."""


def _cpu_flags(cpuinfo: str | None) -> set[str]:
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(errors="ignore")
        except OSError:
            return set()
    return {f for line in cpuinfo.splitlines() if line.startswith("flags") for f in line.split(":", 1)[1].split()}


def cpu_has_bf16(cpuinfo: str | None = None) -> bool:
    """Whether this CPU multiplies bf16 natively (without it, bf16 in torch is emulated and slower than fp32)."""
    return bool(_cpu_flags(cpuinfo) & _BF16_CPU_FLAGS)


def check_backend(name: str, data_dir: Path | str | None = None) -> str:
    """Return ``name`` normalised and resolved (``auto`` → the fastest exact-enough backend for this CPU).

    ``auto`` is ``onnx-int8``, or ``torch-bf16`` where the CPU's flags show bf16 and it multiplies bf16 much faster
    than fp32, measured once and kept in ``data_dir`` (:func:`embeddings.backend_choice.resolve_auto_bf16`); pass
    the data directory the vectors live in. This is the answer for a new installation: one that already holds
    vectors keeps their backend (:func:`embeddings.installed_backend.installed_backend`).
    Raises :class:`UnknownBackendError` for anything not in :data:`BACKENDS` or ``auto``.
    """
    normalised = (name or "").strip().lower()
    if normalised == AUTO:
        if not cpu_has_bf16():
            return ONNX_INT8
        from .backend_choice import resolve_auto_bf16

        return resolve_auto_bf16(data_dir)
    if normalised not in BACKENDS:
        raise UnknownBackendError(
            f"未知的向量推理后端 {name!r}；可选：{AUTO} | {' | '.join(BACKENDS)}（MATCHER_EMBEDDING_BACKEND）。"
        )
    return normalised


def backend_model_id(base_id: str, backend: str) -> str:
    """The model id vectors of ``backend`` are cached under: plain fp32 torch keeps the bare id."""
    if backend == TORCH:
        return base_id
    if backend == ONNX_INT8:
        return f"{base_id}+{backend}.{INT8_RECIPE}"
    return f"{base_id}+{backend}"


def cpu_threads() -> int:
    """The cores this process may run on (respects taskset/cgroup affinity, unlike ``os.cpu_count``)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def export_dir(location: str, data_dir: Path, base_model_id: str) -> Path:
    """Where the ONNX files of the model with fp32 id ``base_model_id`` live (one folder per weights).

    Beside the model folder (``<models>/onnx/<id>/``) when that is writable, so every data directory
    using the same model shares one export; otherwise (a hub name, a read-only folder) under
    ``<data_dir>/models/onnx/``.
    """
    safe = re.sub(r"[^A-Za-z0-9._@-]+", "_", base_model_id)
    model = Path(location)
    if model.is_dir() and os.access(model.resolve().parent, os.W_OK):
        return model.resolve().parent / "onnx" / safe
    return Path(data_dir) / "models" / "onnx" / safe


def _atomic_target(final: Path) -> Path:
    # A crash mid-export must not leave a file that looks finished.
    fd, tmp = tempfile.mkstemp(prefix=final.stem + ".", suffix=".tmp.onnx", dir=final.parent)
    os.close(fd)
    os.chmod(tmp, 0o644)  # mkstemp makes it private; workers of another user must be able to read it
    return Path(tmp)


def _export_fp32(st_model, target: Path) -> None:
    import torch

    class _SentencePipeline(torch.nn.Module):
        """The sentence-transformers modules (transformer, pooling, normalise) as one traced graph."""

        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask):
            return self.model({"input_ids": input_ids, "attention_mask": attention_mask})[_OUTPUT]

    # Two texts of different lengths, so the traced graph has real padding in it.
    sample = st_model.tokenizer(["query: 样例", "passage: 用于导出计算图的较长样例文本"], padding=True,
                                return_tensors="pt")
    tmp = _atomic_target(target)
    try:
        with torch.no_grad():
            # The TorchScript exporter needs no onnxscript and traces this encoder-only model exactly
            # (the equality is checked by tests/test_encoder_backends.py).
            torch.onnx.export(
                _SentencePipeline(st_model).eval(), (sample["input_ids"], sample["attention_mask"]), str(tmp),
                dynamo=False, opset_version=17, input_names=list(_INPUTS), output_names=[_OUTPUT],
                dynamic_axes={"input_ids": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"},
                              _OUTPUT: {0: "batch"}},
            )
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def int8_nodes(model_path: Path) -> list[str]:
    """The weight multiplies int8 covers: each layer's Q, K, V, attention output and FFN input, not its FFN output.

    The FFN's second multiply reads the GELU activations (1,536 wide, long-tailed), which one int8 scale per
    batch represents badly: on 200 CSL abstracts it alone took the mean cosine to fp32 from 1 to 0.9977,
    while the other five multiplies together cost 0.9991 (Zen 3, 2026-12-07; docs/benchmarks.md). Matched by
    the exporter's node names, which follow the transformer's module paths.
    """
    import onnx

    graph = onnx.load(str(model_path), load_external_data=False).graph
    weights = {t.name for t in graph.initializer}
    return [n.name for n in graph.node
            if n.op_type == "MatMul" and any(i in weights for i in n.input)
            and not ("/output/dense/" in n.name and "/attention/" not in n.name)]


def _quantize_int8(source: Path, target: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    tmp = _atomic_target(target)
    try:
        # Per-channel weights: per-tensor int8 lost ~1.2 % cosine to fp32 on CSL abstracts, per-channel ~0.3 %.
        # 7-bit weights (reduce_range): on CPUs without VNNI the u8 x s8 kernel adds pairs of products in 16
        # bits and saturates; with 7 bits it cannot (255 x 63 x 2 < 2^15), so both kinds of CPU sum exactly.
        logging.disable(logging.INFO)  # the quantiser logs every tensor it skips on the root logger
        try:
            quantize_dynamic(str(source), str(tmp), weight_type=QuantType.QInt8, per_channel=True,
                             reduce_range=True, nodes_to_quantize=int8_nodes(source))
        finally:
            logging.disable(logging.NOTSET)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def ensure_onnx_file(load_st_model, directory: Path, backend: str) -> Path:
    """The ONNX file for ``backend`` in ``directory``, exporting (and quantising) it first if missing.

    ``load_st_model()`` returns the fp32 SentenceTransformer; it is called only when an export is
    needed. Several processes starting together export once: the work happens under an exclusive
    file lock and each file appears atomically. Nothing is downloaded.
    """
    fp32, int8 = directory / _FP32_FILE, directory / _INT8_FILE
    wanted = int8 if backend == ONNX_INT8 else fp32
    if wanted.exists():
        return wanted
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".export.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not fp32.exists():
            log.info("exporting the embedding model to ONNX in %s", directory)
            _export_fp32(load_st_model(), fp32)
        if backend == ONNX_INT8 and not int8.exists():
            log.info("quantising the ONNX model to int8 in %s", directory)
            _quantize_int8(fp32, int8)
    return wanted


def load_initializers(path: Path) -> dict:
    """The model file's weights as ONNX Runtime values, to be shared by every session made with them.

    Two sessions of one model given these hold its weights once (measured: a second session of the
    fp32 model costs ≈ 90 MB with them, ≈ 470 MB without). Values under 128 bytes are left to the file:
    ONNX Runtime refuses to take those from outside.
    """
    import onnx
    import onnxruntime as ort
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    arrays = (numpy_helper.to_array(t) for t in graph.initializer)
    # An OrtValue made from a numpy array uses the array's memory and keeps a reference to it.
    return {t.name: ort.OrtValue.ortvalue_from_numpy(a) for t, a in zip(graph.initializer, arrays) if a.nbytes >= 128}


class OnnxSentenceModel:
    """An exported sentence pipeline in an ONNX Runtime session: texts in, sentence vectors out.

    ``initializers`` (from :func:`load_initializers`) lets several sessions of one model, each with
    its own thread count, share the weights.
    """

    def __init__(self, path: Path, tokenizer, max_tokens: int, threads: int | None = None,
                 initializers: dict | None = None):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or cpu_threads()
        # No second pool for parallel graph branches: it would only compete for the same cores (several
        # calls may run one session at once, each on its own share: embeddings.core_slots).
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Pool threads spin between the operators of a run (waking a sleeping one costs more), but not after
        # it: a thread still spinning 30 ms later holds a core the API workers need, and makes the machine
        # look busy to embeddings.cpu_load.
        options.add_session_config_entry("session.force_spinning_stop", "1")
        for name, value in (initializers or {}).items():
            options.add_initializer(name, value)
        self.initializers = initializers  # kept alive as long as the session
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.tokenizer = tokenizer
        self.max_tokens = max_tokens
        self.dim = int(self.session.get_outputs()[0].shape[-1])

    def encode_batch(self, texts: list[str]) -> np.ndarray:
        """Vectors (n, dim) float32 for one batch; texts longer than ``max_tokens`` are truncated."""
        enc = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_tokens, return_tensors="np")
        feeds = {name: enc[name].astype(np.int64, copy=False) for name in _INPUTS}
        return self.session.run([_OUTPUT], feeds)[0].astype(np.float32, copy=False)
