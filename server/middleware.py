"""Request metrics as a plain ASGI middleware.

Not `@app.middleware("http")`: Starlette's BaseHTTPMiddleware pipes every streamed body chunk
through an extra anyio memory stream and task, which cost about a third of the event loop's time
per streamed token (py-spy, one SSE stream on 2 cores), and it returns as soon as the headers are
sent, so a stream's latency and in-flight count ended at its first byte. Here the request counts
as in flight, and its latency runs, until the last body chunk has been sent.
"""

from __future__ import annotations

import time

from .metrics import Metrics


class RequestMetricsMiddleware:
    def __init__(self, app, metrics: Metrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        metrics = self.metrics
        started = time.perf_counter()
        status = 500

        async def send_and_record(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send_and_record)
        finally:
            metrics.in_flight.dec()
            # The router stores the matched route in the (shared) scope while it handles the request.
            path = getattr(scope.get("route"), "path", "unmatched")
            metrics.requests.labels(path, scope["method"], str(status)).inc()
            metrics.latency.labels(path).observe(time.perf_counter() - started)
