"""Connections served through ``matcher serve`` send each write at once (no Nagle delay)."""
from __future__ import annotations

import asyncio
import socket

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from api.http_protocol import NoDelayH11Protocol, NoDelayHttpToolsProtocol


async def _app(scope, receive, send):  # pragma: no cover - never called: only connections are made
    raise AssertionError("no request is sent")


def _nodelay_on_accept(protocol_class) -> int:
    """TCP_NODELAY of the server side of one connection, on a socket bound the way ``--workers N`` binds it."""
    seen: list[int] = []

    class Recording(protocol_class):
        def connection_made(self, transport):
            super().connection_made(transport)
            sock = transport.get_extra_info("socket")
            seen.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

    async def main() -> None:
        config = uvicorn.Config(app=_app, http=Recording, log_level="warning")
        config.load()
        state = ServerState()
        listener = socket.socket(family=socket.AF_INET)  # as uvicorn's Config.bind_socket: protocol number 0
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: Recording(config=config, server_state=state, app_state={}),
                                          sock=listener)
        _reader, writer = await asyncio.open_connection(*listener.getsockname())
        for _ in range(100):
            if seen:
                break
            await asyncio.sleep(0.01)
        writer.close()
        server.close()
        for conn in list(state.connections):
            conn.shutdown()
        await server.wait_closed()

    asyncio.run(main())
    assert len(seen) == 1
    return seen[0]


def test_workers_bound_socket_gets_no_delay_only_with_our_protocols():
    # The premise: uvicorn's own protocols on a socket bound for several workers leave Nagle on.
    assert _nodelay_on_accept(H11Protocol) == 0
    assert _nodelay_on_accept(NoDelayH11Protocol) != 0
    assert _nodelay_on_accept(HttpToolsProtocol) == 0
    assert _nodelay_on_accept(NoDelayHttpToolsProtocol) != 0


def test_serve_uses_the_no_delay_httptools_protocol_and_uvloop(monkeypatch):
    from typer.testing import CliRunner
    from uvicorn.importer import import_from_string

    from matcher.cli import app

    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: calls.append(kwargs))
    result = CliRunner().invoke(app, ["serve", "--workers", "2", "--no-shared-encoder"])
    assert result.exit_code == 0, result.output
    assert import_from_string(calls[0]["http"]) is NoDelayHttpToolsProtocol and calls[0]["workers"] == 2
    # uvicorn's "auto" loop is uvloop when it can be imported, as it can here (a dependency of the project).
    assert calls[0]["loop"] == "auto"
    from uvicorn.loops.auto import auto_loop_factory
    loop = auto_loop_factory()()
    try:
        assert type(loop).__module__.startswith("uvloop")
    finally:
        loop.close()


def test_serve_falls_back_to_h11_without_httptools(monkeypatch):
    import importlib.util

    from matcher.cli import serving_protocol

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "httptools" else real(name, *a))
    assert serving_protocol() == "NoDelayH11Protocol"
