"""One encoder process per machine, shared by every API worker on it.

A loaded model is most of a worker's memory (at 100k outcomes: torch and
sentence-transformers ≈ 0.33 GB, the XLM-R tokenizer ≈ 0.29 GB, the weights ≈
0.22 GB, against ≈ 0.5 GB for the indexes). With ``matcher serve --workers N``
the model is loaded once, in a process of its own, and the workers send it the
texts their vector cache does not hold, over a local socket
(:mod:`multiprocessing.connection`, authenticated with a random key).

With torch the process runs up to one search per core at once, each on one
thread, and merges the ones that wait for a core; a big batch runs alone on every
core, since concurrent batches would only fight over them (:mod:`embeddings.encode_queue`).
With ONNX, searches from several workers run side by side, a core each, and a
big call takes every core (:mod:`embeddings.core_slots`). Long jobs (an import)
are sent in chunks, so a search waits at most one chunk.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Sequence
from multiprocessing import AuthenticationError
from multiprocessing.connection import Client, Connection, Listener
from pathlib import Path

import numpy as np

from .encoder import ProgressCallback

log = logging.getLogger(__name__)
# Texts per round trip: small enough that another worker's query waits at most ~1–3 s behind an import.
CHUNK = 32


class EncoderUnavailable(RuntimeError):
    """The shared encoder process cannot be reached (starting, restarting or gone)."""


class EncodingFailed(RuntimeError):
    """The shared encoder process was reached but failed on the texts: a server fault, and retrying the same
    texts will not help. Its own log holds the traceback; the message carries the exception's text."""


def serve(address: str, authkey: bytes, spec: str, data_dir: str, backend: str, ready=None) -> None:
    """Load the model, then answer ``("info",)`` and ``("encode", texts, kind)`` until killed.

    ``ready`` (the sending end of a pipe) is told once the socket accepts connections.
    """
    from .encoder import Encoder

    logging.basicConfig(level=logging.INFO, format="%(levelname)s encoder: %(message)s")
    encoder = Encoder(spec, Path(data_dir), backend=backend)
    encoder.warm_up()  # before "ready": no worker's search waits for it
    # The encoder itself shares the cores out between the workers' calls: ONNX through CoreSlots, torch through its
    # EncodeQueue (small passes a core each, merging the ones that wait; a big batch alone).
    encode = encoder.encode
    info = {"dim": encoder.dim, "model_id": encoder.model_id, "pid": os.getpid()}
    if os.path.exists(address):
        os.unlink(address)
    listener = Listener(address, family="AF_UNIX", authkey=authkey)
    log.info("shared encoder %s ready on %s (pid %d)", encoder.model_id, address, os.getpid())
    if ready is not None:
        ready.send("ready")
        ready.close()

    def answer(conn: Connection) -> None:
        with conn:
            while True:
                try:
                    request = conn.recv()
                except (EOFError, OSError):
                    return
                try:
                    if request[0] == "info":
                        conn.send(("ok", {**info, "merged_calls": encoder.merged_calls,
                                           "small_calls_all_cores": encoder.small_calls_all_cores,
                                           "small_calls_side_by_side": encoder.small_calls_side_by_side}))
                    elif request[0] == "encode":
                        vecs = encode(request[1], request[2])
                        conn.send(("ok", vecs))
                    else:
                        conn.send(("error", f"unknown request {request[0]!r}"))
                except (EOFError, OSError, BrokenPipeError):
                    return
                except Exception as exc:  # answered, not fatal: the next request may be fine
                    log.exception("encoding failed")
                    conn.send(("error", f"{type(exc).__name__}: {exc}"))

    while True:
        try:
            conn = listener.accept()
        except Exception:  # a client that failed authentication: keep serving the others
            log.warning("refused a connection", exc_info=True)
            continue
        threading.Thread(target=answer, args=(conn,), daemon=True).start()


