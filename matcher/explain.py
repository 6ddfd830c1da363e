"""Why a result is where it is, in Chinese a broker reads in ten seconds."""
from __future__ import annotations

import numpy as np

from embeddings.cached_encoder import CachedEncoder

from .documents import document_text, sentences_of
from .models import Need, Outcome
from .scoring import Scored, Weights
from .textutil import document_terms, related_terms, shared_terms, terms

_NEED_FIELDS = {"description": "需求内容", "industry_chain": "产业链", "cooperation_modes": "合作方式",
                "budget": "预算", "keywords": "关键词"}
_OUTCOME_FIELDS = {"abstract": "成果简介", "industry_chain": "产业链", "stage": "成熟度", "cooperation_modes": "合作方式",
                   "price": "报价", "keywords": "关键词", "ip_type": "知识产权"}


def explain_body(record: Need | Outcome) -> str:
    """The text a result's shared and related terms are looked up in: title, body, keywords."""
    body = record.title + "\n" + ((record.description if isinstance(record, Need) else record.abstract) or "")
    return body + "\n" + "、".join(record.keywords or [])


def explain_terms(record: Need | Outcome) -> list[str]:
    """What a record stores as ``explain_terms``: :func:`~matcher.textutil.document_terms` of its explained text."""
    return list(document_terms(explain_body(record)))


def query_terms(need: Need) -> list[str]:
    """What a need stores as ``query_terms``: :func:`~matcher.textutil.terms` of the text its matches ask with."""
    return terms(document_text(need))


def missing_fields(record: Need | Outcome) -> list[str]:
    """Chinese names of the empty fields that matching would use."""
    names = _NEED_FIELDS if isinstance(record, Need) else _OUTCOME_FIELDS
    missing = []
    for key, label in names.items():
        if key == "budget":
            empty = record.budget_min is None and record.budget_max is None and not record.budget_negotiable
        elif key == "price":
            empty = record.price_min is None and record.price_max is None and not record.price_negotiable
        else:
            empty = not getattr(record, key)
        if empty:
            missing.append(label)
    return missing


def best_sentences(encoder: CachedEncoder, query_vec: np.ndarray, record: Need | Outcome,
                   top: int = 2, vectors: np.ndarray | None = None) -> list[dict]:
    """The one or two sentences of ``record`` closest in meaning to the query vector.

    ``vectors``: the sentences' vectors when the caller already holds them (else read from the cache).
    """
    sentences = sentences_of(record)
    vecs = encoder.encode(sentences, "passage") if vectors is None else vectors
    scores = vecs @ np.asarray(query_vec, dtype=np.float32)
    order = np.argsort(-scores)[:top]
    return [{"sentence": sentences[i], "score": round(float(scores[i]), 4)} for i in sorted(order)]


def _summary(terms: list[str], scored: Scored, record_missing: list[str]) -> str:
    parts = []
    if terms:
        parts.append(f"技术方向一致（{'、'.join(terms[:3])}）")
    elif not scored.weak:
        parts.append("语义相近")
    else:
        parts.append("相关性较弱")
    for f in scored.factors:
        if f.value is not None and f.value >= 0.75 and f.name != "track_record":
            parts.append(f.note)
    if scored.confidence < 0.5:
        parts.append(f"信息不全（缺{'、'.join(record_missing[:3]) or '结构化字段'}），置信度低")
    return "，".join(parts)


def explain(encoder: CachedEncoder, query_text: str, query_vec: np.ndarray, record: Need | Outcome,
            scored: Scored, weights: Weights, sentence_vectors: np.ndarray | None = None,
            asked_terms: list[str] | None = None) -> dict:
    """The full explanation of one result: summary, terms, sentences, missing fields, factors.

    ``sentence_vectors``: the record's sentence vectors if the caller holds them (saves a cache read);
    ``asked_terms``: the query text's terms if stored (a need's ``query_terms``), else it is segmented.
    """
    body = explain_body(record)
    stored = record.explain_terms  # None for rows written before terms were stored: segment them now
    terms = shared_terms(query_text, body, doc_terms=stored, query_terms=asked_terms)
    record_missing = missing_fields(record)
    return {
        "summary": _summary(terms, scored, record_missing),
        "shared_terms": terms,
        "related_terms": related_terms(query_text, body, terms, doc_terms=stored, query_terms=asked_terms),
        "best_sentences": best_sentences(encoder, query_vec, record, vectors=sentence_vectors),
        "missing_fields": record_missing,
        "factors": scored.breakdown(weights),
    }
