"""The engine interface the HTTP layer talks to.

Routes and services never touch llama-cpp-python directly: they build a `GenerationRequest`
and iterate `Engine.generate()`. An engine can therefore swap its scheduler (one request at a
time, or continuous batching over many sequences) without any route changing.

Cancellation contract: closing the async iterator returned by `generate()` (``aclose()``, which
also happens when the consumer is garbage-collected or a client disconnects) must stop the
generation and free its slot and KV cells before ``aclose()`` returns or very soon after.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Mapping, Protocol, Sequence, runtime_checkable


@dataclass(frozen=True)
class SamplingParams:
    max_tokens: int = 256
    temperature: float = 0.8
    top_p: float = 0.95
    top_k: int = 40
    min_p: float = 0.05
    seed: int | None = None
    stop: tuple[str, ...] = ()
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    repeat_penalty: float = 1.0
    # Return the chosen token's log-probability, and this many alternatives per position.
    logprobs: bool = False
    top_logprobs: int = 0
    # A llama.cpp GBNF grammar the output must match (JSON schema, SQL over a live schema).
    grammar: str | None = None
    # Teacher forcing: emit exactly these tokens (no sampling), then stop. With `logprobs`, each
    # comes with the model's log-probability of it: a score of a given text, spelled as the
    # tokenizer spells it (tests/server/engine/test_forced_tokens.py).
    forced_tokens: tuple[int, ...] = ()


@dataclass(frozen=True)
class GenerationRequest:
    prompt_tokens: tuple[int, ...]
    params: SamplingParams
    request_id: str = ""
    # Tokens of the prompt that later requests are expected to share (a system prompt, a database
    # schema): the engine cuts its prefill chunks there so the whole prefix can be reused exactly.
    prefix_boundary: int | None = None


@dataclass(frozen=True)
class TopLogprob:
    token: str
    logprob: float
    bytes: tuple[int, ...] = ()


@dataclass(frozen=True)
class TokenEvent:
    """One piece of generated text (a token, or several when UTF-8 needed them joined)."""

    text: str
    token_ids: tuple[int, ...] = ()
    logprob: float | None = None
    top_logprobs: tuple[TopLogprob, ...] = ()


@dataclass(frozen=True)
class FinishEvent:
    finish_reason: str  # "stop" (EOS or a stop string) or "length" (max_tokens reached)
    prompt_tokens: int
    completion_tokens: int
    # Prompt tokens whose KV cells were reused from the prefix cache (0 without a cache).
    cached_tokens: int = 0
    time_to_first_token_s: float | None = None


GenerationEvent = TokenEvent | FinishEvent


@dataclass
class EngineStats:
    """Gauges for /metrics."""

    slots_total: int = 1
    slots_in_use: int = 0
    queue_depth: int = 0
    prefix_cache_hits: int = 0
    prefix_cache_lookups: int = 0
    # KV cells held by running sequences (computed, or prompt scheduled to be) / all KV cells, 0-1.
    # Idle slots' cached prefixes are not counted: a new request may evict them.
    kv_cache_usage: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)


@runtime_checkable
class Engine(Protocol):
    """One loaded model."""

    name: str
    n_ctx: int
    load_seconds: float

    def tokenize(self, text: str, *, add_special: bool = False, parse_special: bool = True) -> list[int]: ...

    def detokenize(self, tokens: Sequence[int]) -> str: ...

    def render_chat(self, messages: Sequence[dict], *, add_generation_prompt: bool = True,
                    template_kwargs: Mapping[str, Any] | None = None) -> str:
        """Apply the model's chat template (the GGUF's own unless configured otherwise), with
        `template_kwargs` as extra template variables (chat_template_kwargs, enable_thinking)."""
        ...

    def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationEvent]: ...

    async def embed(self, texts: Sequence[str]) -> list[list[float]]: ...

    def stats(self) -> EngineStats: ...

    def close(self) -> None: ...
