"""Per-key limits: requests per minute, tokens per minute and concurrent requests, per API key.

    KeyLimitsMiddleware   every /v1/... request: which key (server/keys.py), then
    KeyLimiter.admit()    over a limit → 429 rate_limit_exceeded with Retry-After, in OpenAI's shape;
                          else a Lease, held until the response's last byte (a stream counts until
                          it ends) and visible to the request's tasks through a context variable:
    charge_tokens(n)      the generation code charges each generation's prompt + completion tokens
                          to the key of the request it runs for

A minute is any 60 s window (a sliding log, not a calendar minute): a key over its requests per
minute waits until its oldest request in the window is 60 s old. Tokens are known only once a
generation ends, so the token limit refuses a key's next request while the tokens its requests
used in the last 60 s reach the limit. Refused requests use nothing. A request whose key is not
accepted passes through untouched (the route's key check answers 401).

Fairness between keys comes from the limits and from the engine: its scheduler gives a free slot
to the waiting request whose key has the fewest running, taking turns between keys
(server/engine/scheduler.py), so one key's flood waits behind its own requests, not others'.

Event-loop only, like server/drain.py: no lock is needed.
"""

from __future__ import annotations

import collections
import math
import time
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Callable

from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.responses import JSONResponse

from .error_handlers import error_payload
from .errors import RateLimited
from .keys import ANONYMOUS, KEY_ID_HEX, KeyRing, current_key_id
from .metrics import Metrics

WINDOW_S = 60.0
LIMITED_PREFIX = "/v1/"


class KeyLimit(BaseModel):
    """Limits for one key, by key id; a limit left out is the default's."""

    model_config = ConfigDict(extra="forbid")

    key_id: str = Field(description=f"The key's id: the first {KEY_ID_HEX} hex digits of its SHA-256 "
                                    "(`python -m server.keys`), or 'anonymous' when no key is configured.")
    requests_per_minute: int | None = Field(None, ge=0, description="Requests in any 60 s; 0 = no limit.")
    tokens_per_minute: int | None = Field(None, ge=0, description="Prompt + completion tokens in any 60 s; 0 = no limit.")
    concurrent_streams: int | None = Field(None, ge=0, description="Requests in flight at once; 0 = no limit.")

    @model_validator(mode="after")
    def _id_shape(self) -> "KeyLimit":
        hexdigits = set("0123456789abcdef")
        if self.key_id != ANONYMOUS and (len(self.key_id) != KEY_ID_HEX or set(self.key_id) - hexdigits):
            raise ValueError(f"key_id must be {KEY_ID_HEX} lower-case hex digits (the key's id, never the key) "
                             f"or '{ANONYMOUS}'")
        return self


class LimitSettings(BaseModel):
    """Per-key limits (HEARTH_LIMITS__*). Each applies to every key alone; 0 turns it off."""

    model_config = ConfigDict(extra="forbid")

    requests_per_minute: int = Field(0, ge=0, description="Requests one key may make in any 60 s; 0 = no limit.")
    tokens_per_minute: int = Field(
        0, ge=0, description="Prompt + completion tokens one key may use in any 60 s (its next request is refused "
        "once its last 60 s reach it); 0 = no limit.")
    concurrent_streams: int = Field(
        0, ge=0, description="Requests one key may have in flight at once, streamed or not (a stream counts until "
        "its last byte); 0 = no limit. Below n_slots + max_queue, one key can never fill the queue.")
    per_key: list[KeyLimit] = Field(
        default_factory=list, description="Overrides for single keys, by key id: [{key_id, requests_per_minute, "
        "tokens_per_minute, concurrent_streams}].")

    @model_validator(mode="after")
    def _unique_ids(self) -> "LimitSettings":
        ids = [k.key_id for k in self.per_key]
        if len(ids) != len(set(ids)):
            raise ValueError(f"limits.per_key names a key id twice: {sorted({i for i in ids if ids.count(i) > 1})}")
        return self

    def for_key(self, key_id: str) -> tuple[int, int, int]:
        """(requests per minute, tokens per minute, concurrent) for `key_id`; 0 = no limit."""
        limits = [self.requests_per_minute, self.tokens_per_minute, self.concurrent_streams]
        for override in self.per_key:
            if override.key_id == key_id:
                own = (override.requests_per_minute, override.tokens_per_minute, override.concurrent_streams)
                limits = [mine if mine is not None else default for mine, default in zip(own, limits)]
        return limits[0], limits[1], limits[2]


