"""Chinese tokens for the lexical (BM25) channel.

jieba's search mode cuts a text into words and the sub-words of long words;
technical terms learned from the records' keywords go into a private user
dictionary so "锂离子电池" stays one token (and still yields its parts).
Character bigrams of each Chinese run are added as well, so a keyword that is
not written word for word in an abstract (修正Rodrigues参数模型 vs 修正的
Rodrigues参数) still shares most of its tokens with it; the evaluation harness
keeps them because they raise nDCG on both dev sets (docs/quality.md).
"""
from __future__ import annotations

import logging
import re
import unicodedata
from collections import OrderedDict
from collections.abc import Iterable
from threading import Lock

import jieba

from .textutil import STOPWORDS

_CJK_RUN = re.compile(r"[\u4e00-\u9fff]{2,}")
_WORDLIKE = re.compile(r"[\w\u4e00-\u9fff]")
_NUMBER = re.compile(r"[\d.]+")
# User-dictionary frequency: high enough that jieba keeps the term whole.
_TERM_FREQ = 50_000
# Query texts whose tokens are remembered: a stored need's text is asked again each time its page is re-made
# after a write (the page warmer keeps 200). A long need's tokens are ~20 KB, so 512 cost ~10 MB at most.
QUERY_MEMORY = 512


def normalize(text: str) -> str:
    """NFKC (full-width → half-width) and lower case, as both index and query see text."""
    return unicodedata.normalize("NFKC", text or "").lower()


class TermTokenizer:
    """Tokens of a text for BM25: jieba words (with user terms) plus CJK bigrams."""

    def __init__(self, user_terms: Iterable[str] = (), bigrams: bool = True):
        self.bigrams = bigrams
        self._jieba = jieba.Tokenizer()
        self._terms: set[str] = set()
        self._lock = Lock()
        self._queries: OrderedDict[str, tuple[str, ...]] = OrderedDict()
        self.add_terms(user_terms)

    @property
    def signature(self) -> str:
        """What a saved token list depends on: a saved index made with another tokenizer is not reused."""
        return f"jieba-search{'+bigrams' if self.bigrams else ''}/v1"

    def load(self) -> None:
        """Load jieba's dictionary now (about 1.4 s) rather than on the first text tokenised."""
        self._jieba.check_initialized()

    @property
    def loaded(self) -> bool:
        """Whether jieba's dictionary is in memory."""
        return bool(self._jieba.initialized)

    @property
    def terms(self) -> list[str]:
        """The learned user-dictionary terms (saved with the lexical index)."""
        with self._lock:
            return sorted(self._terms)

    def add_terms(self, terms: Iterable[str]) -> int:
        """Teach the tokenizer technical terms (e.g. records' keywords); returns how many were new."""
        new = 0
        with self._lock:
            for term in terms:
                term = normalize(term).strip()
                if 2 <= len(term) <= 20 and term not in self._terms and not _NUMBER.fullmatch(term):
                    self._jieba.add_word(term, freq=_TERM_FREQ)
                    self._terms.add(term)
                    new += 1
            if new:
                self._queries.clear()  # a new term may cut a remembered query differently
        return new

    def query_tokens(self, text: str) -> tuple[str, ...]:
        """:meth:`tokens` of a query text, remembered for the last :data:`QUERY_MEMORY` texts until a new term is learned."""
        with self._lock:
            got = self._queries.get(text)
            if got is not None:
                self._queries.move_to_end(text)
                return got
        got = tuple(self.tokens(text))
        with self._lock:
            self._queries[text] = got
            while len(self._queries) > QUERY_MEMORY:
                self._queries.popitem(last=False)
        return got

    def tokens(self, text: str) -> list[str]:
        """The tokens of ``text`` (with repeats: BM25 counts term frequency)."""
        text = normalize(text)
        out = []
        for tok in self._jieba.cut_for_search(text):
            tok = tok.strip()
            if len(tok) < 2 or tok in STOPWORDS or not _WORDLIKE.search(tok) or _NUMBER.fullmatch(tok):
                continue
            out.append(tok)
        if self.bigrams:
            for run in _CJK_RUN.findall(text):
                out.extend("#" + run[i : i + 2] for i in range(len(run) - 1))
        return out


logging.getLogger("jieba").setLevel(logging.WARNING)
