"""A scripted engine for unit tests of the HTTP plumbing (no model involved)."""

from __future__ import annotations

import asyncio
from typing import Sequence

from server.engine.base import EngineStats, FinishEvent, GenerationRequest, TokenEvent


class FakeEngine:
    """Echoes a fixed reply word by word. Tokens are characters, so lengths are predictable."""

    def __init__(self, name: str = "fake", reply: str = "Hello from the fake engine.", n_ctx: int = 256,
                 fail_with: Exception | None = None, delay_s: float = 0.0):
        self.name = name
        self.n_ctx = n_ctx
        self.load_seconds = 0.01
        self.reply = reply
        self.fail_with = fail_with
        self.delay_s = delay_s
        self.requests: list[GenerationRequest] = []
        self.template_kwargs: list[dict | None] = []  # what each render_chat call was given
        self.cancelled = 0
        self.closed = False

    def tokenize(self, text: str, *, add_special: bool = False, parse_special: bool = True) -> list[int]:
        return [ord(c) for c in text]

    def detokenize(self, tokens: Sequence[int]) -> str:
        return "".join(chr(t) for t in tokens)

    def render_chat(self, messages, *, add_generation_prompt: bool = True, template_kwargs=None) -> str:
        self.template_kwargs.append(dict(template_kwargs) if template_kwargs is not None else None)
        text = "".join(f"<{m['role']}>{m['content']}" for m in messages)
        return text + ("<assistant>" if add_generation_prompt else "")

    async def generate(self, request: GenerationRequest):
        self.requests.append(request)
        if self.fail_with is not None:
            raise self.fail_with
        words = self.reply.split(" ")
        n = 0
        try:
            for i, word in enumerate(words[: request.params.max_tokens]):
                if self.delay_s:
                    await asyncio.sleep(self.delay_s)
                piece = word if i == 0 else " " + word
                n += 1
                yield TokenEvent(text=piece, token_ids=(i,), logprob=-0.5 if request.params.logprobs else None)
            reason = "length" if len(words) > request.params.max_tokens else "stop"
            yield FinishEvent(reason, len(request.prompt_tokens), n)
        except (GeneratorExit, asyncio.CancelledError):  # closed by the consumer, or its task cancelled
            self.cancelled += 1
            raise

    async def embed(self, texts):
        return [[float(len(t)), 1.0] for t in texts]

    def stats(self) -> EngineStats:
        return EngineStats(slots_total=1)

    def close(self) -> None:
        self.closed = True
