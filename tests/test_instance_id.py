"""The database's instance id when several workers start on a new database at once (on every backend)."""
from sqlalchemy import event, insert, select

from matcher.db import instance_id, make_engine, make_sessionmaker, upgrade
from matcher.models import ServiceMeta


def test_a_worker_that_loses_the_race_reads_the_winners_id(db_url):
    engine = make_engine(db_url)
    upgrade(engine)
    other = make_engine(db_url)
    raced = []

    @event.listens_for(engine, "after_cursor_execute")
    def another_worker_mints_it_now(conn, cursor, statement, *args):
        # Right after this worker found no id, another one commits its own: the situation CI met.
        if not raced and statement.lstrip().upper().startswith("SELECT") and "service_meta" in statement:
            raced.append(True)
            with other.begin() as c:
                c.execute(insert(ServiceMeta.__table__).values(key="instance_id", value="winner"))

    with make_sessionmaker(engine)() as session:
        assert instance_id(session) == "winner"
    assert raced
    with make_sessionmaker(engine)() as session:
        assert instance_id(session) == "winner"
        assert session.scalars(select(ServiceMeta.value).where(ServiceMeta.key == "instance_id")).all() == ["winner"]
    engine.dispose()
    other.dispose()
