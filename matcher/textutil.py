"""Chinese text helpers: what to embed, sentences, and technical terms."""
from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from functools import lru_cache

import jieba

jieba.setLogLevel(logging.WARNING)

_SENTENCE_END = re.compile(r"(?<=[。！？!?；;])|\n+")
_MIN_SENTENCE = 6
_MAX_SENTENCE = 160

# Words that carry no technical meaning in needs and abstracts.
STOPWORDS = frozenset(
    """的 了 和 与 及 或 等 在 对 为 以 是 有 将 把 被 从 到 由 于 中 上 下 其 该 此 这 那 并 且 而 也 又
    一种 一个 一些 进行 通过 采用 利用 使用 基于 实现 提高 提升 研究 研发 开发 技术 方法 系统 应用 需要 需求
    问题 解决 能够 可以 具有 主要 目前 现有 相关 方面 领域 以及 及其 我们 本公司 公司 企业 项目 产品 要求 希望
    合作 成果 团队 国内 国外 性能 效果 情况 过程 工作 能力 达到 满足 包括 结合 形成 实现 方案 工艺 关键 核心 新型 高效 一定 不断 重要""".split()
)


def embed_text(title: str, body: str | None, keywords: list[str] | None = None) -> str:
    """The one text a need or outcome is embedded as: title, body, keywords."""
    parts = [title.strip()] if title and title.strip() else []
    if body and body.strip() and body.strip() != (title or "").strip():
        parts.append(body.strip())
    if keywords:
        parts.append("关键词：" + "、".join(keywords))
    return "\n".join(parts)


def split_sentences(text: str) -> list[str]:
    """Split a text into sentences for sentence-level scoring and quoting.

    Fragments too short to mean anything are merged into their neighbour;
    over-long run-on sentences are cut at commas so one clause can be quoted.
    """
    raw = [s.strip() for s in _SENTENCE_END.split(text or "") if s and s.strip()]
    out: list[str] = []
    for s in raw:
        if len(s) > _MAX_SENTENCE:
            pieces, buf = re.split(r"(?<=[，,])", s), ""
            for p in pieces:
                if len(buf) + len(p) > _MAX_SENTENCE and buf:
                    out.append(buf)
                    buf = ""
                buf += p
            if buf:
                out.append(buf)
        elif out and len(s) < _MIN_SENTENCE:
            out[-1] += s
        else:
            out.append(s)
    return out


def load_dictionary() -> None:
    """Load the dictionary explanations segment with (jieba's default, about 1.4 s) now, not on first use."""
    jieba.dt.check_initialized()


@lru_cache(maxsize=20000)
def _cut(text: str) -> tuple[str, ...]:
    return tuple(jieba.cut_for_search(text))


def terms(text: str) -> list[str]:
    """Meaningful words of ``text`` in order of first appearance (no stopwords, no single characters)."""
    return list(_terms(text or ""))


@lru_cache(maxsize=20000)  # explanations ask for the same query's and popular documents' terms again and again
def _terms(text: str) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for tok in _cut(text):
        tok = tok.strip().lower()
        if len(tok) < 2 or tok in STOPWORDS or not re.search(r"[\w\u4e00-\u9fff]", tok):
            continue
        if re.fullmatch(r"[\d.]+", tok):
            continue
        seen.setdefault(tok, None)
    return tuple(seen)


def shared_terms(query: str, document: str, limit: int = 8, doc_terms: Sequence[str] | None = None,
                 query_terms: Sequence[str] | None = None) -> list[str]:
    """Terms of ``query`` that also occur in ``document``, longest first.

    A shorter term contained in a longer shared term is dropped, so the list
    reads "锂离子电池" rather than "锂离子电池、电池、离子". ``doc_terms``: the
    document's :func:`document_terms` when the caller has them stored (saves segmenting it);
    ``query_terms``: :func:`terms` of ``query`` when the caller has them stored (a stored need's).
    """
    doc_terms = set(terms(document) if doc_terms is None else doc_terms)
    doc_text = (document or "").lower()
    asked = terms(query) if query_terms is None else query_terms
    common = [t for t in asked if t in doc_terms or (len(t) >= 3 and t in doc_text)]
    common.sort(key=len, reverse=True)
    kept: list[str] = []
    for t in common:
        if not any(t in k for k in kept):
            kept.append(t)
    return kept[:limit]


def _is_subsequence(short: str, long: str) -> bool:
    it = iter(long)
    return all(ch in it for ch in short)


def document_terms(document: str) -> tuple[str, ...]:
    """A document's terms and adjacent-word compounds, shortest first (stable): what explanations compare with.

    Records keep this list (``explain_terms``), computed once per write, so a
    match never segments its results' texts again.
    """
    words = [w for w in jieba.cut(document.lower()) if w.strip()]
    # jieba cuts 锂离子电池 into 锂离子 + 电池: adjacent word pairs restore such compounds.
    phrases = [a + b for a, b in zip(words, words[1:]) if re.fullmatch(r"[\u4e00-\u9fff]{2,8}", a + b)]
    return tuple(sorted(dict.fromkeys(terms(document) + phrases), key=len))


@lru_cache(maxsize=20000)  # a record written before terms were stored is segmented once, not per page
def _unstored_terms(document: str) -> tuple[str, ...]:
    return document_terms(document)


@lru_cache(maxsize=4096)  # one query's terms are looked up against each of its results
def _heads(asked: tuple[str, ...]) -> frozenset[str]:
    """The last characters of a query's terms ``asked``: the only heads a related document term can have."""
    return frozenset(t[-1] for t in asked)


def _groups(doc_terms: Sequence[str], heads: frozenset[str]) -> dict[str, list[str]]:
    """The document terms ending in one of ``heads``, grouped by that character, each group in the given order."""
    groups: dict[str, list[str]] = {}
    for t in doc_terms:
        if t[-1] in heads:
            groups.setdefault(t[-1], []).append(t)
    return groups


def related_terms(query: str, document: str, shared: list[str], limit: int = 5,
                  doc_terms: Sequence[str] | None = None, query_terms: Sequence[str] | None = None) -> list[str]:
    """Query terms the document words differently, as "query term≈document term".

    A term is related when it is the other's abbreviation: all its characters
    occur in order in the other term and both keep the same last character
    (the head noun in Chinese): 锂电池≈锂离子电池, 热泵≈空气源热泵. Terms
    already shared are skipped; each document term is used once. ``doc_terms``:
    the document's stored :func:`document_terms`, if any; ``query_terms``: :func:`terms` of ``query``, if stored.
    """
    asked = _terms(query or "") if query_terms is None else tuple(query_terms)
    heads = _heads(asked)
    # Only document terms ending as some query term does can match, so only those are grouped (shortest
    # first, as stored); a query term without such a group is skipped before any substring test.
    by_head = _groups(_unstored_terms(document or "") if doc_terms is None else doc_terms, heads)
    if not by_head:
        return []
    doc_text = (document or "").lower()
    out: list[str] = []
    used: set[str] = set()
    for q in asked:
        group = by_head.get(q[-1])
        if group is None or q in doc_text or any(q in s for s in shared):
            continue
        for d in group:
            if d in used or d == q or d in shared:
                continue
            short, long = (q, d) if len(q) < len(d) else (d, q)
            if len(short) >= 2 and len(long) - len(short) <= 4 and _is_subsequence(short, long):
                out.append(f"{q}≈{d}")
                used.add(d)
                break
        if len(out) >= limit:
            break
    return out
