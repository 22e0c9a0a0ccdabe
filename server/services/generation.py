"""What chat and completions share: request → SamplingParams, running a generation, SSE framing."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import AsyncIterator

from llama_cpp.llama_grammar import JSON_GBNF, json_schema_to_gbnf

from ..engine.base import Engine, FinishEvent, GenerationRequest, SamplingParams, TokenEvent
from ..errors import ContextLengthExceeded, InvalidRequest, UnsupportedParameter
from ..limits import charge_tokens
from ..metrics import Metrics
from ..protocol.openai import ResponseFormat, SamplingFields

log = logging.getLogger("hearth.generation")

# When a request sets no max_tokens, generate until EOS or the context ends, but no further than
# this, so a model that never emits EOS cannot hold a slot for its whole context.
DEFAULT_MAX_TOKENS = 1024
# How often a non-streaming request checks whether its client is still there, in seconds.
DISCONNECT_POLL_S = 0.5


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def grammar_for(response_format: ResponseFormat | None) -> str | None:
    """GBNF that forces the output to parse as JSON (and match the schema, when one is given)."""
    if response_format is None or response_format.type == "text":
        return None
    if response_format.type == "json_object":
        return JSON_GBNF
    spec = response_format.json_schema
    if spec is None or spec.schema_ is None:
        raise InvalidRequest("response_format json_schema needs a `json_schema.schema`", param="response_format")
    try:
        return json_schema_to_gbnf(json.dumps(spec.schema_))
    except Exception as exc:  # the converter raises plain errors on schemas it cannot express
        raise InvalidRequest(f"unsupported JSON schema: {exc}", param="response_format") from exc


def sampling_params(
    req: SamplingFields,
    *,
    engine: Engine,
    n_prompt: int,
    max_tokens: int | None,
    logprobs: bool = False,
    top_logprobs: int = 0,
    grammar: str | None = None,
) -> SamplingParams:
    if req.n != 1:
        raise UnsupportedParameter("only n=1 is supported", param="n")
    room = engine.n_ctx - n_prompt
    if room <= 0:
        raise ContextLengthExceeded(
            f"This model's maximum context length is {engine.n_ctx} tokens. However, your messages "
            f"resulted in {n_prompt} tokens. Please reduce the length of the messages.",
            param="messages",
        )
    if max_tokens is None:
        max_tokens = min(room, DEFAULT_MAX_TOKENS)
    return SamplingParams(
        max_tokens=max_tokens,
        temperature=req.temperature,
        top_p=req.top_p,
        top_k=req.top_k,
        min_p=req.min_p,
        seed=req.seed,
        stop=req.stop_list(),
        presence_penalty=req.presence_penalty,
        frequency_penalty=req.frequency_penalty,
        repeat_penalty=req.repeat_penalty,
        logprobs=logprobs,
        top_logprobs=top_logprobs,
        grammar=grammar,
    )


@dataclass
class GenerationResult:
    text: str = ""
    tokens: list[TokenEvent] = field(default_factory=list)
    finish: FinishEvent | None = None
    timed_out: bool = False  # stopped at the caller's deadline; `text` holds what came before it


async def stream_events(
    engine: Engine, request: GenerationRequest, metrics: Metrics | None, model: str
) -> AsyncIterator[TokenEvent | FinishEvent]:
    """Runs one generation; closing this iterator cancels it in the engine."""
    started = time.perf_counter()
    first = None
    async with aclosing(engine.generate(request)) as events:
        async for event in events:
            if isinstance(event, TokenEvent) and first is None:
                first = time.perf_counter()
            if isinstance(event, FinishEvent):  # to the API key's tokens per minute (server/limits.py)
                charge_tokens(event.prompt_tokens + event.completion_tokens)
            if isinstance(event, FinishEvent) and metrics is not None:
                decode = time.perf_counter() - (first or started)
                metrics.record_generation(
                    model, event.prompt_tokens, event.completion_tokens, event.cached_tokens,
                    event.time_to_first_token_s, decode,
                )
            yield event


async def token_groups(
    events: AsyncIterator[TokenEvent | FinishEvent], interval: int
) -> AsyncIterator[list[TokenEvent] | FinishEvent]:
    """Groups a stream's tokens into SSE chunks: everything up to the first token with text goes
    out at once (time to first token is untouched), then `interval` tokens a chunk, and whatever
    is pending when the finish comes. Each chunk costs the server a socket write and the client
    an SSE parse and a JSON decode (0.3-0.8 ms a chunk with the official client on this 2-core
    box), work that competes with the decode threads; `interval` > 1 divides it, for at most
    interval-1 tokens of delay. (A token may carry no text yet: a partial UTF-8 character, or
    text held back while it might begin a stop string.)"""
    pending: list[TokenEvent] = []
    shown = False  # a token with text has gone out
    async for event in events:
        if isinstance(event, FinishEvent):
            if pending:
                yield pending
            yield event
            return
        pending.append(event)
        if (not shown and event.text) or len(pending) >= interval:
            shown = shown or any(token.text for token in pending)
            yield pending
            pending = []
    if pending:
        yield pending


async def run_to_end(engine: Engine, request: GenerationRequest, metrics: Metrics | None, model: str,
                     is_disconnected=None, timeout_s: float | None = None) -> GenerationResult:
    """Collects a whole generation. Stops early (and frees the slot) if the client went away, or
    after `timeout_s` seconds (then `timed_out` is set and `text` is what came before).

    The disconnect check runs beside the generation every half second, not between tokens:
    during a long prompt prefill there are no tokens, and a client that gave up must still
    free its slot at once.
    """
    result = GenerationResult()
    parts: list[str] = []

    async def consume() -> None:
        async with aclosing(stream_events(engine, request, metrics, model)) as events:
            async for event in events:
                if isinstance(event, TokenEvent):
                    parts.append(event.text)
                    result.tokens.append(event)
                else:
                    result.finish = event

    task = asyncio.ensure_future(consume())
    deadline = None if timeout_s is None else time.perf_counter() + max(timeout_s, 0.0)
    try:
        while not task.done():
            wait = DISCONNECT_POLL_S if deadline is None else min(DISCONNECT_POLL_S, max(deadline - time.perf_counter(), 0))
            await asyncio.wait({task}, timeout=wait)
            if not task.done() and deadline is not None and time.perf_counter() >= deadline:
                log.info("deadline of %.1f s reached; cancelling %s", timeout_s, request.request_id)
                result.timed_out = True
                task.cancel()
                break
            if not task.done() and is_disconnected is not None and await is_disconnected():
                log.info("client disconnected; cancelling %s", request.request_id)
                task.cancel()
                break
        with contextlib.suppress(asyncio.CancelledError):
            await task  # re-raises the engine's errors; closing the stream cancels the request
    finally:
        if not task.done():
            task.cancel()
    result.text = "".join(parts)
    return result


def prefix_boundary(engine: Engine, prompt_text: str, tokens: list[int], prefix_text: str) -> int | None:
    """How many of `tokens` (the tokenized `prompt_text`) spell `prefix_text`, the part later
    requests share (GenerationRequest.prefix_boundary); None when the prompt does not start with
    it or the tokenizer merges across it. Trailing whitespace often merges with what follows
    ("\n\n" + "Question" → "\n" + "\nQuestion"), so the cut falls before it when it must."""
    for text in dict.fromkeys((prefix_text, prefix_text.rstrip())):
        if not text or not prompt_text.startswith(text):
            continue
        head = engine.tokenize(text, add_special=False, parse_special=True)
        n = len(head)
        if 0 < n < len(tokens) and list(tokens[:n]) == head:
            return n
    return None


PROMPT_SENTINEL = "@@hearth-rest-of-prompt@@"


def rendered_before(engine: Engine, messages: list[dict], marker: str, template_kwargs: dict | None = None) -> str:
    """`messages` rendered by the chat template (no generation prompt), up to `marker`: the prompt
    text that any request whose messages match these up to the marker starts with."""
    rendered = engine.render_chat(messages, add_generation_prompt=False, template_kwargs=template_kwargs)
    return rendered[: max(rendered.find(marker), 0)]


def chat_prefix_text(engine: Engine, messages: list[dict], template_kwargs: dict | None = None) -> str:
    """The rendered prompt up to the first user turn's content: the leading system messages (or the
    template's default system prompt) and the user turn's header, which every conversation with
    that system prompt shares."""
    lead = []
    for message in messages:
        if message.get("role") != "system":
            break
        lead.append(message)
    if len(lead) == len(messages) or messages[len(lead)].get("role") != "user":
        return ""
    return rendered_before(engine, [*lead, {"role": "user", "content": PROMPT_SENTINEL}], PROMPT_SENTINEL,
                           template_kwargs)


def sse(payload) -> str:
    data = payload if isinstance(payload, str) else payload.model_dump_json(exclude_none=False)
    return f"data: {data}\n\n"


SSE_DONE = "data: [DONE]\n\n"

_SLOT = "@@hearth-text-slot@@"


class TextChunkTemplate:
    """SSE lines for the one chunk shape a stream repeats per token: the same payload except for
    one text field. The payload is rendered once through its pydantic model with a placeholder,
    then each token costs a string join and a json.dumps of its text, instead of building and
    serialising pydantic models (about 40 µs a token, on the event loop that shares the cores
    with the decode threads)."""

    def __init__(self, build):
        rendered = build(_SLOT).model_dump_json(exclude_none=False)
        slot = json.dumps(_SLOT)
        if rendered.count(slot) != 1:
            raise ValueError("the chunk template must contain its text slot exactly once")
        before, after = rendered.split(slot)
        self._before = "data: " + before
        self._after = after + "\n\n"

    def __call__(self, text: str) -> str:
        return self._before + json.dumps(text, ensure_ascii=False) + self._after
