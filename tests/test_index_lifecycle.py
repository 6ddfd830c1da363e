"""Index files are a cache of the database: missing, corrupt or stale files are rebuilt or caught up."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from matcher import change_log, importer, matching, records
from matcher.context import build_context
from matcher.models import IndexChange, utcnow

from .helpers import NEED_HEADER, NEEDS, OUTCOME_HEADER, OUTCOMES, xlsx


def _load(ctx):
    with ctx.sessions() as s:
        importer.import_file(ctx, s, xlsx([OUTCOME_HEADER, *OUTCOMES]), "o.xlsx", "outcomes")
    with ctx.sessions() as s:
        importer.import_file(ctx, s, xlsx([NEED_HEADER, *NEEDS]), "n.xlsx", "needs")


def _top(ctx, need_id=1):
    with ctx.sessions() as s:
        return [r["outcome"].id for r in matching.match_need(ctx, s, need_id, 3)]


def test_restart_loads_saved_index(ctx, settings, encoder):
    _load(ctx)
    expected = _top(ctx)
    again = build_context(settings, encoder=encoder)
    assert again.indexes.version == ctx.indexes.version
    assert _top(again) == expected
    assert again.encoder.encoded_count == 0


def test_deleted_index_file_is_rebuilt_without_reencoding(ctx, settings, encoder):
    _load(ctx)
    expected = _top(ctx)
    for f in settings.index_dir.iterdir():
        f.unlink()
    again = build_context(settings, encoder=encoder)
    assert len(again.indexes.indexes["outcomes"]) == 3
    assert _top(again) == expected
    assert again.encoder.encoded_count == 0
    assert (settings.index_dir / "outcomes.faissidx").exists()


def test_corrupt_index_file_is_rebuilt(ctx, settings, encoder):
    _load(ctx)
    expected = _top(ctx)
    path = settings.index_dir / "outcomes.faissidx"
    path.write_bytes(path.read_bytes()[:-50])
    again = build_context(settings, encoder=encoder)
    assert _top(again) == expected


def test_stale_index_catches_up_with_other_writers(ctx, settings, encoder):
    """A second worker's index sees the first worker's writes on its next sync."""
    _load(ctx)
    other = build_context(settings, encoder=encoder)
    hm = next(i for i in other.indexes.indexes["outcomes"].ids())
    saved = {f.name: f.read_bytes() for f in settings.index_dir.iterdir()}
    with ctx.sessions() as s:
        records.delete_record(ctx, s, records.get_outcome(s, int(hm)))
    assert int(hm) in other.indexes.indexes["outcomes"].ids().tolist()
    assert other.indexes.sync() == 1
    assert int(hm) not in other.indexes.indexes["outcomes"].ids().tolist()
    # A worker restarting from files saved before the delete catches up too.
    for name, raw in saved.items():
        (settings.index_dir / name).write_bytes(raw)
    third = build_context(settings, encoder=encoder)
    assert int(hm) not in third.indexes.indexes["outcomes"].ids().tolist()


def test_sync_through_the_requests_session_reads_the_log_there(ctx, settings, encoder):
    """As a request's session dependency calls it: the change is applied, through that session, and kept open."""
    _load(ctx)
    other = build_context(settings, encoder=encoder)
    gone = int(next(i for i in other.indexes.indexes["outcomes"].ids()))
    with ctx.sessions() as s:
        records.delete_record(ctx, s, records.get_outcome(s, gone))
    statements = []
    with other.sessions() as session:
        from sqlalchemy import event
        conn = session.connection()
        event.listen(conn, "before_cursor_execute", lambda *a: statements.append(a[2]))
        assert other.indexes.sync(session) == 1
        assert any("index_changes" in sql for sql in statements)  # the log was read on the request's connection
        assert session.is_active and session.in_transaction()  # left to the caller, which goes on using it
        assert other.indexes.sync(session) == 0
    assert gone not in other.indexes.indexes["outcomes"].ids().tolist()


