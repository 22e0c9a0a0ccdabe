"""Scores template candidates with the model (`sql.template_choice`; why: server/sql/choice.py).

One forced generation per candidate (SamplingParams.forced_tokens with logprobs): the model
samples nothing, it only scores. The engine computes such a score in the prefill, the forced
tokens appended to the prompt and logits read at each of their positions (server/engine/
scheduler.py), so a candidate costs its prompt tail and its reply's tokens in one pass: the
reverse prompt with the query (~70 tokens) and the question (~15).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from ..engine.base import Engine, FinishEvent, GenerationRequest, SamplingParams
from ..metrics import Metrics
from ..sql.choice import ScoredCandidate, answer_text
from ..sql.prompt import TEMPLATE_KWARGS
from .generation import new_id, prefix_boundary, run_to_end

log = logging.getLogger("hearth.sql")


async def score_candidates(
    engine: Engine,
    candidates: Sequence[str],
    messages_for: Callable[[str], list[dict]],
    *,
    metrics: Metrics | None,
    timeout_s: float,
    shared: str = "",
    on_finish: Callable[[FinishEvent], None] | None = None,
    reply_for: Callable[[str], str] = answer_text,
    one_at_a_time: bool = False,
) -> list[ScoredCandidate]:
    """`candidates` (retrieval order) with the log-probability the model gives `reply_for(candidate)`
    (default: the candidate's SQL itself) as the reply to `messages_for(candidate)`. A candidate the
    engine could not score (context full, deadline, or text the tokenizer cannot reproduce) keeps
    `logprob` None.

    `one_at_a_time` scores them in turn: each then reuses the slot (and the cached prompt head) of
    the one before, instead of taking as many slots as there are candidates and evicting the
    cached schema prefix that the next generated answer needs (short prompts are prefilled one
    after another anyway, so little is lost)."""
    jobs = [_score(engine, reply_for(sql), messages_for(sql), metrics, timeout_s, shared, on_finish)
            for sql in candidates]
    scores = [await job for job in jobs] if one_at_a_time else await asyncio.gather(*jobs)
    return [ScoredCandidate(sql=sql, rank=rank, logprob=lp, tokens=len(ids), token_ids=ids)
            for rank, (sql, (lp, ids)) in enumerate(zip(candidates, scores))]


async def _score(engine: Engine, text: str, messages: list[dict], metrics: Metrics | None, timeout_s: float,
                 shared: str, on_finish) -> tuple[float | None, tuple[int, ...]]:
    prompt = engine.render_chat(messages, add_generation_prompt=True, template_kwargs=TEMPLATE_KWARGS)
    tokens = engine.tokenize(prompt, add_special=False, parse_special=True)
    answer = tuple(engine.tokenize(text, add_special=False, parse_special=False))
    if len(tokens) + len(answer) + 1 > engine.n_ctx:
        log.info("candidate not scored: %d prompt + %d answer tokens exceed n_ctx %d", len(tokens), len(answer), engine.n_ctx)
        return None, ()
    # Teacher forcing, spelled as the tokenizer spells it (as training saw it). A grammar that
    # accepts only the text would let greedy decoding spell it in odd pieces ("B" "e" "r"...),
    # each scored low, whenever the model's favourite token does not fit.
    params = SamplingParams(max_tokens=len(answer), temperature=0.0, forced_tokens=answer, logprobs=True)
    request = GenerationRequest(tuple(tokens), params, new_id("sqlscore"), prefix_boundary(engine, prompt, tokens, shared))
    out = await run_to_end(engine, request, metrics, engine.name, None, timeout_s)
    if out.finish is not None and on_finish is not None:
        on_finish(out.finish)
    if out.timed_out or len(out.tokens) != len(answer) or any(t.logprob is None for t in out.tokens):
        log.info("candidate not scored (timed out: %s; %d of %d tokens)", out.timed_out, len(out.tokens), len(answer))
        return None, ()
    return sum(t.logprob for t in out.tokens), tuple(i for t in out.tokens for i in t.token_ids)
