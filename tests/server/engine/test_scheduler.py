"""The continuous-batching engine on the real embedded model."""

from __future__ import annotations

import asyncio
import json

import pytest
from llama_cpp.llama_grammar import json_schema_to_gbnf

from server.engine.base import FinishEvent, GenerationRequest, SamplingParams, TokenEvent
from server.errors import ContextLengthExceeded, Overloaded

pytestmark = pytest.mark.model

PROMPTS = [
    "What is the capital of France?",
    "Write a haiku about the sea.",
    "List three prime numbers.",
    "Explain what a SQL join is.",
    "Who wrote Hamlet?",
    "Give me a recipe for pancakes.",
]


def request(engine, text, **params):
    tokens = engine.tokenize(engine.render_chat([{"role": "user", "content": text}]))
    return GenerationRequest(tuple(tokens), SamplingParams(**{"max_tokens": 32, "temperature": 0, **params}))


async def collect(engine, req):
    tokens, finish = [], None
    async for ev in engine.generate(req):
        if isinstance(ev, TokenEvent):
            tokens.extend(ev.token_ids)
        else:
            finish = ev
    return tokens, finish


async def wait_idle(engine, timeout=60.0):
    for _ in range(int(timeout / 0.05)):
        if engine.stats().slots_in_use == 0:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("slots still in use")




def test_batched_greedy_output_equals_solo(embedded_engine):
    async def go():
        solo = [await collect(embedded_engine, request(embedded_engine, p)) for p in PROMPTS]
        batched = await asyncio.gather(*[collect(embedded_engine, request(embedded_engine, p)) for p in PROMPTS])
        return solo, batched

    solo, batched = asyncio.run(go())
    assert len({tuple(t) for t, _ in solo}) == len(PROMPTS)  # different prompts, different answers
    for (a, fa), (b, fb) in zip(solo, batched):
        assert a == b
        assert fa.finish_reason == fb.finish_reason


async def first_event(engine, req) -> TokenEvent:
    """The first token event of `req`, then the rest of it drained."""
    first = None
    async for ev in engine.generate(req):
        if first is None and isinstance(ev, TokenEvent):
            first = ev
    return first


def test_a_long_prompt_joining_running_streams_is_prefilled_as_alone(embedded_engine):
    # A prompt of several prefill blocks (past CPU_FA_TILE_ROWS, where the way a chunk is cut
    # changes the arithmetic) prefilled while other streams decode must be prefilled exactly as it
    # is alone: its first token and that token's log-probability are bit-identical. (Its later
    # tokens are decoded in one batch with the running streams, and llama.cpp's attention over a
    # batch whose other sequences sit at other positions is not bit-identical on every CPU build:
    # on a 2-core AVX2 EPYC the 6th of 24 tokens differed, on an AVX-512 Xeon none did.)
    system = "You are the assistant of a library. Answer briefly, and name the shelf of every book. " * 14
    msgs = [{"role": "system", "content": system}, {"role": "user", "content": "Where are the atlases?"}]
    long = GenerationRequest(tuple(embedded_engine.tokenize(embedded_engine.render_chat(msgs))),
                             SamplingParams(max_tokens=4, temperature=0, logprobs=True))
    assert len(long.prompt_tokens) > 2 * 128
    scheduler = embedded_engine._scheduler

    async def go():
        await wait_idle(embedded_engine)
        scheduler.call(scheduler._evict_idle)
        solo = await first_event(embedded_engine, long)
        await wait_idle(embedded_engine)
        scheduler.call(scheduler._evict_idle)
        running = [asyncio.ensure_future(collect(embedded_engine, request(embedded_engine, p, max_tokens=64)))
                   for p in PROMPTS[:2]]
        while embedded_engine.stats().slots_in_use < 2 or any(
                s.pending for s in scheduler.slots if s.job is not None):
            await asyncio.sleep(0.005)  # both streams decoding before the long prompt arrives
        joined = await first_event(embedded_engine, long)
        still_running = embedded_engine.stats().slots_in_use
        await asyncio.gather(*running)
        return solo, joined, still_running

    solo, joined, still_running = asyncio.run(go())
    assert still_running >= 1  # the long prompt did join running streams
    assert joined.token_ids == solo.token_ids and joined.logprob == solo.logprob


