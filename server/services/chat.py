"""Chat completions: messages → the model's chat template → generation → OpenAI response.

Tool calling: with `tool_choice` "required" or a named function, the arguments are generated
under a JSON-schema grammar, so they always parse and match the function's parameters. With
"auto" a 135M-class model cannot decide reliably whether to call a tool on a template that has
no tool syntax, so that is refused with a clear 400 rather than guessed.
"""

from __future__ import annotations

import json
import logging
from contextlib import aclosing
from typing import AsyncIterator

from ..engine.base import Engine, FinishEvent, GenerationRequest, TokenEvent
from ..engine.template import RESERVED_VARIABLES
from ..error_handlers import stream_error_event
from ..errors import InvalidRequest, UnsupportedParameter
from ..metrics import Metrics
from ..protocol.openai import (
    AssistantMessage,
    ChatChoice,
    ChatChunkChoice,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatDelta,
    ChoiceLogprobs,
    JsonSchemaFormat,
    ResponseFormat,
    TokenLogprob,
    TopLogprobOut,
    Usage,
)
from .generation import (
    SSE_DONE, TextChunkTemplate, chat_prefix_text, grammar_for, new_id, prefix_boundary, run_to_end, sampling_params, sse,
    stream_events, token_groups,
)
from .models import ModelPool

log = logging.getLogger("hearth.chat")


class ChatService:
    def __init__(self, pool: ModelPool, metrics: Metrics | None = None, stream_interval: int = 1):
        self.pool = pool
        self.metrics = metrics
        self.stream_interval = stream_interval

    def prepare(self, req: ChatCompletionRequest) -> tuple[Engine, str, GenerationRequest, dict | None]:
        engine = self.pool.get(req.model)
        tool = _forced_tool(req)
        messages = _template_messages(req, tool)
        kwargs = _template_kwargs(req)
        prompt = engine.render_chat(messages, add_generation_prompt=True, template_kwargs=kwargs)
        tokens = engine.tokenize(prompt, add_special=False, parse_special=True)
        response_format = req.response_format
        if tool is not None:
            response_format = ResponseFormat(
                type="json_schema",
                json_schema=JsonSchemaFormat(name=tool["name"], schema=tool.get("parameters") or {"type": "object"}),
            )
        params = sampling_params(
            req,
            engine=engine,
            n_prompt=len(tokens),
            max_tokens=req.max_completion_tokens or req.max_tokens,
            logprobs=req.logprobs,
            top_logprobs=req.top_logprobs or 0,
            grammar=grammar_for(response_format),
        )
        request_id = new_id("chatcmpl")
        boundary = prefix_boundary(engine, prompt, tokens, chat_prefix_text(engine, messages, kwargs))
        return engine, request_id, GenerationRequest(tuple(tokens), params, request_id, boundary), tool

    async def complete(self, req: ChatCompletionRequest, is_disconnected=None) -> ChatCompletion:
        engine, request_id, gen, tool = self.prepare(req)
        result = await run_to_end(engine, gen, self.metrics, engine.name, is_disconnected)
        finish = result.finish or FinishEvent("stop", len(gen.prompt_tokens), len(result.tokens))
        message = AssistantMessage(content=result.text)
        reason = finish.finish_reason
        if tool is not None:
            message = AssistantMessage(content=None, tool_calls=[_tool_call(tool["name"], result.text)])
            reason = "tool_calls" if reason == "stop" else reason
        return ChatCompletion(
            id=request_id,
            model=engine.name,
            choices=[
                ChatChoice(
                    message=message,
                    finish_reason=reason,
                    logprobs=_logprobs(engine, result.tokens) if req.logprobs else None,
                )
            ],
            usage=_usage(finish),
        )

    async def stream(self, req: ChatCompletionRequest) -> AsyncIterator[str]:
        """SSE lines. Validation errors are raised before the first byte, so they get a status."""
        engine, request_id, gen, tool = self.prepare(req)
        include_usage = bool(req.stream_options and req.stream_options.include_usage)
        return self._stream(engine, request_id, gen, tool, req.logprobs, include_usage)

    async def _stream(self, engine, request_id, gen, tool, want_logprobs, include_usage) -> AsyncIterator[str]:
        def chunk(delta: ChatDelta, finish: str | None = None, logprobs=None) -> str:
            return sse(ChatCompletionChunk(
                id=request_id, model=engine.name,
                choices=[ChatChunkChoice(delta=delta, finish_reason=finish, logprobs=logprobs)],
            ))

        yield chunk(ChatDelta(role="assistant", content="" if tool is None else None))
        content_chunk = TextChunkTemplate(lambda text: ChatCompletionChunk(
            id=request_id, model=engine.name, choices=[ChatChunkChoice(delta=ChatDelta(content=text))]))
        arguments = []
        try:
            events = token_groups(stream_events(engine, gen, self.metrics, engine.name), self.stream_interval)
            async with aclosing(events):
                async for event in events:
                    if isinstance(event, list):
                        text = "".join(token.text for token in event)
                        if tool is not None:
                            arguments.append(text)
                            continue
                        if want_logprobs:
                            yield chunk(ChatDelta(content=text), logprobs=_logprobs(engine, event))
                        else:
                            yield content_chunk(text)
                    else:
                        reason = event.finish_reason
                        if tool is not None:
                            call = _tool_call(tool["name"], "".join(arguments), index=0)
                            yield chunk(ChatDelta(tool_calls=[call]))
                            reason = "tool_calls" if reason == "stop" else reason
                        yield chunk(ChatDelta(), finish=reason)
                        if include_usage:
                            yield sse(ChatCompletionChunk(id=request_id, model=engine.name, choices=[],
                                                          usage=_usage(event)))
        except Exception as exc:  # the status line is already sent: report the error in-band
            yield stream_error_event(exc)
        yield SSE_DONE


