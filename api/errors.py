"""Every error answer has the same shape: {"code", "message", "details"}."""
from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from matcher.errors import DomainError
from matcher.validation import describe_errors

log = logging.getLogger(__name__)

_HTTP_CODES = {
    # FastAPI's answer for a body it cannot parse at all (e.g. JSON nested past the parser's depth).
    400: ("invalid_body", "请求体无法解析：格式错误或嵌套过深"),
    401: ("not_authenticated", "请先登录：缺少或无效的访问令牌"),
    403: ("forbidden", "没有权限执行此操作"),
    404: ("not_found", "请求的地址不存在"),
    405: ("method_not_allowed", "不支持该请求方法"),
    413: ("request_too_large", "请求体过大"),
    415: ("unsupported_media_type", "不支持的内容类型"),
}


def error_body(code: str, message: str, details: object = None) -> dict:
    """The one error shape every answer uses."""
    return {"code": code, "message": message, "details": details}


def install(app: FastAPI) -> None:
    """Register the handlers that turn exceptions into coded Chinese answers."""

    @app.exception_handler(DomainError)
    async def _domain(_request: Request, exc: DomainError):
        return JSONResponse(error_body(exc.code, exc.message, exc.details), status_code=exc.status,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError):
        errors = exc.errors()
        messages = describe_errors(list(errors))
        details = [{"loc": [str(p) for p in e.get("loc", ())], "message": m} for e, m in zip(errors, messages)]
        return JSONResponse(error_body("invalid_input", "；".join(messages) or "请求参数无效", details), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException):
        code, message = _HTTP_CODES.get(exc.status_code, ("http_error", str(exc.detail)))
        if isinstance(exc.detail, dict) and "code" in exc.detail:
            code, message = exc.detail["code"], exc.detail["message"]
        return JSONResponse(error_body(code, message), status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception):
        log.exception("unexpected error")
        return JSONResponse(error_body("internal_error", "服务器内部错误，请稍后重试或联系管理员"), status_code=500)