def test_seeded_sampling_is_per_sequence_and_reproducible_under_batching(embedded_engine):
    async def go():
        alone = await collect(embedded_engine, request(embedded_engine, PROMPTS[1], temperature=0.9, seed=7))
        together = await asyncio.gather(
            collect(embedded_engine, request(embedded_engine, PROMPTS[1], temperature=0.9, seed=7)),
            collect(embedded_engine, request(embedded_engine, PROMPTS[2], temperature=1.2, seed=3)),
            collect(embedded_engine, request(embedded_engine, PROMPTS[3])),
        )
        return alone, together

    alone, together = asyncio.run(go())
    assert alone[0] == together[0][0]


def test_cancellation_frees_the_slot(embedded_engine):
    async def go():
        gen = embedded_engine.generate(request(embedded_engine, "Tell a long story.", max_tokens=500))
        seen = 0
        async for ev in gen:
            seen += 1
            if seen == 3:
                break
        await gen.aclose()
        await wait_idle(embedded_engine)
        # The freed slot serves the next request.
        _, finish = await collect(embedded_engine, request(embedded_engine, PROMPTS[0], max_tokens=4))
        return finish

    assert asyncio.run(go()).completion_tokens == 4


def test_queue_limit_raises_overloaded(embedded_engine):
    # The fixture engine has 4 slots and max_queue=2. Eight requests arrive in the same event-loop
    # tick: 4 take slots, 2 wait, and the last 2 are refused at once with a retry hint.
    async def go():
        gens = [embedded_engine.generate(request(embedded_engine, f"Count from {i} to 900.", max_tokens=300))
                for i in range(8)]
        firsts = [asyncio.ensure_future(g.__anext__()) for g in gens]
        await asyncio.sleep(0.05)
        refused = [f for f in firsts if f.done() and isinstance(f.exception(), Overloaded)]
        for f in firsts:
            f.cancel()
        await asyncio.gather(*firsts, return_exceptions=True)
        for g in gens:
            await g.aclose()
        await wait_idle(embedded_engine)
        return refused

    refused = asyncio.run(go())
    assert len(refused) == 2
    assert refused[0].exception().retry_after == 1


def test_prefix_cache_hit_returns_the_same_output_as_a_miss(embedded_engine):
    system = "You are a helpful assistant for a company that sells office supplies. " * 16

    def req(q):
        msgs = [{"role": "system", "content": system}, {"role": "user", "content": q}]
        return GenerationRequest(tuple(embedded_engine.tokenize(embedded_engine.render_chat(msgs))),
                                 SamplingParams(max_tokens=24, temperature=0))

    async def go():
        cold, cold_finish = await collect(embedded_engine, req("Do you sell pens?"))
        _, other = await collect(embedded_engine, req("Do you sell paper?"))
        warm, warm_finish = await collect(embedded_engine, req("Do you sell pens?"))
        return cold, cold_finish, other, warm, warm_finish

    before = embedded_engine.stats().prefix_cache_hits
    cold, cold_finish, other, warm, warm_finish = asyncio.run(go())
    assert other.cached_tokens >= 128  # the shared system prompt was reused, in whole blocks
    assert warm_finish.cached_tokens >= other.cached_tokens
    assert warm == cold
    assert embedded_engine.stats().prefix_cache_hits >= before + 2


