"""Teacher forcing (SamplingParams.forced_tokens) with logprobs on the real embedded model and the
real scheduler: a score of a given text, computed in the prefill (server/engine/scheduler.py).

The score must be the model's own log-probability of the text: forcing the tokens the model
generated itself gives back the log-probabilities it generated them with.
"""

from __future__ import annotations

import asyncio

import pytest

from server.engine.base import GenerationRequest, SamplingParams
from server.services.generation import run_to_end

pytestmark = [pytest.mark.model, pytest.mark.slow]

MESSAGES = [{"role": "user", "content": "What is the capital of France? Answer with the city only."}]


def test_forcing_the_models_own_answer_gives_the_log_probabilities_it_generated_with(embedded_engine):
    prompt = embedded_engine.render_chat(MESSAGES, add_generation_prompt=True)
    tokens = tuple(embedded_engine.tokenize(prompt, add_special=False, parse_special=True))
    params = SamplingParams(max_tokens=12, temperature=0.0, logprobs=True)
    generated = asyncio.run(run_to_end(embedded_engine, GenerationRequest(tokens, params, "own"), None, "m"))
    own_ids = tuple(i for t in generated.tokens for i in t.token_ids)
    forced = SamplingParams(max_tokens=len(own_ids), temperature=0.0, logprobs=True, forced_tokens=own_ids)
    replay = asyncio.run(run_to_end(embedded_engine, GenerationRequest(tokens, forced, "forced"), None, "m"))
    assert tuple(i for t in replay.tokens for i in t.token_ids) == own_ids
    assert [t.logprob for t in replay.tokens] == pytest.approx([t.logprob for t in generated.tokens], abs=1e-6)
    assert replay.finish.finish_reason == "stop" and replay.finish.completion_tokens == len(own_ids)


def test_a_score_cut_by_max_tokens_scores_only_the_first_tokens(embedded_engine):
    # Forced tokens are scored in the prefill; max_tokens still bounds how many, as in decoding.
    prompt = embedded_engine.render_chat(MESSAGES, add_generation_prompt=True)
    tokens = tuple(embedded_engine.tokenize(prompt, add_special=False, parse_special=True))
    forced = tuple(embedded_engine.tokenize("The capital is Paris.", add_special=False, parse_special=False))
    whole = asyncio.run(run_to_end(embedded_engine, GenerationRequest(tokens, SamplingParams(
        max_tokens=len(forced), logprobs=True, forced_tokens=forced), "whole"), None, "m"))
    cut = asyncio.run(run_to_end(embedded_engine, GenerationRequest(tokens, SamplingParams(
        max_tokens=3, logprobs=True, forced_tokens=forced), "cut"), None, "m"))
    assert [t.token_ids[0] for t in cut.tokens] == list(forced[:3]) and cut.finish.finish_reason == "length"
    assert [t.logprob for t in cut.tokens] == pytest.approx([t.logprob for t in whole.tokens[:3]], abs=1e-6)
    assert whole.finish.finish_reason == "stop" and whole.finish.completion_tokens == len(forced)
