"""LoRA adapters on a shared base: several domain adapters served from one copy of the base weights.

A GGUF LoRA adapter (`hearth export --lora`) is applied to a llama.cpp *context*, not to the model:
llama_set_adapters_lora(ctx, ...) makes every matmul of that context add the adapter's B·A·x
(scaled by scale · alpha / rank) to the base weights' product. So an adapter served as its own
model is one more context on the base's llama_model: `adapter_engine` builds a LlamaEngine that
borrows its base engine's model (weights loaded and mapped once), with its own KV cache, scheduler
and slots, and this adapter set on its context. The adapter tensors themselves are small (r·(in+out)
per adapted matrix) and belong to the model: llama.cpp frees them with it.

Memory (python -m bench.adapters: SmolLM2-135M Q8_0, n_ctx 1024 x 2 slots per context, RSS after
one answer each): the base alone 305 MiB; base + 2 adapters 411 MiB, so +53 MiB an adapter (its own
KV cache and compute buffers; the 0.1 MiB adapter file besides); the same three names as three
models (the adapters merged, Q8_0) 709 MiB, +201 MiB a merged model (its 138 MiB of weights too).
The weights count once; each adapter still pays for its context, as a separate model would.
"""

from __future__ import annotations

import ctypes
from pathlib import Path
from typing import TYPE_CHECKING

import llama_cpp

from ..errors import HearthError

if TYPE_CHECKING:
    from .llama_engine import LlamaEngine

# Keys convert_lora_to_gguf.py writes, read back for /v1/models.
ADAPTER_KEYS = {"general.type": "type", "adapter.type": "adapter_type", "adapter.lora.alpha": "alpha",
                "general.architecture": "architecture"}


def adapter_meta(adapter) -> dict[str, str]:
    """The adapter GGUF's metadata values for ADAPTER_KEYS (absent keys left out)."""
    out = {}
    buf = ctypes.create_string_buffer(256)
    for key, name in ADAPTER_KEYS.items():
        n = llama_cpp.llama_adapter_meta_val_str(adapter, key.encode(), buf, len(buf))
        if n >= 0:
            out[name] = buf.value.decode("utf-8", "replace")
    return out


def load_lora(model, path: str | Path, *, model_name: str, model_arch: str | None = None):
    """Loads the GGUF LoRA adapter at `path` onto llama_model `model`; returns (adapter, metadata).

    Refused with a message naming the problem: a missing file, one that is not a LoRA adapter, or
    one whose tensors do not fit the model (llama.cpp logs which tensor to stderr)."""
    path = Path(path)
    if not path.is_file():
        raise HearthError(f"LoRA adapter {path} for model {model_name!r} does not exist")
    adapter = llama_cpp.llama_adapter_lora_init(model, str(path).encode())
    if not adapter:
        raise HearthError(
            f"could not load LoRA adapter {path} onto model {model_name!r}: it is not a GGUF LoRA adapter "
            "(`hearth export --lora` writes one), or its tensors do not fit this base model (llama.cpp's log "
            "above names the tensor)")
    meta = adapter_meta(adapter)
    if meta.get("type") != "adapter" or meta.get("adapter_type") != "lora":
        llama_cpp.llama_adapter_lora_free(adapter)
        raise HearthError(f"{path} is not a LoRA adapter (general.type={meta.get('type')!r}, "
                          f"adapter.type={meta.get('adapter_type')!r})")
    if model_arch and meta.get("architecture") and meta["architecture"] != model_arch:
        llama_cpp.llama_adapter_lora_free(adapter)
        raise HearthError(f"LoRA adapter {path} was made for a {meta['architecture']} model; {model_name!r} is "
                          f"{model_arch}")
    return adapter, meta


def set_loras(ctx, adapters: list, scales: list[float]) -> None:
    """Sets exactly `adapters` (with their `scales`) on context `ctx`; an empty list clears them."""
    n = len(adapters)
    arr = (llama_cpp.llama_adapter_lora_p_ctypes * max(n, 1))(*adapters)
    sc = (ctypes.c_float * max(n, 1))(*scales)
    rc = llama_cpp.llama_set_adapters_lora(ctx, arr if n else None, n, sc if n else None)
    if rc != 0:
        raise HearthError(f"llama.cpp refused the LoRA adapters on the context (llama_set_adapters_lora returned {rc})")


def adapter_engine(base: "LlamaEngine", name: str, path: str | Path, *, scale: float = 1.0,
                   **context) -> "LlamaEngine":
    """A LlamaEngine serving `name`: `base`'s weights, its own context with the LoRA adapter at `path`.

    `context` takes LlamaEngine's context options (n_ctx, n_slots, n_threads, ...); the base engine
    closes it before freeing the shared weights."""
    from .llama_engine import LlamaEngine

    if base.adapter is not None:
        raise HearthError(f"model {base.name!r} has a LoRA adapter of its own (lora_path): adapter {name!r} needs "
                          "a plain base model")
    return LlamaEngine(name, base.path, base=base, lora_path=str(path), lora_scale=scale, **context)
