"""What a match page's request runs in FastAPI's thread pool: only what waits on the database or a lock.

Each trip to the pool and back cost 110-230 us on these machines (docs/benchmarks.md, "Fewer thread hops"),
a fifth of a repeated match page; a plain ``def`` dependency added to the path pays it on every request.
"""
from __future__ import annotations

import inspect

import pytest
from api import deps


def _calls(dependant) -> set:
    """Every call in a route's dependency tree, the endpoint included (FastAPI makes each once a request)."""
    found = {dependant.call} - {None}
    for sub in dependant.dependencies:
        found |= _calls(sub)
    return found


def _pooled(dependant) -> list[str]:
    """Names of the calls in a route's dependency tree that FastAPI runs in its thread pool."""
    names = []
    for call in _calls(dependant):
        target = call if inspect.isfunction(call) or inspect.ismethod(call) or inspect.isclass(call) else call.__call__
        if not (inspect.iscoroutinefunction(target) or inspect.isasyncgenfunction(target)):
            names.append(getattr(call, "__name__", type(call).__name__))
    return names


@pytest.mark.parametrize("path", ["/needs/{need_id}/matches", "/outcomes/{outcome_id}/matches"])
def test_match_page_runs_only_database_work_in_the_thread_pool(app, path):
    route = next(r for r in deps.iter_routes(app) if deps.is_api_route(r) and r.path == path)
    pooled = _pooled(route.dependant)
    # The session (with the index catch-up before it), the signed-in user's row, and the page itself.
    assert sorted(pooled) == sorted(["get_session", "current_actor", route.endpoint.__name__]), pooled


def test_every_route_on_a_session_catches_up_first(app):
    """Any route with a session or the synced context applies other workers' writes before it runs."""
    checked = 0
    for route in deps.iter_routes(app):
        if deps.is_api_route(route) and deps.get_ctx in _calls(route.dependant):
            checked += 1
            assert {deps.get_session, deps.synced_ctx} & _calls(route.dependant), route.path
    assert checked > 50  # the routes were found
