"""Liveness, readiness and Prometheus metrics. Public: probes and scrapers send no API key."""

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from ..drain import RETRY_AFTER_S
from ..errors import error_body

router = APIRouter(tags=["operations"])


@router.get("/health", summary="Liveness: the process is up and serving HTTP")
async def health() -> dict:
    return {"status": "ok"}


@router.get("/ready", summary="Readiness: 200 once every model has loaded; 503 before, and while draining")
async def ready(request: Request):
    state = request.app.state
    if state.drain.draining:  # first: a load balancer must stop sending here at once
        body = error_body("Shutting down", "service_unavailable", "shutting_down")
        return JSONResponse(body, status_code=503, headers={"Retry-After": str(RETRY_AFTER_S)})
    if state.load_error is not None:
        body = error_body(f"Model loading failed: {state.load_error}", "service_unavailable", "model_load_failed")
        return JSONResponse(body, status_code=503)
    if state.pool is None:
        body = error_body("Loading model", "service_unavailable", "model_not_ready")
        return JSONResponse(body, status_code=503, headers={"Retry-After": "2"})
    return {"status": "ready", "models": [name for name, _ in state.pool.items()]}


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    return Response(request.app.state.metrics.render(), media_type="text/plain; version=0.0.4")
