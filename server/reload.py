"""Reloading the model registry while serving: SIGHUP, or POST /admin/reload with an API key.

    reload ──► the settings read again, as at start (the same flags, HEARTH_* env and YAML file)
           ──► per model entry: unchanged (same entry, same file size, mtime and inode) → kept
                                new or changed → loaded in a thread while the old engine serves
                                failed to load → error logged, the old engine (if any) keeps serving
           ──► the pool swapped in one step (attach_pool): new requests go to the new engines
           ──► replaced and removed engines closed once every request that began before the swap has
               ended (RequestEpochs), so a stream in flight finishes on the engine it started on

Only `models`, `adapters` (each made again on its base when the base is reloaded) and `default_model`
are reloaded; every other setting (keys, databases, host) is read at start. While both copies of a changed model are loaded, it needs its memory twice.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import signal
from pathlib import Path
from typing import Callable

from fastapi import APIRouter, Depends, Request

from .embedded import parse_spec
from .engine.base import Engine
from .engine.gguf_file import check_gguf
from .errors import AuthenticationFailed, ModelNotReady, NotFound
from .dependencies import require_api_key
from .services.models import ModelPool
from .settings import AdapterConfig, ModelConfig, ServerSettings

log = logging.getLogger("hearth.reload")

RETIRE_POLL_S = 0.2  # how often a retiring engine checks that the requests before the swap have ended


class RequestEpochs:
    """Counts HTTP requests in flight by the epoch they began in; a reload starts a new epoch."""

    def __init__(self) -> None:
        self.current = 0
        self.open: collections.Counter[int] = collections.Counter()

    def advance(self) -> int:
        """Starts a new epoch and returns it: requests counted from now on belong to it."""
        self.current += 1
        return self.current

    def settled(self, epoch: int) -> bool:
        """True once no request that began before `epoch` is still in flight."""
        return not any(n for e, n in self.open.items() if e < epoch)


class EpochMiddleware:
    """Pure ASGI, like DrainMiddleware: a stream counts until its last chunk is sent."""

    def __init__(self, app, epochs: RequestEpochs):
        self.app = app
        self.epochs = epochs

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        epochs, epoch = self.epochs, self.epochs.current
        epochs.open[epoch] += 1
        try:
            await self.app(scope, receive, send)
        finally:
            epochs.open[epoch] -= 1
            if epochs.open[epoch] <= 0:
                del epochs.open[epoch]


def fingerprint(cfg: ModelConfig) -> tuple:
    """What makes a loaded model current: its entry, and the identity of each file it reads (a GGUF
    copied over the old one at the same path is a change). Embedded models are identified by spec."""
    files = []
    paths = [cfg.lora_path, cfg.chat_template]
    if parse_spec(cfg.path) is None:
        try:
            paths.append(str(cfg.resolved_path()))
        except (ValueError, OSError):
            paths.append(cfg.path)
    for path in filter(None, paths):
        try:
            st = Path(path).stat()
            files.append((path, st.st_size, st.st_mtime_ns, st.st_ino))
        except OSError:
            files.append((path, None))
    return repr(sorted(cfg.model_dump().items())), tuple(files)


def adapter_fingerprint(cfg: AdapterConfig) -> tuple:
    """An adapter entry and the identity of its GGUF file."""
    try:
        st = Path(cfg.path).stat()
        file = (st.st_size, st.st_mtime_ns, st.st_ino)
    except OSError:
        file = None
    return repr(sorted(cfg.model_dump().items())), file


class Reloader:
    """Reloads the registry of one app. `source` reads the settings again; `load` loads one model
    (blocking; run in a thread); `attach` swaps a new pool in."""

    def __init__(self, app, source: Callable[[], ServerSettings], load: Callable[[ModelConfig], Engine],
                 attach: Callable[[object, ModelPool], None],
                 load_adapter: Callable[[AdapterConfig, ModelConfig, Engine], Engine] | None = None):
        self.app = app
        self.source = source
        self.load = load
        self.attach = attach
        self.load_adapter = load_adapter
        self.loaded = {cfg.name: fingerprint(cfg) for cfg in app.state.settings.models}
        self.loaded |= {a.name: adapter_fingerprint(a) for a in app.state.settings.adapters}
        self._lock = asyncio.Lock()
        self._retiring: set[asyncio.Task] = set()

    async def reload(self) -> dict:
        """Reloads the models that changed; returns what happened to each (also logged)."""
        state = self.app.state
        if state.pool is None and state.load_error is None:
            raise ModelNotReady("The models are still loading; reload once /ready answers.", retry_after=2)
        async with self._lock:
            return await self._reload(state)

    async def _reload(self, state) -> dict:
        report: dict = {"kept": [], "loaded": [], "failed": {}, "removed": []}
        try:
            settings = await asyncio.to_thread(self.source)
        except Exception as exc:  # a broken YAML file: nothing changes
            log.error("reload: the settings could not be read, nothing changed: %s", exc)
            report["failed"]["settings"] = str(exc)
            return report
        old: dict[str, Engine] = dict(state.pool.items()) if state.pool is not None else {}
        engines: dict[str, Engine] = {}
        marks = dict(self.loaded)
        for cfg in settings.models:
            mark = await asyncio.to_thread(fingerprint, cfg)
            if cfg.name in old and self.loaded.get(cfg.name) == mark:
                engines[cfg.name] = old[cfg.name]
                report["kept"].append(cfg.name)
                continue
            try:
                engines[cfg.name] = await asyncio.to_thread(self._load, cfg)
            except Exception as exc:
                report["failed"][cfg.name] = str(exc)
                if cfg.name in old:
                    engines[cfg.name] = old[cfg.name]
                    log.error("reload: model %s failed to load (%s); the loaded one keeps serving", cfg.name, exc)
                else:
                    log.error("reload: new model %s failed to load: %s", cfg.name, exc)
                continue
            marks[cfg.name] = mark
            report["loaded"].append(cfg.name)
            log.info("reload: loaded model %s from %s in %.2f s", cfg.name, cfg.path, engines[cfg.name].load_seconds)
        if not engines:
            log.error("reload: no model could be loaded; nothing changed")
            return report
        await self._adapters(settings, old, engines, marks, report)
        report["removed"] = sorted(set(old) - set(engines))
        names = set(engines)
        aliases = {alias: cfg.name for cfg in (*settings.models, *settings.adapters) if cfg.name in names
                   for alias in cfg.aliases}
        default = settings.default_model if settings.default_model in names | set(aliases) else None
        self.loaded = {name: mark for name, mark in marks.items() if name in names}
        state.settings = state.settings.model_copy(update={"models": settings.models, "adapters": settings.adapters,
                                                           "default_model": default})
        self.attach(self.app, ModelPool(engines, aliases, default=aliases.get(default, default)))
        state.load_error = None
        retired = [engine for name, engine in old.items() if engines.get(name) is not engine]
        if retired:
            self._retire(retired, state.epochs.advance())
        log.info("reload: kept %s, loaded %s, failed %s, removed %s", report["kept"], report["loaded"],
                 sorted(report["failed"]), report["removed"])
        return report

    async def _adapters(self, settings: ServerSettings, old: dict, engines: dict, marks: dict, report: dict) -> None:
        """The adapters after their bases: one kept while it and its base engine are unchanged, made
        again on the base's new engine when the base was reloaded (an adapter lives on its base's
        weights, and a replaced base closes its adapters' contexts with it)."""
        bases = {cfg.name: cfg for cfg in settings.models}
        for acfg in settings.adapters:
            base = engines.get(acfg.base)
            if base is None or self.load_adapter is None:
                report["failed"][acfg.name] = f"base model {acfg.base!r} is not loaded"
                log.error("reload: adapter %s has no loaded base %s", acfg.name, acfg.base)
                continue
            mark = await asyncio.to_thread(adapter_fingerprint, acfg)
            kept = old.get(acfg.name)
            if kept is not None and self.loaded.get(acfg.name) == mark and old.get(acfg.base) is base:
                engines[acfg.name] = kept
                report["kept"].append(acfg.name)
                continue
            try:
                engines[acfg.name] = await asyncio.to_thread(self.load_adapter, acfg, bases[acfg.base], base)
            except Exception as exc:
                report["failed"][acfg.name] = str(exc)
                if kept is not None and old.get(acfg.base) is base:
                    engines[acfg.name] = kept
                    log.error("reload: adapter %s failed to load (%s); the loaded one keeps serving", acfg.name, exc)
                else:
                    log.error("reload: adapter %s failed to load: %s", acfg.name, exc)
                continue
            marks[acfg.name] = mark
            report["loaded"].append(acfg.name)

    def _load(self, cfg: ModelConfig) -> Engine:
        check_gguf(cfg.resolved_path())  # a missing, foreign or cut-short file, said plainly (blocking)
        return self.load(cfg)

    def _retire(self, engines: list[Engine], epoch: int) -> None:
        async def close_when_idle():
            while not self.app.state.epochs.settled(epoch):
                await asyncio.sleep(RETIRE_POLL_S)
            for engine in engines:
                await asyncio.to_thread(engine.close)
                log.info("reload: closed the replaced engine of %s", engine.name)

        task = asyncio.create_task(close_when_idle())
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    async def settle(self) -> None:
        """Waits for the replaced engines to close (tests, and shutdown)."""
        while self._retiring:
            await asyncio.gather(*list(self._retiring), return_exceptions=True)

    # -- SIGHUP ---------------------------------------------------------------------------

    def install_signal(self) -> bool:
        """SIGHUP reloads; call from the running event loop. False where signals cannot be set (not
        the main thread, as under a test client, or no SIGHUP on this platform)."""
        try:
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self._on_signal)
        except (ValueError, RuntimeError, NotImplementedError, AttributeError):
            return False
        return True

    def remove_signal(self) -> None:
        with contextlib.suppress(ValueError, RuntimeError, NotImplementedError, AttributeError):
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)

    def _on_signal(self) -> None:
        log.info("SIGHUP: reloading the model registry")

        async def run():
            try:
                await self.reload()
            except Exception:
                log.exception("reload failed")

        task = asyncio.ensure_future(run())
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)


router = APIRouter(tags=["operations"])


@router.post("/admin/reload", dependencies=[Depends(require_api_key)],
             summary="Reload the model registry (as SIGHUP does); needs an API key")
async def reload_models(request: Request) -> dict:
    state = request.app.state
    if not state.api_keys:
        raise AuthenticationFailed("Admin routes need an API key: configure api_keys (or send SIGHUP).")
    if getattr(state, "reloader", None) is None:
        raise NotFound("This server serves engines built by its caller: there is no registry to reload.")
    return await state.reloader.reload()
