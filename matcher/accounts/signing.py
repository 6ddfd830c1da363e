"""The key that signs access tokens: MATCHER_SECRET_KEY, else one generated once and kept in the database."""
from __future__ import annotations

import secrets

from sqlalchemy.orm import Session

from ..db import shared_value
from ..settings import Settings

_META_KEY = "token_signing_key"


def signing_key(settings: Settings, session: Session) -> str:
    """The signing key every worker shares.

    Kept in the database rather than the data directory because workers on
    several machines share the database, not a disk. Two workers starting at
    once may both generate one; the primary key lets exactly one win and the
    other reads it back.
    """
    if settings.secret_key is not None and settings.secret_key.get_secret_value():
        return settings.secret_key.get_secret_value()
    return shared_value(session, _META_KEY, lambda: secrets.token_hex(32))
