"""Request-scoped accessors for what create_app hangs on app.state, and the API-key check."""

from __future__ import annotations

import hmac

from fastapi import Request

from .errors import AuthenticationFailed, ModelNotReady


def require_api_key(request: Request) -> None:
    keys: list[bytes] = request.app.state.api_keys
    if not keys:
        return
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise AuthenticationFailed("Missing API key: send it as 'Authorization: Bearer <key>'.")
    given = token.strip().encode()
    # Compare against every key, always, so the time taken says nothing about which one matched.
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(given, key)
    if not matched:
        raise AuthenticationFailed("Incorrect API key provided.")


def _ready(request: Request):
    if request.app.state.pool is None:
        raise ModelNotReady("The model is still loading; retry shortly.", retry_after=2)
    return request.app.state


def chat_service(request: Request):
    return _ready(request).chat


def completion_service(request: Request):
    return _ready(request).completions


def embedding_service(request: Request):
    return _ready(request).embeddings


def model_pool(request: Request):
    return _ready(request).pool


def sql_service(request: Request):
    # Validation and the schema listing need no model: they work while it loads.
    return request.app.state.sql


def review_service(request: Request):
    # Review needs no model either.
    return request.app.state.review
