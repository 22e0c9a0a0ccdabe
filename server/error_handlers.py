"""FastAPI exception handlers: every non-2xx reply is OpenAI's error shape with the true status.

HearthError subclasses map through the one table in errors.py. FastAPI's validation errors
(including malformed JSON) become 400 invalid_request_error with the offending field as
`param`. Anything unexpected is a 500 whose body carries an error id that is also logged with
the traceback; the traceback itself never reaches the client.
"""

from __future__ import annotations

import json
import logging
import uuid

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from .errors import HearthError, describe, error_body

log = logging.getLogger("hearth.errors")

_HTTP_TYPES = {
    401: ("authentication_error", "invalid_api_key"),
    403: ("permission_error", "forbidden"),
    404: ("invalid_request_error", "not_found"),
    405: ("invalid_request_error", "method_not_allowed"),
    413: ("invalid_request_error", "request_too_large"),
}


def error_payload(exc: BaseException) -> tuple[int, dict, dict[str, str]]:
    """(status, body, headers) for any exception."""
    if isinstance(exc, HearthError):
        kind = describe(exc)
        headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else {}
        if kind.status >= 500:
            log.warning("%s: %s", type(exc).__name__, exc.message)
        return kind.status, error_body(exc.message, kind.type, kind.code, exc.param), headers
    error_id = uuid.uuid4().hex[:12]
    log.error("internal error %s", error_id, exc_info=exc)
    message = f"The server had an error while processing your request (error id {error_id})."
    return 500, error_body(message, "server_error", "internal_error"), {}


def stream_error_event(exc: BaseException) -> str:
    """An error that happens after a stream started: sent as one SSE data event."""
    _, body, _ = error_payload(exc)
    return f"data: {json.dumps(body)}\n\n"


def _validation_param(loc: tuple) -> str | None:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or None


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(HearthError)
    async def _hearth(request: Request, exc: HearthError):
        status, body, headers = error_payload(exc)
        return JSONResponse(body, status_code=status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError):
        errors = exc.errors()
        first = errors[0] if errors else {}
        if first.get("type") == "json_invalid":
            message = f"We could not parse the JSON body of your request: {first.get('msg', 'invalid JSON')}"
            return JSONResponse(error_body(message, "invalid_request_error", "invalid_json"), status_code=400)
        param = _validation_param(tuple(first.get("loc", ())))
        details = "; ".join(
            f"{_validation_param(tuple(e.get('loc', ()))) or 'body'}: {e.get('msg')}" for e in errors[:5]
        )
        return JSONResponse(
            error_body(f"Invalid request: {details}", "invalid_request_error", "invalid_value", param),
            status_code=400,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        type_, code = _HTTP_TYPES.get(exc.status_code, ("invalid_request_error", None))
        message = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
        return JSONResponse(error_body(message, type_, code), status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        status, body, headers = error_payload(exc)
        return JSONResponse(body, status_code=status, headers=headers)
