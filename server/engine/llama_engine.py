"""`LlamaEngine`: one GGUF model served through llama-cpp-python's low-level API.

Generation goes through the continuous-batching `Scheduler` (one worker thread owns the context).
Embeddings use a second, small context on the same weights with mean pooling, so an embedding
call never disturbs the generation KV cache.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import logging
import threading
import time
from pathlib import Path
from typing import Any, AsyncIterator, Mapping, Sequence

import llama_cpp
import numpy as np
from llama_cpp import _logger as llama_log
from llama_cpp._internals import LlamaModel

from ..errors import ContextLengthExceeded, EngineFailure, HearthError
from .adapters import load_lora, set_loras
from .base import EngineStats, FinishEvent, GenerationEvent, GenerationRequest
from .gguf_file import kv_bytes_per_token
from .kernel_check import long_prompt_cuts_are_exact, short_prompt_cuts_are_exact
from .scheduler import Scheduler
from .slots import CPU_FA_TILE_ROWS
from .template import CHATML_TEMPLATE, ChatTemplate

log = logging.getLogger("hearth.engine")


def quant_name(metadata: Mapping[str, Any]) -> str:
    """The GGUF's `general.file_type` as llama.cpp names it (Q8_0, Q4_K_M, F16), or "unknown"."""
    try:
        ftype = int(metadata.get("general.file_type"))
    except (TypeError, ValueError):
        return "unknown"
    for attr in dir(llama_cpp):
        if attr.startswith("LLAMA_FTYPE_") and getattr(llama_cpp, attr) == ftype and attr != "LLAMA_FTYPE_GUESSED":
            return attr.removeprefix("LLAMA_FTYPE_").removeprefix("MOSTLY_").removeprefix("ALL_")
    return "unknown"


def serving_memory(metadata: Mapping[str, Any], weights_bytes: int, n_ctx: int, n_slots: int,
                   shared_with: str | None = None) -> dict:
    """What a served model holds in memory, by its parts: the weights (the GGUF's tensors, mapped;
    none of its own when it shares a base model's) and the f16 KV cache of n_ctx cells per slot
    (server/engine/gguf_file.py kv_bytes_per_token). Compute buffers (tens of MiB) are not counted."""
    kv = n_ctx * n_slots * kv_bytes_per_token(dict(metadata))
    own = 0 if shared_with else weights_bytes
    return {"quant": quant_name(metadata), "weights_bytes": weights_bytes, "weights_shared_with": shared_with,
            "kv_cache_bytes": kv, "n_ctx": n_ctx, "n_slots": n_slots, "total_bytes": own + kv}


