"""Candidate scoring (sql.template_choice = model) on the real embedded model and the real scheduler.

The score of a forced generation must be the model's own log-probability of the text. Checked
two ways: exactly, against the log-probabilities the same engine reports when it generates that
text itself; and loosely, against llama.cpp evaluating prompt and answer in one pass with every
position's logits (other kernels and batch shapes round differently: ~0.1 nat seen on a token,
where a misplaced position costs several).
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from server.engine.base import GenerationRequest, SamplingParams
from server.services.generation import run_to_end
from server.services.sql_candidates import score_candidates
from server.sql.choice import answer_text, by_likelihood

pytestmark = [pytest.mark.model, pytest.mark.slow]

MESSAGES = [{"role": "user", "content": "What is the capital of France? Answer with the city only."}]
CANDIDATES = ["Paris", "Berlin", "SELECT name FROM cities WHERE country = 'France'"]


def _reference_logprob(prompt_tokens: list[int], answer: tuple[int, ...]) -> float:
    from llama_cpp import Llama

    from server.settings import embedded_model_path

    llm = Llama(str(embedded_model_path()), n_ctx=512, n_threads=2, logits_all=True, verbose=False)
    try:
        llm.eval(prompt_tokens + list(answer))
        scores = np.asarray(llm.scores[: len(prompt_tokens) + len(answer)], dtype=np.float64)
    finally:
        llm.close()
    total = 0.0
    for i, token in enumerate(answer):
        row = scores[len(prompt_tokens) + i - 1]  # the logits that predict answer[i]
        shifted = row - row.max()
        total += shifted[token] - np.log(np.exp(shifted).sum())
    return total


def test_scores_are_the_models_log_probabilities_of_each_candidate(embedded_engine):
    scored = asyncio.run(score_candidates(embedded_engine, CANDIDATES, lambda sql: MESSAGES,
                                          metrics=None, timeout_s=60))
    assert [c.rank for c in scored] == [0, 1, 2]
    for cand in scored:
        assert cand.logprob is not None and cand.logprob < 0
        assert embedded_engine.detokenize(cand.token_ids).strip() == answer_text(cand.sql)
    prompt = embedded_engine.render_chat(MESSAGES, add_generation_prompt=True)
    prompt_tokens = embedded_engine.tokenize(prompt, add_special=False, parse_special=True)
    for cand in scored[:2]:
        assert cand.logprob == pytest.approx(_reference_logprob(prompt_tokens, cand.token_ids), abs=0.3)
    # The model knows this much: Paris first, the off-topic query last.
    assert [c.sql for c in by_likelihood(scored)][0] == "Paris"
    assert by_likelihood(scored)[-1].rank == 2


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


def test_a_candidate_too_long_for_the_context_is_left_unscored(embedded_engine):
    long_prompt = [{"role": "user", "content": "word " * (embedded_engine.n_ctx - 20)}]
    scored = asyncio.run(score_candidates(embedded_engine, ["Paris " * 30], lambda sql: long_prompt,
                                          metrics=None, timeout_s=60))
    assert scored[0].logprob is None and scored[0].token_ids == ()
