"""sql.rerank's control flow on the real sample SQLite database, with a fake engine that scores.

The fake honours teacher forcing (it replies with exactly the forced tokens) and gives each token a
log-probability from a rule, so these tests decide which candidate "the model" prefers.
tests/server/test_sql_engines.py scores candidates with the real model.
"""

from __future__ import annotations

import contextlib

import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from server.settings import ServerSettings
from server.sql.canonical import sql_skeleton
from server.sql.choice import ScoredCandidate, by_likelihood
from server.sql.prompt import DRAFT_LABEL
from tests.fakes import ScoringEngine


@pytest.fixture()
def client_for(data_dir):
    with contextlib.ExitStack() as stack:  # every client made in a test is closed after it

        def make(logprob_of=lambda sql: -0.5, reply="SELECT 1", **sql) -> TestClient:
            engine = ScoringEngine(logprob_of, reply)
            # Fake replies and candidates keep values the question does not name: not under test here.
            # The rerank path alone: no template answers first, the sample's own pairs only.
            app = create_app(ServerSettings(sql={"rerank": 3, "grounded_literals": False, "template_first": False,
                                                 "schema_templates": False, **sql}), engine)
            client = stack.enter_context(TestClient(app))
            client.engine = engine
            return client

        yield make


QUESTION = "Which customers are based in Calgary?"


def _forced_texts(engine) -> list[str]:
    return [engine.detokenize(r.params.forced_tokens) for r in engine.requests if r.params.forced_tokens]


def test_own_draft_context_scores_each_candidate_with_itself_as_the_draft(client_for):
    client = client_for(rerank_context="own_draft")
    body = client.post("/v1/sql", json={"question": QUESTION}).json()
    forced = [r for r in client.engine.requests if r.params.forced_tokens and r.params.logprobs]
    assert len(forced) == 3
    assert len({sql_skeleton(t) for t in _forced_texts(client.engine)}) == 3  # three different shapes
    for request in forced:
        prompt = client.engine.detokenize(request.prompt_tokens)
        draft = prompt.rsplit(DRAFT_LABEL, 1)[1].split("<assistant>")[0].strip()
        assert draft == client.engine.detokenize(request.params.forced_tokens)
    assert body["status"] == "ok" and body["attempts"][0]["source"] == "candidate"


def test_the_most_likely_candidate_answers_even_when_retrieval_ranks_it_last(client_for):
    # Equal per-token scores: fewer tokens is more likely. Make the 3rd candidate the best instead.
    client = client_for()
    client.post("/v1/sql", json={"question": QUESTION})
    texts = _forced_texts(client.engine)
    favourite = texts[2]
    client = client_for(logprob_of=lambda sql: -0.01 if sql == favourite else -2.0)
    body = client.post("/v1/sql", json={"question": QUESTION}).json()
    assert body["status"] == "ok"
    first = body["attempts"][0]
    assert (first["rank"], first["source"]) == (2, "candidate") and first["logprob"] < 0
    assert first["sql"] == favourite and body["sql"].startswith(favourite)  # the validator adds the row cap
    assert body["result"] is not None
    assert not [r for r in client.engine.requests if not r.params.forced_tokens]  # no free generation


def test_a_candidate_that_fails_validation_gives_way_to_the_next(client_for, reject_sql):
    calls = []
    reject_sql(lambda sql: calls.append(sql) or len(calls) == 1)  # the first query the validator sees
    body = client_for().post("/v1/sql", json={"question": QUESTION}).json()
    assert [a["stage"] for a in body["attempts"]] == ["validation", "ok"]
    assert body["attempts"][0]["failed_rule"] == "test_rule" and body["status"] == "ok"
    assert body["attempts"][1]["source"] == "candidate"


def test_without_rerank_the_model_generates(client_for):
    client = client_for(reply="SELECT COUNT(*) FROM customers", rerank=0)
    body = client.post("/v1/sql", json={"question": QUESTION}).json()
    assert body["attempts"][0]["source"] == "model" and body["attempts"][0]["logprob"] is None
    assert not _forced_texts(client.engine)


def test_served_context_scores_every_candidate_after_the_prompt_generation_gets(client_for):
    client = client_for()
    client.post("/v1/sql", json={"question": QUESTION})
    prompts = {tuple(r.prompt_tokens) for r in client.engine.requests if r.params.forced_tokens}
    assert len(prompts) == 1
    prompt = client.engine.detokenize(next(iter(prompts)))
    assert _forced_texts(client.engine)[0] in prompt.rsplit(DRAFT_LABEL, 1)[1]  # the first candidate is the draft


def test_question_context_scores_without_a_draft(client_for):
    client = client_for(rerank_context="question")
    client.post("/v1/sql", json={"question": QUESTION})
    for request in client.engine.requests:
        assert DRAFT_LABEL not in client.engine.detokenize(request.prompt_tokens)


@pytest.mark.parametrize(("scores", "order"), [
    ([-3.0, -1.0, -2.0], [1, 2, 0]),
    ([-1.0, -1.0, -5.0], [0, 1, 2]),          # a tie keeps retrieval order
    ([None, -9.0, -1.0], [2, 1, 0]),          # unscored goes last
    ([None, None, None], [0, 1, 2]),          # nothing scored: the baseline's order
])
def test_by_likelihood(scores, order):
    cands = [ScoredCandidate(sql=f"q{i}", rank=i, logprob=s, tokens=3) for i, s in enumerate(scores)]
    assert [c.rank for c in by_likelihood(cands)] == order



@pytest.mark.parametrize(("penalty", "order"), [
    (0.0, ["edit", "template", "other"]),      # scores alone: the edit is likeliest
    (1.5, ["template", "edit", "other"]),      # a prior against edits: the template must lose by more
    (9.0, ["template", "other", "edit"]),
])
def test_by_likelihood_weighs_edits_by_their_prior(penalty, order):
    cands = [ScoredCandidate(sql="template", rank=0, logprob=-10.0), ScoredCandidate(sql="other", rank=1, logprob=-12.0),
             ScoredCandidate(sql="edit", rank=0, logprob=-9.0, edit="swap_set_operation")]
    ranked = by_likelihood(cands, edit_penalty=penalty)
    assert [c.sql for c in ranked] == order
    assert ranked[[c.sql for c in ranked].index("edit")].logprob == -9.0  # the model's own score is reported
