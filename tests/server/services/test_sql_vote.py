"""sql.samples: the model's greedy query and N - 1 sampled ones, grouped by what they return on the
real sample SQLite database; the largest group answers (server/services/sql_stages.py
vote_by_execution). The engine is a fake that replies by seed, so each test decides what "the
model" writes; tests/server/services/test_sql_vote_model.py runs the real model."""

from __future__ import annotations

import contextlib

import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from server.settings import ServerSettings
from tests.fakes import FakeEngine

QUESTION = "How many customers do we have?"
COUNT = "SELECT COUNT(*) FROM customers"
COUNT_IDS = "SELECT COUNT(customer_id) FROM customers"  # the same answer, spelt otherwise
WRONG = "SELECT COUNT(*) FROM suppliers"
BROKEN = "SELECT COUNT(*) FROM no_such_table"
CAP = " LIMIT 1000"  # what the validator adds (the database's max_rows)


class SeededEngine(FakeEngine):
    """Replies `replies[seed]` (the greedy request has seed None), word by word."""

    def __init__(self, replies: dict):
        super().__init__(n_ctx=8192)
        self.replies = replies

    async def generate(self, request):
        self.reply = self.replies[request.params.seed]
        async for event in super().generate(request):
            yield event


@pytest.fixture()
def ask(data_dir):
    with contextlib.ExitStack() as stack:

        def make(replies: dict, samples: int, **sql):
            engine = SeededEngine(replies)
            settings = ServerSettings(sql={"grounded_literals": False, "template_first": False,
                                           "schema_templates": False, "samples": samples, **sql})
            client = stack.enter_context(TestClient(create_app(settings, engine)))
            return client.post("/v1/sql", json={"question": QUESTION}).json(), engine

        yield make


def test_the_answer_two_samples_agree_on_beats_the_greedy_one(ask):
    body, engine = ask({None: WRONG, 1: COUNT, 2: COUNT_IDS}, samples=3)
    assert body["status"] == "ok" and body["sql"] == COUNT + CAP
    assert [(a["source"], a["sql"]) for a in body["attempts"]] == [("model", WRONG), ("sample", COUNT),
                                                                    ("sample", COUNT_IDS)]
    greedy, *sampled = engine.requests
    assert greedy.params.temperature == 0.0 and greedy.params.seed is None
    assert [(r.params.temperature, r.params.seed) for r in sampled] == [(0.7, 1), (0.7, 2)]
    assert len({r.prompt_tokens for r in engine.requests}) == 1  # one prompt, one cached prefix


def test_with_no_majority_the_greedy_answer_stands(ask):
    body, _ = ask({None: COUNT, 1: WRONG}, samples=2)
    assert body["sql"] == COUNT + CAP and body["attempts"][1]["source"] == "sample"


def test_a_sample_answers_when_the_greedy_query_is_rejected(ask):
    body, engine = ask({None: BROKEN, 1: COUNT}, samples=2)
    assert body["status"] == "ok" and body["sql"] == COUNT + CAP and len(engine.requests) == 2
    assert body["attempts"][0]["valid"] is False and body["attempts"][0]["stage"] == "validation"


def test_when_none_passes_the_model_corrects_its_greedy_query(ask):
    body, engine = ask({None: BROKEN, 1: BROKEN, 2: BROKEN}, samples=3, max_attempts=2)
    # The vote's greedy query counts as the first of sql.max_attempts: one correction follows.
    assert [a["source"] for a in body["attempts"]] == ["model", "sample", "sample", "model"]
    assert body["status"] == "rejected" and len(engine.requests) == 4
    correction = engine.detokenize(engine.requests[-1].prompt_tokens)
    assert BROKEN in correction and "no_such_table" in correction
    assert body["attempts"][2]["valid"] is False  # the duplicate is reported like the query it repeats


def test_one_sample_is_the_greedy_answer_alone(ask):
    body, engine = ask({None: WRONG}, samples=1)
    assert body["sql"] == WRONG + CAP and len(engine.requests) == 1


@pytest.mark.model
def test_the_real_model_votes_with_its_samples_and_answers_the_same_each_time(data_dir):
    """The embedded model through llama.cpp, no template (the model writes): the greedy query and two
    samples, each with its log-probability; the fixed seeds make a second ask give the same SQL."""
    from server.engine.llama_engine import LlamaEngine
    from server.settings import embedded_model_path

    settings = ServerSettings(sql={"template_first": False, "samples": 3})
    # A context per slot that holds the schema prompt (~1,300 tokens); three slots: one vote at once.
    engine = LlamaEngine("smollm2", embedded_model_path(), n_ctx=2048, n_slots=3, n_threads=2)
    with contextlib.closing(engine), TestClient(create_app(settings, engine)) as client:
        first, again = (client.post("/v1/sql", json={"question": "How many products are there?"}).json()
                        for _ in range(2))
    assert "attempts" in first, first
    sources = [a["source"] for a in first["attempts"]]
    assert sources[:3] == ["model", "sample", "sample"]
    assert all(a["logprob"] is not None and a["logprob"] < 0 for a in first["attempts"][:3] if a["raw"])
    assert first["sql"] == again["sql"] and [a["raw"] for a in first["attempts"]] == [a["raw"] for a in again["attempts"]]
    assert first["usage"]["completion_tokens"] > 0
