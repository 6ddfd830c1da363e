"""uvicorn's HTTP/1.1 protocols with Nagle's algorithm off on every connection.

With ``--workers N`` uvicorn binds the listening socket itself as
``socket.socket(AF_INET)``, whose protocol number is 0, so asyncio does not set
TCP_NODELAY on accepted connections (it only does for sockets created as
IPPROTO_TCP). A response written in two parts (headers, then body) then waits
for the client's delayed ACK: about 40 ms added to every request on loopback,
measured with wrk. A single worker binds through asyncio and is not affected.

``matcher serve`` uses the httptools parser (C, from llhttp) where it is
installed and h11 (pure Python) otherwise; both get the same fix. The httptools
protocol also keeps the workers' keep-alive connections even
(:mod:`api.connection_balance`); h11, the fallback, has no way to say
``Connection: close`` on a response it did not plan to end, so it does not.
"""
from __future__ import annotations

import asyncio
import socket

from uvicorn.protocols.http.h11_impl import H11Protocol

from .connection_balance import worker_table


class _NoDelay:
    """Mixin for a uvicorn protocol: TCP_NODELAY on the connection before the protocol takes it."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass  # not a TCP socket after all: nothing to tune
        super().connection_made(transport)  # type: ignore[misc]


class NoDelayH11Protocol(_NoDelay, H11Protocol):
    """:class:`H11Protocol` that sends each write at once (TCP_NODELAY)."""


class _Balanced:
    """Mixin for uvicorn's httptools protocol: counts this worker's connections in the shared table and, when it
    holds too many more than another worker, ends one after its current response (:mod:`api.connection_balance`)."""

    _shed = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)  # type: ignore[misc]
        table = worker_table()
        if table is not None:
            table.opened()

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)  # type: ignore[misc]
        table = worker_table()
        if table is not None:
            table.closed(self._shed)

    def on_headers_complete(self) -> None:
        before = self.cycle  # type: ignore[attr-defined]
        super().on_headers_complete()  # type: ignore[misc]
        cycle = self.cycle  # type: ignore[attr-defined]
        table = worker_table()
        if table is not None and cycle is not before and cycle.keep_alive and table.shed_one():
            cycle.keep_alive = False  # the response says Connection: close, and the transport closes after it
            self._shed = True


try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # httptools not installed: `matcher serve` picks h11 (matcher.cli.serving_protocol)
    pass
else:
    class NoDelayHttpToolsProtocol(_Balanced, _NoDelay, HttpToolsProtocol):
        """:class:`HttpToolsProtocol` that sends each write at once (TCP_NODELAY) and keeps the workers'
        connections even."""
