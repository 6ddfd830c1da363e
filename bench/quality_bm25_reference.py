"""The BM25 the targets are measured against, and how our lexical channel's tokens compare with it.

    .venv/bin/python bench/quality_bm25_reference.py [DATASET_DIR ...]
    .venv/bin/python bench/quality_bm25_reference.py --fusion [DATASET_DIR ...]

`../shared/eval/README.md` quotes BM25 as "jieba, k1=1.5, b=0.75" (nDCG@10 0.452 on
all 432 csl_kw_hard queries). This script computes that reference on the dev split
with ``bm25s`` (Lucene BM25, the library the lexical index is checked against)
over plain ``jieba.lcut`` words, and beside it the same BM25 over the tokens of
:class:`matcher.tokens.TermTokenizer` and of a few variants of it, each alone
(no dense channel). Nothing is tuned here; it says which number "BM25" is.

``--fusion`` also asks whether another lexical channel would make a better
hybrid: for each token variant, the pool (dense top 50 ∪ lexical top 50) is
fused as the service fuses it, ``dense + w × σ(dense) × z(bm25)`` (no sentence
lift, no factors), at several weights ``w``, and words and bigrams as two
separately weighted channels; dense vectors come from the evaluation cache.
"""
from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import bm25s
import jieba
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.paths import EVAL as SHARED  # noqa: E402
from matcher.evaluation.dataset import EvalSet, load_eval_set  # noqa: E402
from matcher.evaluation.metrics import ndcg_at  # noqa: E402
from matcher.evaluation.runner import EvalRun  # noqa: E402
from matcher.settings import get_settings  # noqa: E402
from matcher.tokens import _CJK_RUN, _NUMBER, _WORDLIKE, TermTokenizer, normalize  # noqa: E402
from matcher.textutil import STOPWORDS  # noqa: E402

Tokenize = Callable[[str], list[str]]
_JIEBA = jieba.Tokenizer()


def plain_jieba(text: str) -> list[str]:
    """jieba's default (accurate) mode, every non-blank token: the README's reference."""
    return [w for w in _JIEBA.lcut(text) if w.strip()]


def variant(search_mode: bool, drop_short: bool, drop_stopwords: bool, bigrams: bool) -> Tokenize:
    """Our tokenizer's steps switched on or off one by one (NFKC and lower case always)."""
    def tokenize(text: str) -> list[str]:
        text = normalize(text)
        cut = _JIEBA.cut_for_search(text) if search_mode else _JIEBA.cut(text)
        out = [t for t in (w.strip() for w in cut)
               if _WORDLIKE.search(t) and not (drop_short and (len(t) < 2 or _NUMBER.fullmatch(t)))
               and not (drop_stopwords and t in STOPWORDS)]
        if bigrams:
            out += ["#" + run[i:i + 2] for run in _CJK_RUN.findall(text) for i in range(len(run) - 1)]
        return out
    return tokenize


def bm25_scorer(eval_set: EvalSet, tokenize: Tokenize, dedup_query: bool = True) -> Callable[[str], np.ndarray]:
    """BM25 (k1 1.5, b 0.75) of every corpus document, in corpus order, for a query text."""
    vocab: dict[str, int] = {}
    docs = [[vocab.setdefault(t, len(vocab)) for t in tokenize(f"{d.title}{d.text}")] for d in eval_set.corpus]
    bm25 = bm25s.BM25(k1=1.5, b=0.75)
    bm25.index(bm25s.tokenization.Tokenized(ids=docs, vocab=vocab), show_progress=False)

    def scores(text: str) -> np.ndarray:
        terms = [vocab[t] for t in tokenize(text) if t in vocab]
        if dedup_query:
            terms = list(dict.fromkeys(terms))
        return bm25.get_scores(terms) if terms else np.zeros(len(eval_set.corpus))
    return scores


def ndcg_of_scores(eval_set: EvalSet, query_id: str, scores: np.ndarray, among: np.ndarray | None = None) -> float:
    """nDCG@10 of the corpus ranked by ``scores`` (zero scores never rank), or of the positions ``among``
    ranked by their ``scores`` (aligned with ``among``)."""
    positions = np.arange(len(eval_set.corpus)) if among is None else among
    order = np.argsort(-scores, kind="stable")[:10]
    ranked = [eval_set.corpus[positions[n]].id for n in order if among is not None or scores[n] > 0]
    return ndcg_at(ranked, eval_set.qrels[query_id], 10)