def _template_messages(req: ChatCompletionRequest, tool: dict | None) -> list[dict]:
    out = []
    for m in req.messages:
        try:
            text = m.text()
        except ValueError as exc:
            raise UnsupportedParameter(str(exc), param="messages") from exc
        role = "system" if m.role == "developer" else m.role
        if role == "tool":
            role, text = "user", f"Result of tool call {m.tool_call_id or ''}: {text}"
        if role == "assistant" and m.tool_calls:
            text = text or json.dumps([c.get("function", c) for c in m.tool_calls])
        out.append({"role": role, "content": text})
    if tool is not None:
        note = (
            f"Call the function `{tool['name']}`"
            + (f" ({tool['description']})" if tool.get("description") else "")
            + ". Reply with only its JSON arguments matching this schema: "
            + json.dumps(tool.get("parameters") or {"type": "object"})
        )
        if out and out[0]["role"] == "system":
            out[0] = {"role": "system", "content": out[0]["content"] + "\n\n" + note}
        else:
            out.insert(0, {"role": "system", "content": note})
    return out


def _template_kwargs(req: ChatCompletionRequest) -> dict | None:
    """vLLM's chat_template_kwargs: extra template variables ({"enable_thinking": false}), passed
    through whatever their names, except those the renderer sets itself."""
    kwargs = req.chat_template_kwargs
    if not kwargs:
        return None
    clash = sorted(RESERVED_VARIABLES.intersection(kwargs))
    if clash:
        raise InvalidRequest(f"chat_template_kwargs may not set {', '.join(clash)}: the server sets "
                             f"{'it' if len(clash) == 1 else 'them'} itself", param="chat_template_kwargs")
    return dict(kwargs)


def _forced_tool(req: ChatCompletionRequest) -> dict | None:
    """The function the model must call, or None when tools are absent or disabled."""
    if not req.tools or req.tool_choice == "none":
        return None
    functions = [t.get("function", {}) for t in req.tools if t.get("type") == "function"]
    if not functions or any("name" not in f for f in functions):
        raise InvalidRequest("every tool needs type 'function' and a function name", param="tools")
    choice = req.tool_choice
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        match = [f for f in functions if f["name"] == name]
        if not match:
            raise InvalidRequest(f"tool_choice names an unknown function {name!r}", param="tool_choice")
        return match[0]
    if choice == "required" and len(functions) == 1:
        return functions[0]
    raise UnsupportedParameter(
        "tool_choice 'auto' (and 'required' with several tools) is not supported by this model: pass "
        "tool_choice={'type': 'function', 'function': {'name': ...}} to force a call, or 'none'",
        param="tool_choice",
    )


def _tool_call(name: str, arguments: str, index: int | None = None) -> dict:
    call = {"id": new_id("call"), "type": "function", "function": {"name": name, "arguments": arguments}}
    if index is not None:
        call["index"] = index
    return call


def _logprobs(engine: Engine, events: list[TokenEvent]) -> ChoiceLogprobs:
    content = []
    for ev in events:
        if ev.logprob is None:
            continue
        token_text = engine.detokenize(ev.token_ids)
        content.append(TokenLogprob(
            token=token_text, logprob=ev.logprob, bytes=list(token_text.encode()),
            top_logprobs=[TopLogprobOut(token=t.token, logprob=t.logprob, bytes=list(t.bytes))
                          for t in ev.top_logprobs],
        ))
    return ChoiceLogprobs(content=content)


def _usage(finish: FinishEvent) -> Usage:
    return Usage(
        prompt_tokens=finish.prompt_tokens,
        completion_tokens=finish.completion_tokens,
        total_tokens=finish.prompt_tokens + finish.completion_tokens,
        prompt_tokens_details={"cached_tokens": finish.cached_tokens},
    )
