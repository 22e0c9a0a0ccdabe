"""The model registry at run time: names and aliases → loaded engines."""

from __future__ import annotations

import time
from typing import Iterable, Mapping

from ..engine.base import Engine, EngineStats
from ..errors import ModelNotFound
from ..protocol.openai import ModelCard, ModelList


class ModelPool:
    def __init__(self, engines: Mapping[str, Engine], aliases: Mapping[str, str] | None = None,
                 default: str | None = None):
        if not engines:
            raise ValueError("a model pool needs at least one engine")
        self._engines = dict(engines)
        self._aliases = dict(aliases or {})
        self.default = default or next(iter(self._engines))
        self._created = int(time.time())

    def get(self, name: str | None) -> Engine:
        """The engine for `name`; a missing name means the default model, an unknown one is a 404."""
        if not name:
            return self._engines[self.default]
        key = self._aliases.get(name, name)
        if key not in self._engines:
            raise ModelNotFound(f"The model `{name}` does not exist.", param="model")
        return self._engines[key]

    def items(self) -> Iterable[tuple[str, Engine]]:
        return self._engines.items()

    def stats(self) -> list[tuple[str, EngineStats]]:
        return [(name, engine.stats()) for name, engine in self._engines.items()]

    def cards(self) -> ModelList:
        cards = []
        for name, engine in self._engines.items():
            meta = {"n_ctx": engine.n_ctx, "load_seconds": round(engine.load_seconds, 3)}
            for attr in ("n_ctx_train", "n_params", "size_bytes", "path", "memory"):
                if hasattr(engine, attr):
                    meta[attr] = getattr(engine, attr)
            meta["aliases"] = sorted(a for a, target in self._aliases.items() if target == name)
            if getattr(engine, "adapter", None):  # a LoRA adapter; with a base_model, on that model's weights
                meta["adapter"] = engine.adapter
            cards.append(ModelCard(id=name, created=self._created, meta=meta))
        return ModelList(data=cards)

    def close(self) -> None:
        for engine in self._engines.values():
            engine.close()