class Window:
    """Amounts spent in the last `span` seconds (a sliding log)."""

    def __init__(self, span: float = WINDOW_S):
        self.span = span
        self._log: collections.deque[tuple[float, int]] = collections.deque()
        self._total = 0

    def _expire(self, now: float) -> None:
        while self._log and self._log[0][0] <= now - self.span:
            self._total -= self._log.popleft()[1]

    def spent(self, now: float) -> int:
        self._expire(now)
        return self._total

    def add(self, now: float, amount: int) -> None:
        if amount > 0:
            self._log.append((now, amount))
            self._total += amount

    def wait_s(self, now: float, limit: int) -> float:
        """Seconds until the window has spent less than `limit` (0 if it has already)."""
        spent = self.spent(now)
        if spent < limit:
            return 0.0
        for at, amount in self._log:  # oldest first: the first to leave the window
            spent -= amount
            if spent < limit:
                return max(at + self.span - now, 0.0)
        return self.span


@dataclass
class KeyState:
    requests: Window
    tokens: Window
    in_flight: int = 0


@dataclass
class Lease:
    """One admitted request: what it is charged to."""

    key_id: str
    limiter: "KeyLimiter"
    released: bool = False

    def charge(self, tokens: int) -> None:
        self.limiter.charge(self.key_id, tokens)


_lease: ContextVar[Lease | None] = ContextVar("hearth_lease", default=None)


def charge_tokens(tokens: int) -> None:
    """Charges `tokens` to the key of the request being served (no-op outside a request)."""
    lease = _lease.get()
    if lease is not None:
        lease.charge(tokens)


class KeyLimiter:
    def __init__(self, settings: LimitSettings, metrics: Metrics | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.settings = settings
        self.metrics = metrics
        self.clock = clock
        self._keys: dict[str, KeyState] = {}

    def state(self, key_id: str) -> KeyState:
        if key_id not in self._keys:
            self._keys[key_id] = KeyState(Window(), Window())
        return self._keys[key_id]

    def admit(self, key_id: str) -> Lease:
        """A lease for one request of `key_id`, or RateLimited naming the limit it is over."""
        rpm, tpm, concurrent = self.settings.for_key(key_id)
        state, now = self.state(key_id), self.clock()
        refusal = None
        if rpm and state.requests.spent(now) >= rpm:
            refusal = ("requests", f"{rpm} requests per minute", state.requests.wait_s(now, rpm))
        elif tpm and state.tokens.spent(now) >= tpm:
            refusal = ("tokens", f"{tpm} tokens per minute", state.tokens.wait_s(now, tpm))
        elif concurrent and state.in_flight >= concurrent:
            # A slot frees when one of its requests ends: nothing says when, so retry soon.
            refusal = ("concurrent", f"{concurrent} concurrent requests", 1.0)
        if refusal is not None:
            limit, what, wait = refusal
            if self.metrics is not None:
                self.metrics.key_rate_limited.labels(key_id, limit).inc()
            retry = max(1, math.ceil(wait))
            raise RateLimited(f"Rate limit reached for API key {key_id}: {what}. Retry in {retry} s.",
                              retry_after=retry)
        state.requests.add(now, 1)
        state.in_flight += 1
        if self.metrics is not None:
            self.metrics.key_requests.labels(key_id).inc()
            self.metrics.key_in_flight.labels(key_id).inc()
        return Lease(key_id, self)

    def release(self, lease: Lease) -> None:
        if lease.released:
            return
        lease.released = True
        self.state(lease.key_id).in_flight -= 1
        if self.metrics is not None:
            self.metrics.key_in_flight.labels(lease.key_id).dec()

    def charge(self, key_id: str, tokens: int) -> None:
        self.state(key_id).tokens.add(self.clock(), tokens)
        if self.metrics is not None and tokens > 0:
            self.metrics.key_tokens.labels(key_id).inc(tokens)


def _authorization(scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            return value.decode("latin-1")
    return None


class KeyLimitsMiddleware:
    """Pure ASGI (see server/middleware.py for why): a lease lasts until the last body chunk is sent."""

    def __init__(self, app, keys: KeyRing, limiter: KeyLimiter):
        self.app = app
        self.keys = keys
        self.limiter = limiter

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not scope["path"].startswith(LIMITED_PREFIX):
            return await self.app(scope, receive, send)
        key_id = self.keys.identify(_authorization(scope))
        if key_id is None:  # not an accepted key: the route answers 401
            return await self.app(scope, receive, send)
        try:
            lease = self.limiter.admit(key_id)
        except RateLimited as exc:
            status, body, headers = error_payload(exc)
            return await JSONResponse(body, status_code=status, headers=headers)(scope, receive, send)
        key_token, lease_token = current_key_id.set(key_id), _lease.set(lease)
        try:
            await self.app(scope, receive, send)
        finally:
            _lease.reset(lease_token)
            current_key_id.reset(key_token)
            self.limiter.release(lease)
