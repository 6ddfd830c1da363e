"""What ``auto`` means for a new installation on this machine: bf16 weights only where the CPU multiplies bf16
several times faster than fp32, measured; ``onnx-int8`` everywhere else.

A CPU flag says an instruction exists, not that it is fast. An Intel Xeon whose hypervisor shows AVX-512 BF16 but not
AMX (family 6 model 207, 2026-12-07) multiplied bf16 at 122 GFLOP/s against 260 for fp32, and ``torch-bf16`` ran at
0.74x plain fp32 there. On Zen 4 bf16 multiplies 2.3x as fast as fp32 (442 against 195) and ``torch-bf16`` encodes
1.75x plain fp32, but ``onnx-int8`` encodes 2.0x and a single query in 6.4 against 15.1 ms. Only with AMX (2,456
against 339 GFLOP/s, 7.2x) did ``torch-bf16`` encode more abstracts a second than int8 (3.0x against 2.0x plain fp32;
docs/benchmarks.md). So where the flags allow bf16, ``auto`` times both on the encoder's own matrix shapes and takes
``torch-bf16`` only if bf16 multiplies at least :data:`MIN_BF16_SPEEDUP` times as fast; else ``onnx-int8``.

The backend names the model id every vector is cached and indexed under, so a later measurement taken at a busy
moment must never flip it (that would re-encode every record). The first measurement is kept in the data
directory, with the CPU and torch it was taken on, and reused for as long as they stay the same; and an
installation that already holds vectors keeps their backend whatever this says (embeddings.installed_backend).
"""
from __future__ import annotations

import fcntl
import json
import logging
import os
import tempfile
import time
from functools import lru_cache
from pathlib import Path

log = logging.getLogger(__name__)

# The measured ratios were 7.2x (AMX: bf16 ahead of int8 on abstracts), 2.3x (Zen 4: int8 ahead on every count) and
# 0.47x (AVX-512 BF16 without AMX): far from this line on both sides.
MIN_BF16_SPEEDUP = 4.0
CHOICE_FILE = "auto-backend.json"
# The encoder's shapes (Q/K/V/O and the two FFN layers) at 256 rows: the probe takes well under a second.
_PROBE_ROWS = 256
_PROBE_SHAPES = ((384, 384), (384, 1536), (1536, 384))


def gemm_rates(precisions: tuple[str, ...] = ("fp32", "bf16"), rows: int = _PROBE_ROWS, runs: int = 3,
               reps: int = 10) -> dict[str, float]:
    """GFLOP/s (GOP/s for ``int8``) of torch matrix multiplies on the encoder's shapes, best of ``runs``.

    Runs on torch's current thread count. Precisions are timed in turn within each run, so a busy moment
    slows them alike.
    """
    import torch

    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16, "int8": torch.int8}
    ops = {}
    for label in precisions:
        dtype, ops[label] = dtypes[label], []
        for k, n in _PROBE_SHAPES:
            if dtype is torch.int8:
                x, w = (torch.randint(-128, 127, (rows, k), dtype=dtype), torch.randint(-128, 127, (k, n), dtype=dtype))
                ops[label].append((lambda x=x, w=w: torch._int_mm(x, w), 2.0 * rows * k * n))
            else:
                x, w = torch.randn(rows, k, dtype=dtype), torch.randn(k, n, dtype=dtype)
                ops[label].append((lambda x=x, w=w: x @ w, 2.0 * rows * k * n))
    best = dict.fromkeys(precisions, 0.0)
    for _ in range(runs):
        for label in precisions:
            flops = seconds = 0.0
            for op, op_flops in ops[label]:
                op()  # the first call picks and lays out the kernel
                start = time.perf_counter()
                for _ in range(reps):
                    op()
                seconds += time.perf_counter() - start
                flops += op_flops * reps
            best[label] = max(best[label], flops / seconds / 1e9)
    return best


