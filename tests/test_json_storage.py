"""JSON columns store Chinese as UTF-8, not as \\uXXXX escapes, on every backend."""
from __future__ import annotations

from sqlalchemy import String, cast, select

from matcher.db import make_engine, make_sessionmaker, upgrade
from matcher.models import Region


def test_json_columns_hold_chinese_as_utf8_and_read_back_the_same(db_url):
    engine = make_engine(db_url)
    upgrade(engine)
    aliases = ["文登", "文登市", "Wendeng"]
    with make_sessionmaker(engine)() as session:
        session.add(Region(name="文登区·JSON", aliases=aliases))
        session.commit()
        stored = session.scalar(select(cast(Region.aliases, String)).where(Region.name == "文登区·JSON"))
        assert "文登市" in stored and "\\u" not in stored
        assert len(stored.encode()) < len('["\\u6587\\u767b", "\\u6587\\u767b\\u5e02", "Wendeng"]')
        session.expire_all()
        assert session.scalar(select(Region.aliases).where(Region.name == "文登区·JSON")) == aliases
    engine.dispose()