@pytest.mark.parametrize("long_rule", [False, True])
def test_a_prefix_boundary_is_reused_whole_with_the_same_output_as_a_miss(embedded_engine, long_rule):
    # Where the long prompt rule is off (a GPU build, or a failed load-time check), blocks end at
    # the boundary so that all of the shared prefix is reused; where it is on, all but the last
    # CPU_FA_TILE_ROWS tokens of the prompt are, whatever the boundary.
    from server.engine.slots import CPU_FA_TILE_ROWS
    from server.services.generation import chat_prefix_text, prefix_boundary

    system = "You answer questions about the Hearth appliance's warehouse, its stock and its deliveries. " * 12

    def req(q):
        msgs = [{"role": "system", "content": system}, {"role": "user", "content": q}]
        prompt = embedded_engine.render_chat(msgs)
        tokens = embedded_engine.tokenize(prompt)
        boundary = prefix_boundary(embedded_engine, prompt, tokens, chat_prefix_text(embedded_engine, msgs))
        return GenerationRequest(tuple(tokens), SamplingParams(max_tokens=24, temperature=0), prefix_boundary=boundary)

    first, second = req("Is the warehouse open on Sundays?"), req("How many pallets fit on a truck?")
    boundary = second.prefix_boundary
    assert boundary is not None and boundary % 128 != 0 and boundary > 128
    assert first.prompt_tokens[:boundary] == second.prompt_tokens[:boundary]
    scheduler = embedded_engine._scheduler

    async def go():
        await wait_idle(embedded_engine)
        scheduler.call(scheduler._evict_idle)
        await collect(embedded_engine, first)
        hit, hit_finish = await collect(embedded_engine, second)
        await wait_idle(embedded_engine)
        scheduler.call(scheduler._evict_idle)  # every cache dropped: the next run is a miss
        miss, miss_finish = await collect(embedded_engine, second)
        return hit, hit_finish, miss, miss_finish

    assert scheduler.long_prompt_reuse
    scheduler.long_prompt_reuse = long_rule  # read when a request is placed, on the engine thread
    try:
        hit, hit_finish, miss, miss_finish = asyncio.run(go())
    finally:
        scheduler.long_prompt_reuse = True
    if long_rule:
        assert hit_finish.cached_tokens == len(second.prompt_tokens) - CPU_FA_TILE_ROWS < boundary
    else:
        assert hit_finish.cached_tokens == boundary  # all of the shared prefix, not its whole blocks
    assert miss_finish.cached_tokens == 0
    assert hit == miss


def test_grammar_constrains_output(embedded_engine):
    # The model's first choice ("Sure, ...") breaks the grammar: the sampler must resample.
    schema = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 20},
                                                "age": {"type": "integer"}}, "required": ["name", "age"]}
    tokens, finish = asyncio.run(collect(embedded_engine, request(
        embedded_engine, "Describe a dog.", grammar=json_schema_to_gbnf(json.dumps(schema)), max_tokens=60)))
    assert finish.finish_reason == "stop"
    data = json.loads(embedded_engine.detokenize(tokens))
    assert set(data) == {"name", "age"} and isinstance(data["age"], int)


def test_context_length_is_checked(embedded_engine):
    async def go():
        async for _ in embedded_engine.generate(request(embedded_engine, "hi", max_tokens=embedded_engine.n_ctx)):
            pass

    with pytest.raises(ContextLengthExceeded):
        asyncio.run(go())


def test_finish_event_counts(embedded_engine):
    tokens, finish = asyncio.run(collect(embedded_engine, request(embedded_engine, PROMPTS[0], max_tokens=5)))
    assert isinstance(finish, FinishEvent)
    assert finish.completion_tokens == len(tokens) == 5
    assert finish.finish_reason == "length"
    assert finish.time_to_first_token_s is not None and finish.time_to_first_token_s > 0


def test_unparsable_grammar_fails_the_request_not_the_engine(embedded_engine):
    from server.errors import InvalidRequest

    with pytest.raises(InvalidRequest):
        asyncio.run(collect(embedded_engine, request(embedded_engine, PROMPTS[0], grammar='root ::= "unclosed')))
    asyncio.run(wait_idle(embedded_engine))
    tokens, finish = asyncio.run(collect(embedded_engine, request(embedded_engine, PROMPTS[0], max_tokens=3)))
    assert finish.completion_tokens == len(tokens) == 3


