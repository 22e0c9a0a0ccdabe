"""The scheduler takes turns between API keys, on the real embedded model.

Forced tokens (teacher forcing without logprobs) make every request's length exact, so which
request a freed slot goes to shows in when its first token comes.
"""

from __future__ import annotations

import asyncio
import contextvars

import pytest

from server.engine.base import GenerationRequest, SamplingParams, TokenEvent
from server.errors import Overloaded
from server.keys import current_key_id

pytestmark = pytest.mark.model


def forced(engine, n_tokens: int) -> GenerationRequest:
    prompt = engine.tokenize(engine.render_chat([{"role": "user", "content": "Count."}]))
    token = engine.tokenize(" one", add_special=False)[0]
    return GenerationRequest(tuple(prompt), SamplingParams(max_tokens=n_tokens, temperature=0,
                                                           forced_tokens=(token,) * n_tokens))


class Run:
    """One request run as a task of key `key`: when its first token came, whether it was refused."""

    def __init__(self, engine, key: str, n_tokens: int):
        self.first_at: float | None = None
        self.refused = False
        self.done = asyncio.Event()
        context = contextvars.copy_context()
        context.run(current_key_id.set, key)  # what KeyLimitsMiddleware does for a request
        self.task = asyncio.get_running_loop().create_task(self._go(engine, n_tokens), context=context)

    async def _go(self, engine, n_tokens):
        loop = asyncio.get_running_loop()
        try:
            async for event in engine.generate(forced(engine, n_tokens)):
                if isinstance(event, TokenEvent) and self.first_at is None:
                    self.first_at = loop.time()
        except Overloaded:
            self.refused = True
        finally:
            self.done.set()


async def started(run: Run, timeout: float = 60) -> None:
    for _ in range(int(timeout / 0.01)):
        if run.first_at is not None:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("no first token")


def test_a_freed_slot_goes_to_the_key_with_fewest_running_and_a_flood_cannot_lock_others_out(embedded_engine):
    # 4 slots, max_queue 2 (tests/conftest.py). Key A: one shorter request and three long ones fill
    # the slots, two more wait, the queue is full and A's next is refused. Key B, holding nothing,
    # still gets in, and when A's shorter request ends its slot goes to B, not to A's older waiters.
    assert embedded_engine.stats().slots_total == 4

    async def go():
        shorter = Run(embedded_engine, "a", 10)
        longs = [Run(embedded_engine, "a", 24) for _ in range(3)]
        for run in (shorter, *longs):
            await started(run)
        waiting = [Run(embedded_engine, "a", 2) for _ in range(2)]
        await asyncio.sleep(0.01)  # they submit (the shorter one has steps to go)
        refused = Run(embedded_engine, "a", 2)
        await refused.done.wait()
        b = Run(embedded_engine, "b", 2)
        await asyncio.sleep(0.01)
        assert shorter.first_at is not None and not shorter.done.is_set(), "the test needs the slots full"
        await asyncio.gather(*(r.task for r in (shorter, *longs, *waiting, b)))
        return waiting, refused, b

    waiting, refused, b = asyncio.run(go())
    assert refused.refused, "a full queue must refuse the key that fills it"
    assert not b.refused, "a key with nothing in the engine must not be refused for another key's flood"
    assert all(w.first_at is not None for w in waiting)
    # FIFO would have given the shorter request's slot to A's first waiter, and B's turn would come
    # only when A's long requests end (about 14 steps later).
    assert b.first_at < min(w.first_at for w in waiting)


def test_one_key_alone_is_served_in_arrival_order(embedded_engine):
    async def go():
        runs = [Run(embedded_engine, "a", n) for n in (10, 24, 24, 24)]
        for run in runs:
            await started(run)
        queued = []
        for _ in range(2):
            queued.append(Run(embedded_engine, "a", 2))
            await asyncio.sleep(0.01)
        await asyncio.gather(*(r.task for r in (*runs, *queued)))
        return queued

    first, second = asyncio.run(go())
    # The shorter request's slot goes to the first to arrive; the second waits for a long one.
    assert first.first_at < second.first_at


def test_a_key_with_nothing_decoding_is_prefilled_first_in_a_decode_of_its_own(embedded_engine, monkeypatch):
    """Key B's prompt runs ahead of key A's decoding stream, alone, in the same step (issue 26: a
    flood of one key delays another's first token by the step in flight only)."""
    scheduler = embedded_engine._scheduler
    real, groups = scheduler._decode, []

    def recording(group):
        groups.append([(slot.job.client, len(tokens)) for slot, tokens, _ in group])
        return real(group)

    monkeypatch.setattr(scheduler, "_decode", recording)

    async def scenario():
        a = Run(embedded_engine, "key-a", 120)
        await started(a)
        b = Run(embedded_engine, "key-b", 2)
        await b.done.wait()
        await a.done.wait()
        return a, b

    a, b = asyncio.run(scenario())
    assert not a.refused and not b.refused
    # B's prompt (its uncached tail: A's prompt is the same, so most of it is reused) is B's first work.
    i = next(i for i, g in enumerate(groups) if any(key == "key-b" for key, _ in g))
    assert groups[i] == [("key-b", groups[i][0][1])], groups  # alone: no decode token of key A beside it
    assert ("key-a", 1) in groups[i + 1]  # and A's stream decodes right after, in the same step
