"""Request-scoped accessors for what create_app hangs on app.state, and the API-key check."""

from __future__ import annotations

from fastapi import Request

from .errors import AuthenticationFailed, ModelNotReady
from .keys import ANONYMOUS, KeyRing


def require_api_key(request: Request) -> None:
    """Sets request.state.key_id (the key's id, server/keys.py) or answers 401."""
    keys: KeyRing = request.app.state.api_keys
    if not keys:
        request.state.key_id = ANONYMOUS
        return
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise AuthenticationFailed("Missing API key: send it as 'Authorization: Bearer <key>'.")
    # The digest of the key against every stored digest, always, in constant time (KeyRing.match).
    key_id = keys.match(token.strip())
    if key_id is None:
        raise AuthenticationFailed("Incorrect API key provided.")
    request.state.key_id = key_id


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


def audit_log(request: Request):
    return request.app.state.audit