class RemoteEncoder:
    """The :class:`~embeddings.encoder.Encoder` surface (``encode``, ``dim``, ``model_id``) over the socket.

    Each thread keeps its own connection; a broken one is dropped and the next
    call reconnects, so a restarted encoder process is picked up by itself.
    """

    def __init__(self, address: str, authkey: bytes, connect_timeout_s: float = 120.0):
        self.address, self._authkey = address, authkey
        self._local = threading.local()
        deadline = time.monotonic() + connect_timeout_s
        while True:
            try:
                info = self._call(("info",))
                break
            except EncoderUnavailable:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)  # the process is still loading the model
        self.dim, self.model_id, self.server_pid = info["dim"], info["model_id"], info["pid"]

    def server_info(self) -> dict:
        """What the shared process reports of itself: ``dim``, ``model_id``, ``pid``, ``merged_calls``
        (calls answered by another call's forward pass since it started, torch), ``small_calls_all_cores``
        (small calls that found the machine otherwise idle and ran on every core) and
        ``small_calls_side_by_side`` (small calls, or with torch small passes, that ran beside another on a core of
        their own)."""
        return self._call(("info",))

    def _connection(self) -> Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = Client(self.address, family="AF_UNIX", authkey=self._authkey)
            except (OSError, EOFError, AuthenticationError) as exc:
                raise EncoderUnavailable(f"共享编码进程不可用（{exc}）") from exc
            self._local.conn = conn
        return conn

    def _call(self, request: tuple):
        conn = self._connection()
        try:
            conn.send(request)
            status, payload = conn.recv()
        except (OSError, EOFError) as exc:
            self._local.conn = None
            conn.close()
            raise EncoderUnavailable(f"共享编码进程连接中断（{exc}）") from exc
        if status != "ok":
            raise EncodingFailed(f"共享编码进程编码失败：{payload}")
        return payload

    def encode(self, texts: Sequence[str], kind: str, *, batch_size: int | None = None,
               on_progress: ProgressCallback | None = None) -> np.ndarray:
        """Vectors of ``texts`` as the shared process's encoder computes them (rows L2-normalised)."""
        texts = list(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        # Longest first across the whole call, as the local encoder batches: chunks pad to similar lengths.
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        for start in range(0, len(order), CHUNK):
            rows = order[start : start + CHUNK]
            out[rows] = self._call(("encode", [texts[i] for i in rows], kind))
            if on_progress:
                on_progress(min(start + CHUNK, len(texts)), len(texts))
        return out


class SharedEncoderProcess:
    """Starts :func:`serve` in a child process, restarts it if it dies, stops it on :meth:`stop`.

    ``env()`` gives the variables that point workers at it (``MATCHER_ENCODER_ADDRESS``/``_KEY``).
    """

    def __init__(self, spec: str, data_dir: Path, backend: str, address: str | None = None):
        import multiprocessing as mp
        import secrets
        import tempfile

        self._mp = mp.get_context("spawn")
        self.spec, self.data_dir, self.backend = spec, str(data_dir), backend
        self.address = address or os.path.join(tempfile.mkdtemp(prefix="matcher-encoder-"), "encoder.sock")
        self.authkey = secrets.token_bytes(32)
        self.process = None
        self.restarts = 0
        self._stopping = threading.Event()
        self._watchdog: threading.Thread | None = None

    def _spawn(self, timeout_s: float) -> None:
        # A pipe, not an Event: an Event's semaphore outlives the child and the resource tracker warns at exit.
        receiver, sender = self._mp.Pipe(duplex=False)
        self.process = self._mp.Process(target=serve, name="matcher-encoder", daemon=True,
                                        args=(self.address, self.authkey, self.spec, self.data_dir, self.backend, sender))
        self.process.start()
        sender.close()
        try:
            ok = receiver.poll(timeout_s) and receiver.recv() == "ready"
        except EOFError:  # the child died before it was ready
            ok = False
        receiver.close()
        if not ok:
            alive = self.process.is_alive()
            self.process.kill()
            raise EncoderUnavailable(f"共享编码进程未能在 {timeout_s:.0f} 秒内就绪" + ("" if alive else "（已退出）"))

    def start(self, timeout_s: float = 300.0) -> "SharedEncoderProcess":
        """Start the process and return once its socket accepts connections."""
        self._spawn(timeout_s)
        self._watchdog = threading.Thread(target=self._watch, name="encoder-watchdog", daemon=True)
        self._watchdog.start()
        return self

    def _watch(self) -> None:
        while not self._stopping.wait(1.0):
            if self.process is not None and not self.process.is_alive() and not self._stopping.is_set():
                log.warning("shared encoder exited (code %s): restarting", self.process.exitcode)
                try:
                    self._spawn(300.0)
                    self.restarts += 1
                except EncoderUnavailable:
                    log.exception("shared encoder did not come back; retrying")

    def env(self) -> dict[str, str]:
        """Environment for workers: where the encoder listens and the key to talk to it."""
        return {"MATCHER_ENCODER_ADDRESS": self.address, "MATCHER_ENCODER_KEY": self.authkey.hex()}

    def stop(self) -> None:
        """Stop the watchdog and the process, and remove the socket."""
        self._stopping.set()
        if self.process is not None and self.process.is_alive():
            self.process.terminate()
            self.process.join(10)
            if self.process.is_alive():
                self.process.kill()
        try:
            os.unlink(self.address)
            os.rmdir(os.path.dirname(self.address))
        except OSError:
            pass
