"""The per-token SSE fast path renders exactly what the pydantic models render."""

import json

import pytest

from server.protocol.openai import ChatChunkChoice, ChatCompletionChunk, ChatDelta, Completion, CompletionChoice
from server.services.generation import TextChunkTemplate, sse

TEXTS = ["", "hello", ' "quoted" \\ back', "line\nbreak\ttab\r", "naïve – 日本語 🙂", "\x00\x1f\x7f", "@@", "}{]["]


def chat(text):
    return ChatCompletionChunk(id="chatcmpl-1", created=1, model="m",
                               choices=[ChatChunkChoice(delta=ChatDelta(content=text))])


def completion(text):
    return Completion(id="cmpl-1", created=1, model="m", choices=[CompletionChoice(text=text, finish_reason=None)])


@pytest.mark.parametrize("build", [chat, completion])
@pytest.mark.parametrize("text", TEXTS)
def test_template_matches_pydantic(build, text):
    fast = TextChunkTemplate(build)(text)
    slow = sse(build(text))
    assert fast.startswith("data: ") and fast.endswith("\n\n")
    assert json.loads(fast[6:]) == json.loads(slow[6:])


def test_template_needs_exactly_one_slot():
    with pytest.raises(ValueError):
        TextChunkTemplate(lambda text: Completion(id="x", created=1, model="m", choices=[
            CompletionChoice(text=text, finish_reason=None), CompletionChoice(text=text, finish_reason=None)]))