def test_files_lag_writes_but_close_saves_the_current_version(ctx, settings, encoder):
    from embeddings.index import VectorIndex

    _load(ctx)
    expect = ctx.indexes._meta()
    _, on_disk = VectorIndex.load(settings.index_dir / "outcomes.faissidx", expect)
    assert on_disk.version < ctx.indexes.version  # writes did not rewrite the files
    ctx.close()
    _, on_disk = VectorIndex.load(settings.index_dir / "outcomes.faissidx", expect)
    assert on_disk.version == ctx.indexes.version and on_disk.count == 3


def test_lexical_index_is_saved_and_loaded_not_retokenised(ctx, settings, encoder, caplog, monkeypatch):
    _load(ctx)
    ctx.indexes.save()
    assert (settings.index_dir / "outcomes.lexical.npz").exists()
    calls = []
    from matcher.tokens import TermTokenizer

    original = TermTokenizer.tokens
    monkeypatch.setattr(TermTokenizer, "tokens", lambda self, text: calls.append(text) or original(self, text))
    again = build_context(settings, encoder=encoder)
    assert calls == []  # nothing re-tokenised at start-up
    hits = again.indexes.lexical["outcomes"].search(again.indexes.tokenizer.tokens("海马苗种成活率"), 3)
    assert hits and hits[0][0] == _top(again)[0]
    # A stale or missing lexical file is rebuilt from the database.
    (settings.index_dir / "outcomes.lexical.npz").unlink()
    third = build_context(settings, encoder=encoder)
    assert len(third.indexes.lexical["outcomes"]) == 3
    # Built, loaded or rebuilt, a serving index merges off the request's thread (tests/test_lexical_segments.py).
    assert all(c.indexes.lexical[side].background_merge for c in (ctx, again, third) for side in c.indexes.lexical)


def test_pruning_the_change_log_keeps_the_newest_change_and_records_how_far_it_went(ctx):
    _load(ctx)
    with ctx.sessions() as s:
        logged = s.scalar(select(func.count()).select_from(IndexChange))
        assert change_log.prune(s, utcnow() - timedelta(days=1)) == 0  # nothing is a day old
        assert change_log.pruned_through(s) == 0
        assert change_log.prune(s, utcnow() + timedelta(seconds=5)) == logged - 1
        left = s.scalars(select(IndexChange.seq)).all()
        assert left == [ctx.indexes.version]  # the newest stays: its number is the database's version
        assert 0 < change_log.pruned_through(s) < ctx.indexes.version
        assert change_log.prune(s, utcnow() + timedelta(seconds=5)) == 0


def test_a_worker_behind_a_pruned_change_log_rebuilds_instead_of_missing_changes(ctx, settings, encoder):
    _load(ctx)
    other = build_context(settings, encoder=encoder)
    saved = {f.name: f.read_bytes() for f in settings.index_dir.iterdir()}
    gone = [int(i) for i in other.indexes.indexes["outcomes"].ids()][:2]
    with ctx.sessions() as s:
        for outcome_id in gone:  # two changes; pruning leaves only the second
            records.delete_record(ctx, s, records.get_outcome(s, outcome_id))
    with ctx.sessions() as s:
        change_log.prune(s, utcnow() + timedelta(seconds=5))
    other.indexes.sync()
    assert not set(gone) & set(other.indexes.indexes["outcomes"].ids().tolist())
    assert other.indexes.version == ctx.indexes.version
    # A worker starting from files saved before the prune rebuilds too.
    for name, raw in saved.items():
        (settings.index_dir / name).write_bytes(raw)
    third = build_context(settings, encoder=encoder)
    assert not set(gone) & set(third.indexes.indexes["outcomes"].ids().tolist())
    assert len(third.indexes.indexes["outcomes"]) == len(third.indexes.lexical["outcomes"]) == 1
    assert other.indexes.lexical["outcomes"].background_merge  # rebuilt after the prune, still serving
