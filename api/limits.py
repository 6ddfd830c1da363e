"""Request-body limits that hold however the body arrives (announced length or chunked stream)."""
from __future__ import annotations

from collections.abc import Callable

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import error_body


def _too_large(limit: int) -> tuple[str, str]:
    size = f"{limit / (1024 * 1024):.0f} MB" if limit >= 1024 * 1024 else f"{limit // 1024} KB"
    return "request_too_large", f"请求体超过 {size} 上限"


class BodyLimit:
    """ASGI middleware: a body over the limit is a 413 with code ``request_too_large``.

    ``limits()`` gives (upload limit for multipart bodies, limit for everything
    else). An announced Content-Length over the limit is refused before a byte
    is read; a chunked body is counted as it streams and refused the moment it
    passes the limit, so nothing ever buffers more than the limit.
    """

    def __init__(self, app: ASGIApp, limits: Callable[[], tuple[int, int]]):
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        upload_limit, other_limit = self.limits()
        multipart = headers.get("content-type", "").lower().startswith("multipart/")
        limit = upload_limit if multipart else other_limit
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > limit:
            code, message = _too_large(limit)
            await JSONResponse(error_body(code, message), status_code=413)(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    code, message_text = _too_large(limit)
                    # Raised inside the app's body read: FastAPI re-raises HTTPExceptions and the
                    # error handlers turn this one into the usual coded answer.
                    raise HTTPException(413, detail={"code": code, "message": message_text})
            return message

        await self.app(scope, counted, send)
