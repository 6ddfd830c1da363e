"""What ``auto`` resolves to for a new installation on a CPU with bf16 flags: measured once, kept in the data
directory, never flipped by a later measurement."""
import json

import pytest

from embeddings import backend_choice, onnx_backend
from embeddings.backend_choice import CHOICE_FILE, MIN_BF16_SPEEDUP, choose, cpu_signature, gemm_rates, resolve_auto_bf16
from embeddings.onnx_backend import check_backend

_CPUINFO = ("processor\t: 0\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 207\n"
            "model name\t: Intel(R) Xeon(R) Processor\nflags\t\t: sse2 avx512f avx512_bf16\n"
            "processor\t: 1\nmodel\t\t: 999\n")


def test_bf16_is_taken_only_where_it_multiplies_several_times_faster():
    assert choose(2456, 339) == "torch-bf16"  # AMX: bf16 encoded more abstracts a second than int8
    assert choose(442, 195) == "onnx-int8"  # Zen 4: int8 ahead of bf16 on every count
    assert choose(122, 260) == "onnx-int8"  # AVX-512 BF16 shown, AMX not: bf16 slower than fp32
    assert choose(MIN_BF16_SPEEDUP * 100, 100) == "torch-bf16"
    assert choose(MIN_BF16_SPEEDUP * 100 - 1, 100) == "onnx-int8"


def test_the_probe_times_real_matrix_multiplies():
    rates = gemm_rates(("fp32", "bf16", "int8"), rows=32, runs=1, reps=2)
    assert set(rates) == {"fp32", "bf16", "int8"} and all(r > 0 for r in rates.values())


def test_the_signature_names_the_first_cpu_its_flags_and_torch():
    import torch

    sig = cpu_signature(_CPUINFO)
    assert sig.startswith("GenuineIntel | 6 | 207 | Intel(R) Xeon(R) Processor | ")
    assert f"torch {torch.__version__}" in sig and sig.endswith("avx512_bf16 avx512f sse2") and "999" not in sig
    assert cpu_signature(_CPUINFO.replace("avx512_bf16", "avx512_bf16 amx_bf16", 1)) != sig


@pytest.fixture
def fake_rates(monkeypatch):
    """The measurement under the caller's control, counting its calls (what is tested is what is kept)."""
    state = {"bf16": 2400.0, "fp32": 340.0, "calls": 0}

    def measure(*args, **kwargs):
        state["calls"] += 1
        return {"bf16": state["bf16"], "fp32": state["fp32"]}

    monkeypatch.setattr(backend_choice, "gemm_rates", measure)
    backend_choice._measured.cache_clear()
    yield state
    backend_choice._measured.cache_clear()


def test_the_first_answer_is_kept_and_a_later_measurement_never_flips_it(tmp_path, fake_rates):
    assert resolve_auto_bf16(tmp_path) == "torch-bf16" and fake_rates["calls"] == 1
    stored = json.loads((tmp_path / "models" / CHOICE_FILE).read_text(encoding="utf-8"))
    assert stored["backend"] == "torch-bf16" and stored["signature"] == cpu_signature()
    assert (stored["bf16_gflops"], stored["fp32_gflops"]) == (2400.0, 340.0)
    fake_rates.update(bf16=100.0, fp32=200.0)  # a busy moment would now say onnx-int8
    backend_choice._measured.cache_clear()
    assert resolve_auto_bf16(tmp_path) == "torch-bf16" and fake_rates["calls"] == 1
    assert not list((tmp_path / "models").glob("*.tmp"))


@pytest.mark.parametrize("damage", ["another cpu", "not json", "unknown backend"])
def test_an_answer_for_another_cpu_or_a_damaged_file_is_measured_again(tmp_path, fake_rates, damage):
    path = tmp_path / "models" / CHOICE_FILE
    path.parent.mkdir()
    record = {"backend": "torch-bf16", "signature": cpu_signature()}
    if damage == "another cpu":
        record["signature"] = "AuthenticAMD | 25 | 17 | …"
    if damage == "unknown backend":
        record["backend"] = "tensorrt"
    path.write_text("{" if damage == "not json" else json.dumps(record), encoding="utf-8")
    fake_rates.update(bf16=100.0, fp32=200.0)
    assert resolve_auto_bf16(tmp_path) == "onnx-int8" and fake_rates["calls"] == 1
    assert json.loads(path.read_text(encoding="utf-8"))["backend"] == "onnx-int8"


def test_a_file_kept_under_the_old_line_gives_todays_answer_from_its_rates(tmp_path, fake_rates):
    path = tmp_path / "models" / CHOICE_FILE
    path.parent.mkdir()
    old = {"backend": "torch-bf16", "bf16_gflops": 442.0, "fp32_gflops": 195.0, "min_bf16_speedup": 1.5,
           "signature": cpu_signature()}  # a Zen 4's answer before int8 became the default
    path.write_text(json.dumps(old), encoding="utf-8")
    assert resolve_auto_bf16(tmp_path) == "onnx-int8" and fake_rates["calls"] == 0


def test_a_data_directory_that_cannot_be_written_still_gets_an_answer(tmp_path, fake_rates):
    blocker = tmp_path / "data"
    blocker.write_text("a file where the directory should be", encoding="utf-8")
    assert resolve_auto_bf16(blocker) == "torch-bf16"
    assert resolve_auto_bf16(None) == "torch-bf16" and fake_rates["calls"] == 1  # the process remembers it


def test_a_process_starting_beside_one_that_is_measuring_waits_and_takes_its_answer(tmp_path, fake_rates):
    import fcntl
    import threading

    models = tmp_path / "models"
    models.mkdir()
    answers = []
    with open(models / ".auto-backend.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the other process is measuring
        waiting = threading.Thread(target=lambda: answers.append(resolve_auto_bf16(tmp_path)))
        waiting.start()
        waiting.join(0.5)
        assert waiting.is_alive() and not answers  # it waits rather than measuring too
        (models / CHOICE_FILE).write_text(json.dumps({"backend": "onnx-int8", "signature": cpu_signature()}),
                                          encoding="utf-8")  # the other's answer (this machine's rates say bf16)
    waiting.join(10)
    assert answers == ["onnx-int8"] and fake_rates["calls"] == 0


def test_auto_without_bf16_flags_measures_nothing(tmp_path, monkeypatch, fake_rates):
    monkeypatch.setattr(onnx_backend, "cpu_has_bf16", lambda: False)
    assert check_backend("auto", tmp_path) == "onnx-int8" and fake_rates["calls"] == 0
    assert not (tmp_path / "models").exists()
    monkeypatch.setattr(onnx_backend, "cpu_has_bf16", lambda: True)
    assert check_backend(" AUTO ", tmp_path) == "torch-bf16" and fake_rates["calls"] == 1
    assert check_backend("torch-bf16", tmp_path) == "torch-bf16"  # named explicitly: taken as named