def choose(bf16_rate: float, fp32_rate: float) -> str:
    """``torch-bf16`` if bf16 multiplies at least :data:`MIN_BF16_SPEEDUP` times as fast as fp32, else ``onnx-int8``."""
    return "torch-bf16" if bf16_rate >= MIN_BF16_SPEEDUP * fp32_rate else "onnx-int8"


def cpu_signature(cpuinfo: str | None = None) -> str:
    """The CPU model and flags, the core count and torch's version: what a stored measurement holds for."""
    import torch

    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(errors="ignore")
        except OSError:
            cpuinfo = ""
    first: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        key = key.strip()
        if sep and key in ("vendor_id", "cpu family", "model", "model name", "flags") and key not in first:
            first[key] = value.strip()
    flags = " ".join(sorted(first.get("flags", "").split()))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return " | ".join([first.get("vendor_id", "?"), first.get("cpu family", "?"), first.get("model", "?"),
                       first.get("model name", "?"), f"{cores} cores", f"torch {torch.__version__}", flags])


@lru_cache(maxsize=None)
def _measured() -> tuple[str, float, float]:
    rates = gemm_rates()
    return choose(rates["bf16"], rates["fp32"]), rates["bf16"], rates["fp32"]


def resolve_auto_bf16(data_dir: Path | str | None) -> str:
    """``torch-bf16`` or ``onnx-int8`` for a CPU whose flags show native bf16, as measured once and kept.

    With ``data_dir``, the answer stored in ``<data_dir>/models/auto-backend.json`` for this CPU and torch is
    reused; otherwise (or if the file is missing, unreadable or for another CPU) the rates are measured, and
    the answer stored. Processes starting together measure once: the others wait under a file lock and read
    its answer. Without ``data_dir`` the measurement is kept for the process only.
    """
    if data_dir is None:
        return _measure()[0]
    path = Path(data_dir) / "models" / CHOICE_FILE
    signature = cpu_signature()
    stored = _stored(path, signature)
    if stored is not None:
        return stored
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = open(path.parent / ".auto-backend.lock", "w")
    except OSError as exc:
        log.warning("could not keep the auto backend choice in %s: %s", path, exc)
        return _measure()[0]
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        stored = _stored(path, signature)
        if stored is not None:
            return stored
        backend, bf16, fp32 = _measure()
        _write(path, {"backend": backend, "bf16_gflops": round(bf16, 1), "fp32_gflops": round(fp32, 1),
                      "min_bf16_speedup": MIN_BF16_SPEEDUP, "measured": time.strftime("%Y-%m-%d %H:%M:%S"),
                      "signature": signature})
        return backend


def _stored(path: Path, signature: str) -> str | None:
    """The backend the rates kept in ``path`` for this ``signature`` call for today, or None.

    The rates decide, not the backend written beside them: a file written when the line stood elsewhere (before
    2026-12-07 it chose between ``torch-bf16`` and ``onnx``) gives today's answer without measuring again.
    """
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
        if stored.get("signature") != signature:
            return None
        bf16, fp32 = stored.get("bf16_gflops"), stored.get("fp32_gflops")
        if isinstance(bf16, (int, float)) and isinstance(fp32, (int, float)) and bf16 > 0 and fp32 > 0:
            return choose(bf16, fp32)
        if stored.get("backend") in ("torch-bf16", "onnx-int8"):
            return stored["backend"]
    except (OSError, ValueError, AttributeError):
        pass
    return None


def _measure() -> tuple[str, float, float]:
    """The backend this process measured (once), with the bf16 and fp32 rates, logged."""
    backend, bf16, fp32 = _measured()
    log.info("auto backend: bf16 %.0f against fp32 %.0f GFLOP/s on this CPU, so %s", bf16, fp32, backend)
    return backend, bf16, fp32


def _write(path: Path, record: dict) -> None:
    """Write ``record`` atomically; a data directory that cannot be written only loses the memory of it."""
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(record, fh, ensure_ascii=False, indent=1)
        os.replace(tmp, path)
    except OSError as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        log.warning("could not keep the auto backend choice in %s: %s", path, exc)