def test_running_sequences_stay_on_a_compact_run_of_seq_ids(embedded_engine):
    # llama.cpp attends over every KV stream between the lowest and highest seq id in a batch, so
    # scattered slots cost like a wider batch. Solo requests first leave caches (and different
    # last-used times) on every slot; then concurrent requests must still take adjacent slots.
    # Only the scheduler's worker thread writes `last_used`, and only when a request ends.
    spans = []

    async def monitor(done):
        while not done.is_set():
            busy = [s.seq_id for s in embedded_engine._scheduler.slots if s.job is not None]
            if busy:
                spans.append((len(busy), max(busy) - min(busy) + 1, tuple(busy)))
            await asyncio.sleep(0.005)

    async def go():
        for p in PROMPTS[:4]:
            await collect(embedded_engine, request(embedded_engine, p, max_tokens=4))
        await wait_idle(embedded_engine)
        # Least recently used first: 1, 3, 0, 2, and no cached prefix to match (the next placement
        # clears a slot it does not reuse). Plain LRU would put the next three on 1, 3 and 0.
        for order, seq_id in enumerate((1, 3, 0, 2)):
            embedded_engine._scheduler.slots[seq_id].last_used = order
            embedded_engine._scheduler.slots[seq_id].cached = []
        done = asyncio.Event()
        watcher = asyncio.ensure_future(monitor(done))
        # Staggered arrivals: each joins a batch that is already running.
        first = asyncio.ensure_future(collect(embedded_engine, request(embedded_engine, PROMPTS[4], max_tokens=24)))
        await asyncio.sleep(0.05)
        second = asyncio.ensure_future(collect(embedded_engine, request(embedded_engine, PROMPTS[5], max_tokens=24)))
        await asyncio.sleep(0.05)
        third = await collect(embedded_engine, request(embedded_engine, PROMPTS[1], max_tokens=8))
        await asyncio.gather(first, second)
        done.set()
        await watcher
        return third

    asyncio.run(go())
    assert any(n >= 2 for n, *_ in spans)  # the requests did overlap
    assert all(span == n for n, span, _ in spans), spans


def test_short_prompts_reuse_any_cached_prefix_with_the_same_output(embedded_engine):
    # Prompts under CPU_FA_TILE_ROWS tokens are computed by one per-row kernel however they are
    # cut, so a cached prefix of any length (here the chat template's system turn) is reused,
    # and the answer is the same as a miss, alone or batched beside other requests.
    from server.engine.slots import CPU_FA_TILE_ROWS

    first, second = request(embedded_engine, PROMPTS[0]), request(embedded_engine, PROMPTS[2])
    assert len(first.prompt_tokens) < CPU_FA_TILE_ROWS and len(second.prompt_tokens) < CPU_FA_TILE_ROWS

    async def go():
        await wait_idle(embedded_engine)
        for slot in embedded_engine._scheduler.slots:  # a miss: nothing cached to match
            slot.cached = []
        cold, cold_finish = await collect(embedded_engine, first)
        _, other_finish = await collect(embedded_engine, second)
        warm, warm_finish = await collect(embedded_engine, first)
        batched = await asyncio.gather(*[collect(embedded_engine, r) for r in
                                         (first, request(embedded_engine, PROMPTS[3]), second)])
        return cold, cold_finish, other_finish, warm, warm_finish, batched[0][0]

    cold, cold_finish, other_finish, warm, warm_finish, batched = asyncio.run(go())
    assert cold_finish.cached_tokens == 0
    assert other_finish.cached_tokens >= 8  # the shared system turn, not a whole 128-token block
    assert warm_finish.cached_tokens == len(first.prompt_tokens) - 1
    assert warm == cold
    assert batched == cold


def test_greedy_fast_path_picks_what_llama_cpps_greedy_sampler_picks(embedded_engine):
    # Plain greedy takes the numpy argmax instead of a llama.cpp sampler call: same token.
    from server.engine.sampling import SamplerChain

    async def go():
        await collect(embedded_engine, request(embedded_engine, PROMPTS[4], max_tokens=4))
        await wait_idle(embedded_engine)

    asyncio.run(go())
    params = SamplingParams(max_tokens=1, temperature=0)
    fast = SamplerChain(embedded_engine._vocab, embedded_engine.n_vocab, params)
    slow = SamplerChain(embedded_engine._vocab, embedded_engine.n_vocab, params)
    slow._argmax = False  # the llama.cpp greedy sampler chain
    try:
        assert fast._argmax
        # The engine is idle: the last decode's logits are still in the context.
        assert fast.sample(embedded_engine._ctx, -1) == slow.sample(embedded_engine._ctx, -1)
    finally:
        fast.close()
        slow.close()



