"""Graceful drain: on SIGTERM or SIGINT, finish what is in flight, refuse what is new, exit 0.

    signal ──► Drain.begin()    /ready → 503 (Retry-After), new requests → 503 shutting_down,
                                /health and /metrics still 200
    last in-flight request ends, or drain_timeout_s passes (the remaining connections are closed:
    their requests end as on a client disconnect)
           ──► uvicorn shuts down: closes the listener and idle connections, cancels whatever is
               still running after CUT_GRACE_S, runs the lifespan shutdown (engines closed), exit 0

One Drain per app (app.state.drain). DrainMiddleware counts the requests in flight and answers
the new ones; DrainingServer (used by `hearth serve`) turns signals into a drain instead of
uvicorn's immediate stop. A second signal during the drain cuts it short. An app served some
other way (TestClient, an embedding application) never drains unless Drain.begin() is called.
"""

from __future__ import annotations

import logging
import time
from types import FrameType

import uvicorn
from starlette.responses import JSONResponse

from .error_handlers import error_payload
from .errors import ShuttingDown

log = logging.getLogger("hearth.drain")

# Served as usual during the drain: probes must tell "draining" (/ready 503) from "dead" (/health).
ALWAYS_SERVED = frozenset({"/health", "/ready", "/metrics"})
# What a refused client is told to wait: the load balancer has (or soon will have) taken this
# replica out, so a retry lands on another one.
RETRY_AFTER_S = 2
# After the drain, uvicorn's own graceful shutdown: the requests still running are cancelled after
# this long. Only a drain cut by its timeout (or a second signal) has anything left to cancel.
CUT_GRACE_S = 1


class Drain:
    """The drain state shared by the middleware, /ready and the server. Event-loop thread only,
    except begin() and cut(), which a signal handler calls (they only assign attributes)."""

    def __init__(self, timeout_s: float):
        self.timeout_s = timeout_s
        self.in_flight = 0
        self.started: float | None = None  # time.monotonic() of the first signal
        self.deadline: float | None = None

    @property
    def draining(self) -> bool:
        return self.started is not None

    def begin(self) -> None:
        if self.started is None:
            now = time.monotonic()
            self.deadline = now + self.timeout_s
            self.started = now

    def cut(self) -> None:
        """Stop waiting for the requests in flight (a second signal)."""
        self.begin()
        self.deadline = time.monotonic()

    def finished(self) -> bool:
        """True once the drain may end: nothing in flight, or the time is up."""
        return self.draining and (self.in_flight <= 0 or time.monotonic() >= self.deadline)

    def refusal(self) -> ShuttingDown:
        return ShuttingDown("The server is shutting down; retry the request (another replica will serve it).",
                            retry_after=RETRY_AFTER_S)


class DrainMiddleware:
    """Pure ASGI (no BaseHTTPMiddleware, which would buffer streams: see middleware.py). A request
    counts as in flight until its last body chunk is sent, so a stream keeps the drain waiting."""

    def __init__(self, app, drain: Drain):
        self.app = app
        self.drain = drain

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        drain = self.drain
        if drain.draining and scope["path"] not in ALWAYS_SERVED:
            status, body, headers = error_payload(drain.refusal())
            # Connection: close, so that a keep-alive client reconnects (through the load balancer).
            response = JSONResponse(body, status_code=status, headers={**headers, "Connection": "close"})
            return await response(scope, receive, send)
        drain.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            drain.in_flight -= 1


class DrainingServer(uvicorn.Server):
    """uvicorn.Server whose SIGTERM/SIGINT start a drain. uvicorn's own handler would stop at once
    (cutting streams after timeout_graceful_shutdown) and re-raise the signal once shut down, so the
    process would end killed by SIGTERM (exit status 143/-15) rather than exit 0."""

    def __init__(self, config: uvicorn.Config, drain: Drain):
        super().__init__(config)
        self.drain = drain
        self._announced = False

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # Runs in a signal handler: assign attributes only; on_tick (event loop) does the rest.
        if self.drain.draining:
            self.drain.cut()
        else:
            self.drain.begin()

    async def on_tick(self, counter: int) -> bool:
        should_exit = await super().on_tick(counter)
        drain = self.drain
        if not drain.draining:
            return should_exit
        if not self._announced:
            self._announced = True
            log.info("draining: /ready is 503 and new requests get 503; waiting up to %g s for %d in-flight "
                     "request(s)", drain.timeout_s, drain.in_flight)
        if drain.finished():
            waited = time.monotonic() - drain.started
            if drain.in_flight > 0:
                log.warning("drain ended after %.1f s with %d request(s) still in flight: cutting them",
                            waited, drain.in_flight)
                self.hang_up()
            else:
                log.info("drained in %.1f s: no request in flight", waited)
            self.should_exit = True
        return should_exit or self.should_exit

    def hang_up(self) -> None:
        """Closes every client connection. A request still running then sees its client gone and
        ends as on any disconnect (its generation is cancelled, its slot freed), instead of being
        cancelled mid-await by uvicorn's shutdown, which logs each one as an ASGI exception."""
        for connection in list(self.server_state.connections):
            transport = getattr(connection, "transport", None)
            if transport is not None:
                transport.close()


def serve(app, host: str, port: int, log_level: str) -> int:
    """Runs `app` (built by create_app) until a signal's drain ends. Exit status: 0, or uvicorn's
    start-up failure status if the server could not start (port in use, lifespan failure)."""
    from uvicorn.config import STARTUP_FAILURE

    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=CUT_GRACE_S)
    server = DrainingServer(config, app.state.drain)
    try:
        server.run()
    except KeyboardInterrupt:  # a SIGINT before the handlers were installed
        pass
    return 0 if server.started else STARTUP_FAILURE