class LlamaEngine:
    def __init__(
        self,
        name: str,
        path: str | Path,
        *,
        n_ctx: int = 2048,
        n_threads: int = 2,
        n_gpu_layers: int = 0,
        n_slots: int = 4,
        n_batch: int = 512,
        max_queue: int = 64,
        prefill_chunk: int = 128,
        chat_template: str | None = None,
        lora_path: str | None = None,
        lora_scale: float = 1.0,
        base: LlamaEngine | None = None,
        verbose: bool = False,
    ):
        t0 = time.perf_counter()
        # llama.cpp logs every load step to stderr; keep only its errors unless asked.
        llama_log.set_verbose(verbose)
        self.name = name
        self.path = str(path)
        self.n_ctx = n_ctx
        self._n_threads = n_threads
        # `base`: share that engine's llama_model (its weights, loaded once) with a context of our own,
        # e.g. for a LoRA adapter served as its own model (server/engine/adapters.py). The base
        # engine owns the weights and closes its sharers before freeing them.
        self._sharers: list[LlamaEngine] = []
        self._owns_model = base is None
        if base is not None:
            self._model = base._model
        else:
            model_params = llama_cpp.llama_model_default_params()
            model_params.n_gpu_layers = n_gpu_layers
            try:
                self._model = LlamaModel(path_model=self.path, params=model_params, verbose=verbose)
            except (ValueError, OSError) as exc:
                raise HearthError(f"could not load model {name!r} from {self.path}: {exc}") from exc
        self._vocab = self._model.vocab
        self.n_vocab = self._model.n_vocab()
        self._pieces: dict[int, bytes] = {}  # token -> bytes, filled as tokens are generated
        self.n_ctx_train = self._model.n_ctx_train()
        self.n_params = self._model.n_params()
        self.size_bytes = self._model.size()
        self.metadata = self._model.metadata()

        # KV cache: one stream of n_ctx cells per slot (kv_unified=False). With a unified buffer,
        # attention for one sequence runs over every sequence's cells (masked), and the longer
        # softmax rounds differently: greedy output under batching then drifts from solo output.
        # Separate streams keep each sequence's arithmetic the same whatever else is batched.
        ctx_params = llama_cpp.llama_context_default_params()
        ctx_params.n_ctx = n_ctx * n_slots
        ctx_params.n_batch = n_batch
        ctx_params.n_ubatch = n_batch
        ctx_params.n_seq_max = n_slots
        ctx_params.kv_unified = False
        ctx_params.n_threads = n_threads
        ctx_params.n_threads_batch = n_threads
        self._ctx = llama_cpp.llama_init_from_model(self._model.model, ctx_params)
        if not self._ctx:
            raise HearthError(f"could not create a llama.cpp context for {name!r} (n_ctx={n_ctx * n_slots})")
        self._lora = None
        self.adapter: dict | None = None  # the LoRA adapter on this context, for /v1/models
        if lora_path:
            try:
                self._lora, meta = load_lora(self._model.model, lora_path, model_name=name,
                                             model_arch=self.metadata.get("general.architecture"))
                set_loras(self._ctx, [self._lora], [lora_scale])
            except HearthError:
                llama_cpp.llama_free(self._ctx)
                if self._owns_model:
                    self._model.close()
                raise
            self.adapter = {"path": str(lora_path), "scale": lora_scale, "alpha": float(meta.get("alpha", 0)),
                            "base_model": base.name if base is not None else None}

        template = chat_template or self.metadata.get("tokenizer.chat_template") or CHATML_TEMPLATE
        self.template = ChatTemplate(
            template,
            bos_token=self._model.token_get_text(self._model.token_bos()),
            eos_token=self._model.token_get_text(self._model.token_eos()),
        )
        self._scheduler = Scheduler(
            ctx=self._ctx,
            vocab=self._vocab,
            n_vocab=self.n_vocab,
            n_slots=n_slots,
            n_batch=n_batch,
            n_ctx_per_seq=n_ctx,
            max_queue=max_queue,
            prefill_chunk=prefill_chunk,
            token_piece=self.token_bytes,
            token_text=lambda t: self.token_bytes(t).decode("utf-8", "replace"),
        )
        # Short prompts reuse cached prefixes of any length only where the kernels make that exact
        # (server/engine/kernel_check.py): CPU builds, checked on this very model, on the engine
        # thread like every decode (see scheduler.py on OpenMP teams).
        self.short_prompt_reuse = n_gpu_layers == 0 and self._scheduler.call(self._short_cuts_exact)
        self._scheduler.short_prompt_reuse = self.short_prompt_reuse
        if n_gpu_layers == 0 and not self.short_prompt_reuse:
            log.warning("model %s: cut prompts do not decode bit-identically here; prefix reuse stays "
                        "in whole %d-token blocks", name, prefill_chunk)
        # Longer prompts likewise, in chunks of at least CPU_FA_TILE_ROWS rows (the tiled kernel),
        # which needs blocks of at least twice that (slots.tiled_chunk_end).
        self.long_prompt_reuse = (self.short_prompt_reuse and self._scheduler.block >= 2 * CPU_FA_TILE_ROWS
                                  and self._scheduler.call(self._long_cuts_exact))
        self._scheduler.long_prompt_reuse = self.long_prompt_reuse
        if self.short_prompt_reuse and not self.long_prompt_reuse:
            log.warning("model %s: long prompts' prefixes are reused in whole %d-token blocks only (%s)", name,
                        self._scheduler.block, "blocks under 128 tokens" if self._scheduler.block < 2 * CPU_FA_TILE_ROWS else
                        "a long prompt cut two ways into tiled chunks does not decode bit-identically here")
        self._embed_ctx = None
        self._embed_lock = threading.Lock()
        self.load_seconds = time.perf_counter() - t0
        if base is not None:
            base._sharers.append(self)
        self.memory = serving_memory(self.metadata, self.size_bytes, n_ctx, n_slots,
                                     shared_with=base.name if base is not None else None)
        log.info("model %s: %s weights %.1f MiB%s, KV cache %.1f MiB (%d x %d tokens, f16); %.1f MiB in all",
                 name, self.memory["quant"], self.memory["weights_bytes"] / 2**20,
                 f" (shared with {base.name})" if base is not None else "", self.memory["kv_cache_bytes"] / 2**20,
                 n_slots, n_ctx, self.memory["total_bytes"] / 2**20)

    def _short_cuts_exact(self) -> bool:
        probe = self.tokenize(self.template.render(
            [{"role": "user", "content": "Which three cities had the most orders last year?"}],
            add_generation_prompt=True))[: CPU_FA_TILE_ROWS - 1]
        return len(probe) > 2 and short_prompt_cuts_are_exact(self._ctx, self.n_vocab, probe)

    def _long_cuts_exact(self) -> bool:
        # 300 tokens (fewer if a sequence holds fewer), past SPLIT_KV_FREE_END as long prompts are.
        line = "The orders table lists every order with its customer, its date and its total in euros. "
        probe = self.tokenize(self.template.render(
            [{"role": "system", "content": line * 24},
             {"role": "user", "content": "Which customers ordered the most last year?"}],
            add_generation_prompt=True))[: min(300, self.n_ctx)]
        if len(probe) < 3 * CPU_FA_TILE_ROWS:
            log.info("model %s: %d-token sequences are too short to check long prompts' cuts", self.name, self.n_ctx)
            return False
        return long_prompt_cuts_are_exact(self._ctx, self.n_vocab, probe, self._scheduler.block)

    # -- tokens and templates -------------------------------------------------------------

    def tokenize(self, text: str, *, add_special: bool = False, parse_special: bool = True) -> list[int]:
        return self._model.tokenize(text.encode("utf-8"), add_bos=add_special, special=parse_special)

    def detokenize(self, tokens: Sequence[int]) -> str:
        return self._model.detokenize(list(tokens)).decode("utf-8", errors="replace")

    @functools.lru_cache(maxsize=65536)  # noqa: B019 - one engine per process lifetime, vocab-bounded
    def token_bytes(self, token: int) -> bytes:
        """The token's bytes; memoised, since the scheduler asks once per generated token."""
        piece = self._pieces.get(token)
        if piece is None:
            piece = self._pieces[token] = self._token_bytes(token)
        return piece

    def _token_bytes(self, token: int) -> bytes:
        buf = ctypes.create_string_buffer(64)
        n = llama_cpp.llama_token_to_piece(self._vocab, token, buf, len(buf), 0, False)
        if n < 0:  # the piece is longer than the buffer: -n is the size it needs
            buf = ctypes.create_string_buffer(-n)
            n = llama_cpp.llama_token_to_piece(self._vocab, token, buf, len(buf), 0, False)
        return buf.raw[:n]

    def render_chat(self, messages: Sequence[dict], *, add_generation_prompt: bool = True,
                    template_kwargs: Mapping[str, Any] | None = None) -> str:
        return self.template.render(messages, add_generation_prompt=add_generation_prompt, variables=template_kwargs)

    # -- generation -----------------------------------------------------------------------

    async def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationEvent]:
        """Yields TokenEvents then one FinishEvent. Closing the iterator cancels the request."""
        n_prompt = len(request.prompt_tokens)
        if n_prompt == 0:
            raise ContextLengthExceeded("the prompt is empty", param="messages")
        if n_prompt + request.params.max_tokens > self.n_ctx:
            raise ContextLengthExceeded(
                f"This model's maximum context length is {self.n_ctx} tokens. However, you requested "
                f"{n_prompt + request.params.max_tokens} tokens ({n_prompt} in the prompt, "
                f"{request.params.max_tokens} for the completion). Please reduce the prompt or max_tokens.",
                param="max_tokens",
            )
        job = self._scheduler.submit(request)
        try:
            while True:
                event = await job.queue.get()
                if isinstance(event, BaseException):
                    raise event
                yield event
                if isinstance(event, FinishEvent):
                    return
        finally:
            self._scheduler.cancel(job)

    # -- embeddings -----------------------------------------------------------------------

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        # On the engine thread, between decode steps (scheduler.py: one decoding thread per process).
        texts = list(texts)
        return await asyncio.wrap_future(self._scheduler.submit_call(lambda: self._embed_sync(texts)))

    def _embed_sync(self, texts: list[str]) -> list[list[float]]:
        with self._embed_lock:
            ctx = self._embedding_context()
            mem = llama_cpp.llama_get_memory(ctx)
            n_embd = self._model.n_embd()
            out = []
            for text in texts:
                tokens = self.tokenize(text, add_special=True)[: self.n_ctx]
                if not tokens:
                    raise ContextLengthExceeded("cannot embed an empty input", param="input")
                llama_cpp.llama_memory_clear(mem, True)
                ids = (llama_cpp.llama_token * len(tokens))(*tokens)  # kept alive across the decode
                batch = llama_cpp.llama_batch_get_one(ids, len(tokens))
                rc = llama_cpp.llama_decode(ctx, batch)
                if rc != 0:
                    raise EngineFailure(f"embedding decode failed (llama_decode returned {rc})")
                ptr = llama_cpp.llama_get_embeddings_seq(ctx, 0)
                vec = np.ctypeslib.as_array(ptr, shape=(n_embd,)).astype(np.float64)
                norm = np.linalg.norm(vec)
                out.append((vec / norm if norm else vec).tolist())
            return out

    def _embedding_context(self):
        if self._embed_ctx is None:
            params = llama_cpp.llama_context_default_params()
            params.n_ctx = self.n_ctx
            params.n_batch = self.n_ctx
            params.n_ubatch = self.n_ctx
            params.n_seq_max = 1
            params.embeddings = True
            params.pooling_type = llama_cpp.LLAMA_POOLING_TYPE_MEAN
            params.n_threads = self._n_threads
            params.n_threads_batch = self._n_threads
            self._embed_ctx = llama_cpp.llama_init_from_model(self._model.model, params)
            if not self._embed_ctx:
                raise EngineFailure("could not create the embedding context")
        return self._embed_ctx

    # -- housekeeping ---------------------------------------------------------------------

    def stats(self) -> EngineStats:
        s = self._scheduler
        return EngineStats(
            slots_total=len(s.slots),
            slots_in_use=s.slots_in_use,
            queue_depth=s.queue_depth,
            prefix_cache_hits=s.prefix_hits,
            prefix_cache_lookups=s.prefix_lookups,
            kv_cache_usage=s.kv_cache_usage,
            extra={"prefix_cache_reused_tokens": float(s.reused_tokens)},
        )

    def close(self) -> None:
        for sharer in self._sharers:  # contexts on these weights go before the weights
            sharer.close()
        with contextlib.suppress(Exception):
            self._scheduler.close()
        if self._embed_ctx:
            llama_cpp.llama_free(self._embed_ctx)
            self._embed_ctx = None
        if self._ctx:
            llama_cpp.llama_free(self._ctx)
            self._ctx = None
        if self._owns_model:
            self._model.close()