def test_a_long_prompts_cached_prefix_is_reused_at_any_length_with_the_same_output(embedded_engine):
    # A /v1/sql-shaped prompt: instructions, then a ~700-token schema and a question in the user
    # turn. Long prompts are prefilled in chunks of at least CPU_FA_TILE_ROWS rows, so a warm
    # request reuses all it shares with the cache (not just up to a chunk end) as long as that
    # leaves CPU_FA_TILE_ROWS tokens to prefill, and its tokens and log-probabilities are
    # bit-identical to the same request on a cold engine: for a question that parts early, one
    # that parts late, and an exact repeat.
    from server.engine.slots import CPU_FA_TILE_ROWS, common_prefix, reusable_length
    from server.services.generation import chat_prefix_text, prefix_boundary

    assert embedded_engine.long_prompt_reuse
    tables = "\n".join(
        f"CREATE TABLE {name} (id INTEGER PRIMARY KEY, {name}_code TEXT NOT NULL, region TEXT, "
        f"created_at DATE, amount_eur REAL, customer_id INTEGER REFERENCES customers(id), note TEXT);"
        for name in ("orders", "invoices", "shipments", "returns", "payments", "refunds", "quotes", "carts",
                     "coupons", "reviews", "tickets", "visits", "leads", "claims", "rentals", "repairs"))

    def req(question):
        msgs = [{"role": "system", "content": "Write one SQLite query that answers the question."},
                {"role": "user", "content": f"{tables}\n\nQuestion: {question}"}]
        prompt = embedded_engine.render_chat(msgs)
        tokens = embedded_engine.tokenize(prompt)
        boundary = prefix_boundary(embedded_engine, prompt, tokens, chat_prefix_text(embedded_engine, msgs))
        return GenerationRequest(tuple(tokens), SamplingParams(max_tokens=12, temperature=0, logprobs=True),
                                 prefix_boundary=boundary)

    first = req("How many orders were placed in 2023?")
    # Another question, and one that first restates the schema's last table at length.
    near = req("Which region has the most refunds?")
    far = req("Given that repairs have a region, a code, an amount in euros, a customer and a date of "
              "creation, that every repair belongs to exactly one customer who may have many, and that "
              "a region is any of north, south, east or west, each with its own warehouse, its own "
              "drivers and its own opening hours, which region had the largest total amount of repairs "
              "in 2023, counting only repairs of customers who also placed an order that year?")
    n1, boundary = len(first.prompt_tokens), first.prefix_boundary
    assert 600 < n1 < 1024 - 12 and boundary is not None
    shared = {r: common_prefix(list(first.prompt_tokens), list(r.prompt_tokens), len(r.prompt_tokens) - 1)
              for r in (near, far)}
    assert len(near.prompt_tokens) - shared[near] < 30  # parts at the question: all but 64 are reused
    assert len(far.prompt_tokens) - shared[far] > CPU_FA_TILE_ROWS + 20  # parts early: all it shares
    assert reusable_length(shared[far], boundary, boundary, 128) < shared[far] - 20  # more than the aligned rule
    scheduler = embedded_engine._scheduler

    async def run(r):
        out, finish = [], None
        async for ev in embedded_engine.generate(r):
            if isinstance(ev, TokenEvent):
                out.append((ev.token_ids, ev.logprob))
            else:
                finish = ev
        return out, finish

    async def cold(r):
        await wait_idle(embedded_engine)
        scheduler.call(scheduler._evict_idle)  # every cache dropped: a miss
        return await run(r)

    async def go():
        results = {}
        for r in (near, far):
            await cold(first)
            results[r, "warm"] = await run(r)
            results[r, "repeat"] = await run(r)
            results[r, "cold"] = await cold(r)
        return results

    results = asyncio.run(go())
    for r in (near, far):
        n = len(r.prompt_tokens)
        (warm, warm_finish), (repeat, repeat_finish), (miss, miss_finish) = (
            results[r, kind] for kind in ("warm", "repeat", "cold"))
        assert warm_finish.cached_tokens == min(shared[r], n - CPU_FA_TILE_ROWS)
        assert repeat_finish.cached_tokens == n - CPU_FA_TILE_ROWS
        assert miss_finish.cached_tokens == 0
        assert len(miss) == 12
        assert warm == miss
        assert repeat == miss
