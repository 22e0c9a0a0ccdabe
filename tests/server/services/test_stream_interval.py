"""`stream_interval`: tokens per streamed chunk after the first, as vLLM's --stream-interval.

The grouping is checked as a pure function, then through the app with the official client: on
the fake engine (chunk counts, logprobs per token) and on the real embedded model (the grouped
stream spells the same greedy text as the per-token stream and the non-streamed reply)."""

import asyncio
import math

import pytest
from fastapi.testclient import TestClient
from openai import OpenAI

from server.app import create_app
from server.engine.base import FinishEvent, TokenEvent
from server.services.generation import token_groups
from server.settings import ServerSettings
from tests.fakes import FakeEngine


async def _events(n: int, finish: bool = True):
    for i in range(n):
        yield TokenEvent(text=f"t{i}", token_ids=(i,))
    if finish:
        yield FinishEvent("length", 3, n)


def _grouped(n: int, interval: int, finish: bool = True) -> list:
    async def collect():
        return [g if isinstance(g, FinishEvent) else [t.text for t in g]
                async for g in token_groups(_events(n, finish), interval)]
    return asyncio.run(collect())


@pytest.mark.parametrize("n, interval, sizes", [
    (5, 1, [1, 1, 1, 1, 1]),
    (7, 3, [1, 3, 3]),
    (8, 3, [1, 3, 3, 1]),  # the pending tail is flushed before the finish
    (1, 4, [1]),
    (0, 4, []),
])
def test_first_token_alone_then_interval_sized_groups(n, interval, sizes):
    out = _grouped(n, interval)
    assert isinstance(out[-1], FinishEvent)
    groups = out[:-1]
    assert [len(g) for g in groups] == sizes
    assert [t for g in groups for t in g] == [f"t{i}" for i in range(n)]


def test_tokens_without_text_wait_for_the_first_token_with_text():
    async def events():
        for text in ["", "", "Hello", " a", " b", " c"]:
            yield TokenEvent(text=text, token_ids=(0,))

    async def collect():
        return [[t.text for t in g] async for g in token_groups(events(), 3)]

    assert asyncio.run(collect()) == [["", "", "Hello"], [" a", " b", " c"]]


def test_a_stream_that_ends_without_finish_still_flushes():
    assert [len(g) for g in _grouped(6, 4, finish=False)] == [1, 4, 1]


def _client(engine, interval: int) -> OpenAI:
    app = create_app(ServerSettings(databases=[], stream_interval=interval), engine)
    return OpenAI(base_url="http://testserver/v1", api_key="unused", http_client=TestClient(app).__enter__())


REPLY = "one two three four five six seven eight nine ten"


@pytest.mark.parametrize("interval", [1, 4])
def test_chat_chunks_carry_interval_tokens_with_per_token_logprobs(interval):
    client = _client(FakeEngine(reply=REPLY), interval)
    chunks = list(client.chat.completions.create(
        model="fake", messages=[{"role": "user", "content": "count"}], max_tokens=50, stream=True,
        logprobs=True, stream_options={"include_usage": True}))
    content = [c for c in chunks if c.choices and c.choices[0].delta.content]
    assert "".join(c.choices[0].delta.content for c in content) == REPLY
    assert len(content) == 1 + math.ceil(9 / interval)
    assert [len(c.choices[0].logprobs.content) for c in content][1:2] == [min(interval, 9)]
    assert sum(len(c.choices[0].logprobs.content) for c in content) == 10
    assert chunks[-1].usage.completion_tokens == 10


def test_completion_chunks_carry_interval_tokens():
    client = _client(FakeEngine(reply=REPLY), 4)
    chunks = list(client.completions.create(model="fake", prompt="count", max_tokens=50, stream=True))
    texts = [c.choices[0].text for c in chunks if c.choices and c.choices[0].text]
    assert "".join(texts) == REPLY and len(texts) == 1 + math.ceil(9 / 4)


def test_interval_is_validated():
    with pytest.raises(ValueError):
        ServerSettings(stream_interval=0)


def test_real_model_grouped_stream_spells_the_greedy_reply(embedded_engine):
    client = _client(embedded_engine, 5)
    kwargs = dict(model="smollm2", messages=[{"role": "user", "content": "Name three colours."}],
                  max_tokens=24, temperature=0)
    whole = client.chat.completions.create(**kwargs)
    chunks = list(client.chat.completions.create(**kwargs, stream=True, stream_options={"include_usage": True}))
    content = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert "".join(content) == whole.choices[0].message.content
    tokens = chunks[-1].usage.completion_tokens
    assert tokens == whole.usage.completion_tokens
    # each chunk holds one token's text or five; fewer chunks than tokens is what the option buys
    assert len(content) <= 1 + math.ceil((tokens - 1) / 5) < tokens
