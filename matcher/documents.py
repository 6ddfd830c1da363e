"""How a need or an outcome becomes text for the encoder and the indexes.

A need is the question and an outcome the answer, so needs are encoded as
queries and outcomes as passages. One vector per record serves both directions:
q(need)·p(outcome) is the same number whichever side asks.
"""
from __future__ import annotations

from .models import Need, Outcome
from .textutil import embed_text, split_sentences

SIDES = ("needs", "outcomes")
TEXT_KIND = {"needs": "query", "outcomes": "passage"}
MODEL_OF = {"needs": Need, "outcomes": Outcome}


def side_of(record: Need | Outcome) -> str:
    return "needs" if isinstance(record, Need) else "outcomes"


def body_of(record: Need | Outcome) -> str:
    """The free-text body: a need's description or an outcome's abstract."""
    return record.description if isinstance(record, Need) else record.abstract


def document_text(record: Need | Outcome) -> str:
    """The text the record is embedded and indexed as."""
    return embed_text(record.title, body_of(record), list(record.keywords or []))


def sentences_of(record: Need | Outcome) -> list[str]:
    """The record's sentences (title first), for sentence-level scoring and quotes."""
    body = body_of(record) or ""
    sentences = split_sentences(body)
    return sentences or [record.title]


def is_indexed(record: Need | Outcome) -> bool:
    """Whether the record belongs in the search index (live and matchable)."""
    if record.deleted_at is not None:
        return False
    if isinstance(record, Need):
        return record.status != "closed"
    return record.status != "withdrawn"