def ndcg_at_10(directory: Path, tokenize: Tokenize, dedup_query: bool) -> float:
    """Mean nDCG@10 of BM25 over the dev queries with these tokens."""
    eval_set = load_eval_set(directory, "dev")
    scorer = bm25_scorer(eval_set, tokenize, dedup_query)
    return float(np.mean([ndcg_of_scores(eval_set, q.id, scorer(q.text)) for q in eval_set.queries]))


def _z(values: np.ndarray) -> np.ndarray:
    std = float(values.std())
    return (values - values.mean()) / std if std > 1e-9 else np.zeros_like(values)


def _top(values: np.ndarray, k: int = 50) -> np.ndarray:
    cand = np.argpartition(-values, k)[:k]
    return cand[values[cand] > 0]


def fusion(directory: Path) -> None:
    """nDCG@10 of hybrids whose lexical channel is each token variant, at several weights."""
    eval_set = load_eval_set(directory, "dev")
    with EvalRun(eval_set, get_settings()) as run:
        index = run.ctx.indexes.indexes["outcomes"]
        position = {d.id: n for n, d in enumerate(eval_set.corpus)}
        ids = index.ids()
        vectors = np.zeros((len(eval_set.corpus), index.vectors(ids[:1])[0].shape[1]), np.float32)
        vectors[[position[run.external[int(i)]] for i in ids]] = index.vectors(ids)[0]
        queries = run.ctx.encoder.encode([q.text for q in eval_set.queries], "query")
    channels = {label: bm25_scorer(eval_set, tokenize) for label, tokenize, _ in ROWS[2:]}
    words, bigrams = bm25_scorer(eval_set, variant(False, False, False, False)), bm25_scorer(eval_set, _bigrams_only)
    rows: dict[str, list[float]] = {}
    for q, qv in zip(eval_set.queries, queries):
        dense = vectors @ qv
        for label, scorer in channels.items():
            lexical = scorer(q.text)
            pool = np.union1d(np.argpartition(-dense, 50)[:50], _top(lexical))
            d, z = dense[pool], _z(lexical[pool])
            for w in (0.25, 0.35, 0.5, 0.7):
                rows.setdefault(f"{label}, weight {w}", []).append(
                    ndcg_of_scores(eval_set, q.id, d + w * float(d.std()) * z, pool))
        lw, lb = words(q.text), bigrams(q.text)
        pool = np.union1d(np.union1d(np.argpartition(-dense, 50)[:50], _top(lw)), _top(lb))
        d, zw, zb = dense[pool], _z(lw[pool]), _z(lb[pool])
        for a in (0.15, 0.25, 0.35, 0.5):
            for b in (0.15, 0.25, 0.35, 0.5):
                rows.setdefault(f"two channels: every word {a}, bigrams {b}", []).append(
                    ndcg_of_scores(eval_set, q.id, d + float(d.std()) * (a * zw + b * zb), pool))
    print(f"\n| hybrid on {eval_set.name} (dev) | nDCG@10 |\n| --- | --- |")
    for label, values in rows.items():
        print(f"| {label} | {np.mean(values):.4f} |", flush=True)


def _bigrams_only(text: str) -> list[str]:
    return ["#" + run[i:i + 2] for run in _CJK_RUN.findall(normalize(text)) for i in range(len(run) - 1)]


ROWS: list[tuple[str, Tokenize, bool]] = [
    ("plain jieba (README's BM25), each query word once", plain_jieba, True),
    ("plain jieba, repeated query words counted", plain_jieba, False),
    ("our channel: search mode, ≥2 chars, stopwords out, + bigrams", TermTokenizer().tokens, True),
    ("search mode, ≥2 chars, stopwords out", variant(True, True, True, False), True),
    ("accurate mode, ≥2 chars, stopwords out", variant(False, True, True, False), True),
    ("accurate mode, every word", variant(False, False, False, False), True),
    ("accurate mode, every word, + bigrams", variant(False, False, False, True), True),
]


def main(dirs: list[Path]) -> None:
    print("| tokens | " + " | ".join(d.name for d in dirs) + " |")
    print("| --- |" + " --- |" * len(dirs))
    for label, tokenize, dedup in ROWS:
        cells = [f"{ndcg_at_10(d, tokenize, dedup):.3f}" for d in dirs]
        print(f"| {label} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    jieba.setLogLevel(60)
    flags = [a for a in sys.argv[1:] if a.startswith("--")]
    args = [Path(a) for a in sys.argv[1:] if not a.startswith("--")] or [SHARED / "csl_kw_hard", SHARED / "csl_goal"]
    if "--fusion" in flags:
        for directory in args:
            fusion(directory)
    else:
        main(args)
