"""Legacy text completions (`/v1/completions`): raw prompt in, text out, optional echo."""

from __future__ import annotations

from contextlib import aclosing
from typing import AsyncIterator

from ..engine.base import Engine, FinishEvent, GenerationRequest, TokenEvent
from ..error_handlers import stream_error_event
from ..errors import InvalidRequest, UnsupportedParameter
from ..metrics import Metrics
from ..protocol.openai import Completion, CompletionChoice, CompletionLogprobs, CompletionRequest, Usage
from .generation import SSE_DONE, TextChunkTemplate, new_id, run_to_end, sampling_params, sse, stream_events, token_groups
from .models import ModelPool


class CompletionService:
    def __init__(self, pool: ModelPool, metrics: Metrics | None = None, stream_interval: int = 1):
        self.pool = pool
        self.metrics = metrics
        self.stream_interval = stream_interval

    def prepare(self, req: CompletionRequest) -> tuple[Engine, str, GenerationRequest, str]:
        if req.suffix:
            raise UnsupportedParameter("suffix (fill-in-the-middle) is not supported", param="suffix")
        if req.best_of not in (None, 1):
            raise UnsupportedParameter("best_of is not supported", param="best_of")
        engine = self.pool.get(req.model)
        prompt = req.prompt
        if isinstance(prompt, list) and prompt and all(isinstance(p, int) for p in prompt):
            tokens, prompt_text = list(prompt), engine.detokenize(prompt)
        elif isinstance(prompt, list):
            if len(prompt) != 1:
                raise UnsupportedParameter("only one prompt per request is supported", param="prompt")
            prompt_text = prompt[0]
            tokens = engine.tokenize(prompt_text, add_special=True)
        else:
            prompt_text = prompt
            tokens = engine.tokenize(prompt_text, add_special=True)
        if not tokens:
            raise InvalidRequest("the prompt is empty", param="prompt")
        params = sampling_params(
            req, engine=engine, n_prompt=len(tokens), max_tokens=req.max_tokens or 16,
            logprobs=req.logprobs is not None, top_logprobs=req.logprobs or 0,
        )
        request_id = new_id("cmpl")
        return engine, request_id, GenerationRequest(tuple(tokens), params, request_id), prompt_text

    async def complete(self, req: CompletionRequest, is_disconnected=None) -> Completion:
        engine, request_id, gen, prompt_text = self.prepare(req)
        result = await run_to_end(engine, gen, self.metrics, engine.name, is_disconnected)
        finish = result.finish or FinishEvent("stop", len(gen.prompt_tokens), len(result.tokens))
        text = (prompt_text if req.echo else "") + result.text
        logprobs = _logprobs(engine, result.tokens, len(prompt_text) if req.echo else 0) if req.logprobs is not None else None
        return Completion(
            id=request_id, model=engine.name,
            choices=[CompletionChoice(text=text, finish_reason=finish.finish_reason, logprobs=logprobs)],
            usage=Usage(prompt_tokens=finish.prompt_tokens, completion_tokens=finish.completion_tokens,
                        total_tokens=finish.prompt_tokens + finish.completion_tokens),
        )

    async def stream(self, req: CompletionRequest) -> AsyncIterator[str]:
        engine, request_id, gen, prompt_text = self.prepare(req)
        include_usage = bool(req.stream_options and req.stream_options.include_usage)
        return self._stream(engine, request_id, gen, prompt_text if req.echo else "", req.logprobs, include_usage)

    async def _stream(self, engine, request_id, gen, echo_text, logprobs, include_usage) -> AsyncIterator[str]:
        def chunk(text: str, finish: str | None = None, lp=None) -> str:
            return sse(Completion(id=request_id, model=engine.name,
                                  choices=[CompletionChoice(text=text, finish_reason=finish, logprobs=lp)]))

        text_chunk = TextChunkTemplate(lambda text: Completion(
            id=request_id, model=engine.name, choices=[CompletionChoice(text=text, finish_reason=None)]))
        if echo_text:
            yield text_chunk(echo_text)
        try:
            events = token_groups(stream_events(engine, gen, self.metrics, engine.name), self.stream_interval)
            async with aclosing(events):
                async for event in events:
                    if isinstance(event, list):
                        text = "".join(token.text for token in event)
                        if logprobs is not None:
                            yield chunk(text, lp=_logprobs(engine, event, 0))
                        else:
                            yield text_chunk(text)
                    else:
                        yield chunk("", finish=event.finish_reason)
                        if include_usage:
                            usage = Usage(prompt_tokens=event.prompt_tokens, completion_tokens=event.completion_tokens,
                                          total_tokens=event.prompt_tokens + event.completion_tokens)
                            yield sse(Completion(id=request_id, model=engine.name, choices=[], usage=usage))
        except Exception as exc:
            yield stream_error_event(exc)
        yield SSE_DONE


def _logprobs(engine: Engine, events: list[TokenEvent], offset: int) -> CompletionLogprobs:
    out = CompletionLogprobs()
    for ev in events:
        if ev.logprob is None:
            continue
        token = engine.detokenize(ev.token_ids)
        out.tokens.append(token)
        out.token_logprobs.append(ev.logprob)
        out.top_logprobs.append({t.token: t.logprob for t in ev.top_logprobs} or None)
        out.text_offset.append(offset)
        offset += len(token)
    return out
