"""Every error answer has the same shape: {"code", "message", "details"}."""
from __future__ import annotations

import json
import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from matcher.errors import DomainError, EncoderUnavailable, EncodingFailed
from matcher.validation import describe_errors

from .schemas import ErrorOut

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

    @app.exception_handler(EncoderUnavailable)
    async def _encoder(_request: Request, exc: EncoderUnavailable):
        # The shared encoder is restarting: nothing was written (encoding comes before every transaction).
        return JSONResponse(error_body("encoder_unavailable", "向量编码服务暂不可用，请稍后重试"), status_code=503,
                            headers={"Retry-After": "5"})

    @app.exception_handler(EncodingFailed)
    async def _encoding(_request: Request, exc: EncodingFailed):
        # The model itself failed: a server fault, so 500, but with its own code. Nothing was written.
        log.error("%s", exc)
        return JSONResponse(error_body("encoding_failed", "向量编码失败，未写入任何内容；请联系管理员查看编码进程日志"),
                            status_code=500)

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



# -- what the OpenAPI document says about errors -------------------------------------------------------
_ERROR_REF = {"$ref": "#/components/schemas/ErrorOut"}
_FASTAPI_SHAPES = ("HTTPValidationError", "ValidationError")

# For a route's ``responses=``: the record clashes with another (duplicate name, still in use, stale version).
CONFLICT = {409: {"model": ErrorOut, "description": "与现有记录冲突（code 说明原因）"}}


def _error_response(description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": dict(_ERROR_REF)}}}


def _names_records(schema: dict, op: dict) -> bool:
    """Whether the operation's JSON body refers to records by id (``enterprise_id``, ``need_ids``, ...)."""
    body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
    if "$ref" in body:
        body = schema["components"]["schemas"].get(body["$ref"].rsplit("/", 1)[-1], {})
    return any(name.endswith(("_id", "_ids")) for name in body.get("properties", {}))


# Routes that may send text to the encoder (new text, or a record that is not indexed): with a shared encoder
# process they answer 503 encoder_unavailable while it restarts.
_ENCODING_ROUTES = frozenset({
    ("post", "/search"), ("post", "/needs"), ("patch", "/needs/{need_id}"), ("post", "/outcomes"),
    ("patch", "/outcomes/{outcome_id}"), ("post", "/imports/needs"), ("post", "/imports/outcomes"),
    ("get", "/needs/{need_id}/matches"), ("get", "/outcomes/{outcome_id}/matches"),
})


def document_errors(schema: dict) -> None:
    """Make the OpenAPI document list the error answers every route can give, in the shape they really have.

    FastAPI documents 422 as ``{"detail": [...]}``; our handler answers ``{"code", "message", "details"}``
    (a route's own 422 model, like an import report, stays as the alternative). Every route with a body may
    answer 400 ``invalid_body`` (an unparseable body is refused before the caller is even checked) and 413
    ``request_too_large``; every route with a path parameter, or whose body names records by id, 404 (no
    such record, or one the caller may not see). Conflicts (409) are declared by the routes that have them
    (:data:`CONFLICT`). Idempotent, since FastAPI caches the document and this may see it again.
    """
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.setdefault("ErrorOut", ErrorOut.model_json_schema())
    for path, operations in schema.get("paths", {}).items():
        for op in operations.values():
            responses = op.setdefault("responses", {})
            if "422" in responses:
                content = responses["422"].setdefault("content", {}).setdefault("application/json", {})
                own = content.get("schema")
                if own is None or own.get("$ref", "").rsplit("/", 1)[-1] in _FASTAPI_SHAPES:
                    content["schema"] = dict(_ERROR_REF)
                    responses["422"]["description"] = "参数无效（invalid_input），message 用中文指出是哪一项"
                elif own != _ERROR_REF and "anyOf" not in own:
                    content["schema"] = {"anyOf": [own, dict(_ERROR_REF)]}
            if "requestBody" in op:
                responses.setdefault("400", _error_response("请求体无法解析（invalid_body）"))
                responses.setdefault("413", _error_response("请求体过大（request_too_large）"))
            if any(p.get("in") == "path" for p in op.get("parameters", ())) or _names_records(schema, op):
                responses.setdefault("404", _error_response("记录（路径中的或请求体引用的）不存在或无权查看"))
        for method, op in operations.items():
            if (method, path) in _ENCODING_ROUTES:
                op["responses"].setdefault("503", _error_response(
                    "向量编码服务暂不可用（encoder_unavailable，共享编码进程重启中；见 Retry-After），未写入任何内容"))
    # FastAPI's own validation shapes are referenced by no route any more.
    if not any(f"/{name}\"" in json.dumps(schema["paths"]) for name in _FASTAPI_SHAPES):
        for name in _FASTAPI_SHAPES:
            components.pop(name, None)
