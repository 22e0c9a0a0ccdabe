"""The application factory. All state lives on app.state; nothing is module-global.

    create_app(settings)            loads the configured models in the background after start-up,
                                    so /health answers at once and /ready turns 200 when loaded
    create_app(settings, engine)    serves an engine (or ModelPool) built by the caller: tests,
                                    benchmarks, or an embedding application
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Mapping

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from . import __version__
from .audit import AuditLog
from .drain import Drain, DrainMiddleware
from .engine.base import Engine
from .error_handlers import install_error_handlers
from .keys import KeyRing
from .limits import KeyLimiter, KeyLimitsMiddleware
from .middleware import RequestMetricsMiddleware
from .metrics import Metrics
from .routers import health, openai, review, sql
from .services.text_to_sql import SqlService
from .services.chat import ChatService
from .services.completions import CompletionService
from .services.embeddings import EmbeddingService
from .services.models import ModelPool
from .services.review import ReviewService
from .reload import EpochMiddleware, Reloader, RequestEpochs
from .reload import router as reload_router
from .settings import AdapterConfig, ModelConfig, ServerSettings

log = logging.getLogger("hearth.app")


def load_pool(settings: ServerSettings) -> ModelPool:
    """Loads every configured model (blocking; run it in a thread)."""
    engines: dict[str, Engine] = {}
    aliases: dict[str, str] = {}
    for cfg in settings.models:
        engines[cfg.name] = load_engine(cfg)
        aliases.update({alias: cfg.name for alias in cfg.aliases})
        log.info("loaded model %s from %s in %.2f s", cfg.name, cfg.path, engines[cfg.name].load_seconds)
    bases = {cfg.name: cfg for cfg in settings.models}
    for acfg in settings.adapters:  # after the models: each shares its base's loaded weights
        try:
            engines[acfg.name] = load_adapter(acfg, bases[acfg.base], engines[acfg.base])
        except Exception:
            for engine in engines.values():
                engine.close()
            raise
        aliases.update({alias: acfg.name for alias in acfg.aliases})
        log.info("loaded adapter %s from %s on %s in %.2f s", acfg.name, acfg.path, acfg.base,
                 engines[acfg.name].load_seconds)
    return ModelPool(engines, aliases, default=settings.default_model)


def load_adapter(cfg: AdapterConfig, base_cfg: ModelConfig, base: Engine) -> Engine:
    """A LoRA adapter entry as an engine of its own on `base`'s weights (server/engine/adapters.py)."""
    from .engine.adapters import adapter_engine

    return adapter_engine(
        base, cfg.name, cfg.path, scale=cfg.scale, n_ctx=cfg.n_ctx or base_cfg.n_ctx, n_threads=base_cfg.n_threads,
        n_gpu_layers=base_cfg.n_gpu_layers, n_slots=cfg.n_slots or base_cfg.n_slots, n_batch=base_cfg.n_batch,
        max_queue=base_cfg.max_queue, prefill_chunk=base_cfg.prefill_chunk, chat_template=base_cfg.template_text(),
    )


def load_engine(cfg: ModelConfig) -> Engine:
    """Loads one model entry (blocking): at start, and on a reload (server/reload.py)."""
    from .engine.llama_engine import LlamaEngine

    return LlamaEngine(
        cfg.name, cfg.resolved_path(), n_ctx=cfg.n_ctx, n_threads=cfg.n_threads, n_gpu_layers=cfg.n_gpu_layers,
        n_slots=cfg.n_slots, n_batch=cfg.n_batch, max_queue=cfg.max_queue, prefill_chunk=cfg.prefill_chunk,
        chat_template=cfg.template_text(), lora_path=cfg.lora_path, lora_scale=cfg.lora_scale,
    )


def _as_pool(engine: Engine | ModelPool | Mapping[str, Engine]) -> ModelPool:
    if isinstance(engine, ModelPool):
        return engine
    if isinstance(engine, Mapping):
        return ModelPool(engine)
    return ModelPool({engine.name: engine})


def attach_pool(app: FastAPI, pool: ModelPool) -> None:
    state = app.state
    interval = state.settings.stream_interval
    state.chat = ChatService(pool, state.metrics, interval)
    state.completions = CompletionService(pool, state.metrics, interval)
    state.embeddings = EmbeddingService(pool)
    for name, engine in pool.items():
        state.metrics.model_load.labels(name).set(engine.load_seconds)
    state.pool = pool  # last: readiness flips only when everything above is in place


def create_app(settings: ServerSettings | None = None,
               engine: Engine | ModelPool | Mapping[str, Engine] | None = None) -> FastAPI:
    settings = settings or ServerSettings()
    owns_engines = engine is None

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        loader = None
        if owns_engines:
            async def load():
                try:
                    pool = await asyncio.to_thread(load_pool, settings)
                    attach_pool(app, pool)
                except Exception as exc:  # keep serving /health and report the failure on /ready
                    log.exception("model loading failed")
                    app.state.load_error = str(exc)

            loader = asyncio.create_task(load())
            app.state.reloader.install_signal()  # SIGHUP reloads the model registry (server/reload.py)
        yield
        if app.state.reloader is not None:
            app.state.reloader.remove_signal()
        if loader is not None:
            loader.cancel()
            with contextlib.suppress(BaseException):
                await loader
        app.state.sql.close()
        app.state.audit.close()
        if owns_engines and app.state.pool is not None:
            app.state.pool.close()

    app = FastAPI(title="Hearth", version=__version__, lifespan=lifespan,
                  description="On-premise LLM appliance: OpenAI-compatible API and Text-to-SQL.")
    app.state.settings = settings
    app.state.metrics = Metrics()
    app.state.api_keys = KeyRing(settings.all_api_keys())  # digests only (server/keys.py)
    app.state.limits = KeyLimiter(settings.limits, app.state.metrics)
    app.state.audit = AuditLog(settings.audit, app.state.metrics)
    app.state.pool = None
    app.state.sql = SqlService(settings, app.state.metrics)
    app.state.review = ReviewService(settings.review)
    app.state.load_error = None
    app.state.drain = Drain(settings.drain_timeout_s)  # `hearth serve` starts it on SIGTERM/SIGINT
    app.state.epochs = RequestEpochs()  # a reload closes replaced engines once older requests end
    app.state.reloader = (Reloader(app, lambda: settings, load_engine, attach_pool, load_adapter)
                           if owns_engines else None)
    app.state.metrics.watch_engines(lambda: app.state.pool.stats() if app.state.pool else [],
                                    vllm_names=settings.vllm_metrics)
    if engine is not None:
        attach_pool(app, _as_pool(engine))

    # Inside CORS and the metrics (refusals carry CORS headers and are counted), outside the rest.
    app.add_middleware(KeyLimitsMiddleware, keys=app.state.api_keys, limiter=app.state.limits)  # per-key limits
    app.add_middleware(EpochMiddleware, epochs=app.state.epochs)
    app.add_middleware(DrainMiddleware, drain=app.state.drain)
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_credentials=False,
                           allow_methods=["*"], allow_headers=["*"])
    install_error_handlers(app)
    app.add_middleware(RequestMetricsMiddleware, metrics=app.state.metrics)
    app.include_router(health.router)
    app.include_router(openai.router)
    app.include_router(sql.router)
    app.include_router(review.router)
    app.include_router(reload_router)
    return app
