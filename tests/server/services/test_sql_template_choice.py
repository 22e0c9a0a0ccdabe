"""sql.template_choice = "model": when several templates fit, the model reads each query and the one
after which the asked question is most likely answers. Real sample SQLite; a fake engine that
scores by rule here (which query the "model" prefers), the real model in the last test."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from server.engine.base import FinishEvent, TokenEvent
from server.settings import ServerSettings
from server.sql.prompt import QUESTION_INSTRUCTIONS, question_answer
from tests.fakes import FakeEngine

# Of the nearest three shapes, the first keeps a value the question does not name (no fit); the
# second (customers per segment in Belgium, wrong) and the third (suppliers in Belgium, right) fit.
TWO_FIT = "Who supplies us from Belgium, and how long do they take to deliver?"
ONE_FITS = "Which customers are based in Calgary?"  # only customers_in_city fits


class PromptScoringEngine(FakeEngine):
    """Forced generations reply with the forced tokens, each scored `logprob_of(prompt)`: the fake
    "model" likes the question more after some queries than after others."""

    def __init__(self, logprob_of):
        super().__init__(n_ctx=8192, reply="SELECT 1")
        self.logprob_of = logprob_of
        self.scored: list[tuple[str, str]] = []  # (prompt, forced text)
        self.in_flight = self.most_in_flight = 0

    async def generate(self, request):
        forced = request.params.forced_tokens
        if not forced:
            async for event in super().generate(request):
                yield event
            return
        self.requests.append(request)
        prompt, text = self.detokenize(request.prompt_tokens), self.detokenize(forced)
        self.scored.append((prompt, text))
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        for token in forced:
            await asyncio.sleep(0)  # let any other scoring request run meanwhile
            yield TokenEvent(text=chr(token), token_ids=(token,), logprob=self.logprob_of(prompt))
        self.in_flight -= 1
        yield FinishEvent("stop", len(request.prompt_tokens), len(forced))


@pytest.fixture()
def client_for(data_dir):
    with contextlib.ExitStack() as stack:

        def make(logprob_of=lambda prompt: -0.5, **sql) -> TestClient:
            engine = PromptScoringEngine(logprob_of)
            settings = ServerSettings(sql={"template_first": True, "template_choice": "model", **sql})
            client = stack.enter_context(TestClient(create_app(settings, engine)))
            client.engine = engine
            return client

        yield make


def test_the_template_the_model_reads_as_the_question_answers(client_for):
    client = client_for(lambda prompt: -0.1 if "FROM suppliers" in prompt else -2.0)
    body = client.post("/v1/sql", json={"question": TWO_FIT}).json()
    assert body["status"] == "ok"
    (attempt,) = body["attempts"]
    assert (attempt["source"], attempt["rank"]) == ("template", 2) and "FROM suppliers" in attempt["sql"]
    assert attempt["logprob"] == pytest.approx(-0.1 * len(question_answer(TWO_FIT)))
    # Each fitting query was read once, in the reverse prompt, and the question itself was scored.
    assert len(client.engine.scored) == 2
    for prompt, forced in client.engine.scored:
        assert QUESTION_INSTRUCTIONS in prompt and "### Schema" not in prompt and forced == TWO_FIT
    assert body["usage"]["prompt_tokens"] > 0
    # One at a time: each reuses one slot rather than evicting the cached schema from others.
    assert client.engine.most_in_flight == 1


def test_nearest_choice_keeps_retrieval_order_and_calls_no_model(client_for):
    client = client_for(lambda prompt: -0.1 if "FROM suppliers" in prompt else -2.0, template_choice="nearest")
    body = client.post("/v1/sql", json={"question": TWO_FIT}).json()
    (attempt,) = body["attempts"]
    assert attempt["rank"] == 1 and "FROM customers" in attempt["sql"] and not client.engine.requests


def test_a_single_fitting_template_needs_no_scoring(client_for):
    client = client_for()
    body = client.post("/v1/sql", json={"question": ONE_FITS}).json()
    assert [a["source"] for a in body["attempts"]] == ["template"] and not client.engine.requests


def test_the_model_s_first_choice_failing_validation_gives_way_to_its_second(client_for, monkeypatch):
    from server.services import text_to_sql

    real = text_to_sql.validate_sql

    def reject_suppliers(sql, *args, **kwargs):
        report = real(sql, *args, **kwargs)
        if "FROM suppliers" in sql:
            report.valid, report.failed_rule, report.message = False, "test_rule", "rejected by the test"
        return report

    monkeypatch.setattr(text_to_sql, "validate_sql", reject_suppliers)
    client = client_for(lambda prompt: -0.1 if "FROM suppliers" in prompt else -2.0)
    body = client.post("/v1/sql", json={"question": TWO_FIT}).json()
    assert [(a["source"], a["rank"], a["stage"]) for a in body["attempts"]] == [
        ("template", 2, "validation"), ("template", 1, "ok")]


@pytest.mark.model
def test_the_real_model_scores_the_question_after_each_fitting_template(data_dir, embedded_engine):
    """The embedded model (un-adapted) through llama.cpp: a score for each fitting query, the best
    one answers, and the scores are those of the question's own tokens (deterministic: asked twice,
    the same)."""
    settings = ServerSettings(sql={"template_first": True, "template_choice": "model"})
    with TestClient(create_app(settings, embedded_engine)) as client:
        first, again = (client.post("/v1/sql", json={"question": TWO_FIT}).json() for _ in range(2))
    assert first["status"] == "ok" and first["attempts"][0]["source"] == "template"
    assert first["attempts"][0]["logprob"] is not None and first["attempts"][0]["logprob"] < 0
    assert first["attempts"][0]["logprob"] == pytest.approx(again["attempts"][0]["logprob"], abs=1e-3)
    assert first["usage"]["prompt_tokens"] > 0 and first["usage"]["completion_tokens"] > 0
