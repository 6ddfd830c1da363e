"""Everything one process needs, built once: database, encoder, indexes."""
from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from embeddings import bm25_kernels
from embeddings.cached_encoder import CachedEncoder
from embeddings.encoder import Encoder
from embeddings.encoder_service import RemoteEncoder
from embeddings.installed_backend import installed_backend, reads_store
from embeddings.vector_cache import VectorCache

from . import textutil
from .db import instance_id, make_engine, make_sessionmaker, upgrade
from .match_pages import MatchPages
from .search_index import SearchIndexes
from .settings import Settings

log = logging.getLogger(__name__)


@dataclass
class MatcherContext:
    """The service's long-lived parts. Create with :func:`build_context`."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    encoder: CachedEncoder
    indexes: SearchIndexes
    pages: MatchPages

    def warm_up(self) -> None:
        """Load now what the first request would otherwise load: both jieba dictionaries (about 1.4 s each),
        the compiled BM25 kernels and, for a model in this process, what its first searches need.

        An API worker calls this before it serves, so the first broker after a restart does not wait ~3 s.
        """
        self.indexes.tokenizer.load()
        textutil.load_dictionary()
        bm25_kernels.warm_up()
        self.encoder.warm_up()

    def close(self) -> None:
        self.indexes.save()
        self.engine.dispose()


def open_vector_cache(settings: Settings, engine: Engine) -> VectorCache:
    """The vector cache: in the service's database (``engine``), or in ``MATCHER_VECTOR_CACHE_URL`` where set."""
    if settings.vector_cache_url:
        return VectorCache(make_engine(settings.vector_cache_url, settings.sqlite_cache_mb), create=True)
    return VectorCache(engine)


def encoder_backend(settings: Settings, cache: VectorCache) -> str:
    """The backend this installation encodes with: ``MATCHER_EMBEDDING_BACKEND``, where ``auto`` keeps the backend
    of the vectors ``cache`` already holds and only a new installation gets its CPU's fastest."""
    return installed_backend(settings.embedding_backend, settings.embedding_model, settings.data_dir, cache)


def stored_backend(settings: Settings) -> str:
    """:func:`encoder_backend` for a process that has not opened the store (``matcher serve`` before its workers).

    A named backend is checked and returned without opening the store: only ``auto`` reads it.
    """
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if not reads_store(settings.embedding_backend):
        return installed_backend(settings.embedding_backend, settings.embedding_model, settings.data_dir, None)
    engine = make_engine(settings.resolved_database_url(), settings.sqlite_cache_mb)
    cache = open_vector_cache(settings, engine)
    try:
        return encoder_backend(settings, cache)
    finally:
        cache.engine.dispose()
        engine.dispose()


def build_context(settings: Settings, encoder: Encoder | RemoteEncoder | None = None, open_indexes: bool = True,
                  on_progress=None) -> MatcherContext:
    """Migrate the database, load the model and open (or rebuild) the indexes.

    ``encoder`` lets tests share one loaded model between contexts; the
    model is the expensive part.
    """
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.resolved_database_url(), settings.sqlite_cache_mb)
    upgrade(engine)
    sessions = make_sessionmaker(engine)
    with sessions() as session:
        source = instance_id(session)
    cache = open_vector_cache(settings, engine)
    if encoder is None and settings.encoder_address:
        key = settings.encoder_key.get_secret_value() if settings.encoder_key else ""
        encoder = RemoteEncoder(settings.encoder_address, bytes.fromhex(key))
    encoder = encoder or Encoder(settings.embedding_model, settings.data_dir, backend=encoder_backend(settings, cache))
    cached = CachedEncoder(encoder, cache)
    indexes = SearchIndexes(cached, sessions, settings.index_dir, source, settings.sentence_memory_mb * 1024 * 1024)
    if open_indexes:
        how = indexes.open(on_progress=on_progress)
        log.info("indexes %s (needs=%d, outcomes=%d)", how, len(indexes.indexes["needs"]), len(indexes.indexes["outcomes"]))
    pages = MatchPages(settings.match_page_cache_mb * 1024 * 1024, recipes=settings.match_page_warm,
                       changed_at=lambda ref: indexes.marks.changed_at(*ref))
    return MatcherContext(settings, engine, sessions, cached, indexes, pages)
