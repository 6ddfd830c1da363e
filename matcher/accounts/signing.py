"""The key that signs access tokens: MATCHER_SECRET_KEY, else one generated once and kept in the database."""
from __future__ import annotations

import secrets

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..models import ServiceMeta
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
    row = session.scalar(select(ServiceMeta).where(ServiceMeta.key == _META_KEY))
    if row is not None:
        return row.value
    session.add(ServiceMeta(key=_META_KEY, value=secrets.token_hex(32)))
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
    return session.scalar(select(ServiceMeta.value).where(ServiceMeta.key == _META_KEY))
