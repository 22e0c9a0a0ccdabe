"""sql.template_choice = "model": when several templates fit, the model reads each query and the one
after which the asked question is most likely answers. Real sample SQLite; a fake engine that
scores by rule here (which query the "model" prefers), the real model in the last test."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from server.services.sql_candidates import score_candidates
from server.settings import ServerSettings
from server.sql.choice import ScoredCandidate, by_likelihood
from server.sql.cues import best_agreeing
from server.sql.edits import with_edits
from server.sql.prompt import QUESTION_INSTRUCTIONS, question_answer, question_messages
from tests.fakes import ScoringEngine

# Of the nearest four shapes (as asked and value-masked, taking turns), the first two keep a value the
# question does not name (no fit); the third (customers per segment in Belgium, wrong) and the fourth
# (suppliers in Belgium, right) fit.
TWO_FIT = "Who supplies us from Belgium, and how long do they take to deliver?"
ONE_FITS = "Which customers are based in Calgary?"  # only customers_in_city fits


@pytest.fixture()
def client_for(data_dir):
    with contextlib.ExitStack() as stack:

        def make(logprob_of=lambda prompt: -0.5, **sql) -> TestClient:
            engine = ScoringEngine(logprob_of, by_prompt=True)
            # The sample's own pairs, four shapes: the choice among the candidates named above.
            settings = ServerSettings(sql={"template_first": True, "template_choice": "model", "schema_templates": False,
                                           "template_shapes": 4, **sql})
            client = stack.enter_context(TestClient(create_app(settings, engine)))
            client.engine = engine
            return client

        yield make


def test_the_template_the_model_reads_as_the_question_answers(client_for):
    client = client_for(lambda prompt: -0.1 if "FROM suppliers" in prompt else -2.0)
    body = client.post("/v1/sql", json={"question": TWO_FIT}).json()
    assert body["status"] == "ok"
    (attempt,) = body["attempts"]
    assert (attempt["source"], attempt["rank"]) == ("template", 3) and "FROM suppliers" in attempt["sql"]
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
    assert attempt["rank"] == 2 and "FROM customers" in attempt["sql"] and not client.engine.requests


def test_a_single_fitting_template_needs_no_scoring(client_for):
    client = client_for()
    body = client.post("/v1/sql", json={"question": ONE_FITS}).json()
    assert [a["source"] for a in body["attempts"]] == ["template"] and not client.engine.requests


def test_the_model_s_first_choice_failing_validation_gives_way_to_its_second(client_for, reject_sql):
    reject_sql(lambda sql: "FROM suppliers" in sql)
    client = client_for(lambda prompt: -0.1 if "FROM suppliers" in prompt else -2.0)
    body = client.post("/v1/sql", json={"question": TWO_FIT}).json()
    assert [(a["source"], a["rank"], a["stage"]) for a in body["attempts"]] == [
        ("template", 3, "validation"), ("template", 2, "ok")]


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


LAPSED = "Which customers in Amsterdam ordered in 2023 but not in 2024?"  # a held-out shape: EXCEPT


def test_with_template_edits_the_model_may_choose_an_edit_of_a_template(client_for):
    client = client_for(lambda prompt: -0.1 if " EXCEPT " in prompt else -2.0, template_edits=True, edit_penalty=0)
    body = client.post("/v1/sql", json={"question": LAPSED}).json()
    assert body["status"] == "ok"
    (attempt,) = body["attempts"]
    assert (attempt["source"], attempt["edit"]) == ("edit", "swap_set_operation")
    assert " EXCEPT " in attempt["sql"] and attempt["rank"] == 0  # the edit keeps its template's rank
    scored = [prompt for prompt, _ in client.engine.scored]
    # "but not": the template's INTERSECT and its UNION edit contradict the question's negation
    # (server/sql/cues.py) and are not offered; the EXCEPT edit and the NOT EXISTS template are.
    assert not any(" INTERSECT " in p or " UNION " in p for p in scored)
    assert sum(" EXCEPT " in p for p in scored) == 1 and sum("NOT EXISTS" in p for p in scored) == 1
    assert len(scored) == len(set(scored))  # a query already offered is not scored twice


def test_an_edit_must_beat_the_templates_by_the_edit_penalty(client_for):
    # Per question token: the EXCEPT edit -0.1, the rest -2.0; a prior larger than that gap keeps the template.
    gap = (2.0 - 0.1) * len(question_answer(LAPSED))
    for penalty, source in ((gap - 1, "edit"), (gap + 1, "template")):
        client = client_for(lambda prompt: -0.1 if " EXCEPT " in prompt else -2.0, template_edits=True,
                            edit_penalty=penalty)
        body = client.post("/v1/sql", json={"question": LAPSED}).json()
        assert body["attempts"][0]["source"] == source


def test_without_template_edits_only_retrieved_templates_are_offered(client_for):
    client = client_for(lambda prompt: -0.1 if " EXCEPT " in prompt else -2.0)
    body = client.post("/v1/sql", json={"question": LAPSED}).json()
    assert all(a["source"] == "template" and a["edit"] is None for a in body["attempts"])
    assert not any(" EXCEPT " in prompt for prompt, _ in client.engine.scored)


@pytest.mark.model
def test_the_real_model_scores_templates_and_their_edits_alike(data_dir, embedded_engine):
    """With sql.template_edits, the real model scores the fitting templates and their edits in one
    choice: what answers is the candidate after which the question is most likely (edits weighed by
    sql.edit_penalty), among those that agree best with the question's cues ("but not": the
    INTERSECT template's EXCEPT edit and the NOT EXISTS template), each scored here again on its own."""
    settings = ServerSettings(sql={"template_first": True, "template_choice": "model", "template_edits": True,
                                   "schema_templates": False, "template_shapes": 4})
    with TestClient(create_app(settings, embedded_engine)) as client:
        body = client.post("/v1/sql", json={"question": LAPSED}).json()
        service = client.app.state.sql
        database = service.database(None)
        pairs = service.examples(database, database.schema())
    complete = {r: a for r, a in enumerate(pairs.answers(LAPSED, 4)) if a.complete}
    offered = with_edits([ScoredCandidate(sql=a.sql, rank=r) for r, a in complete.items()], "sqlite")
    assert {c.edit for c in offered} >= {None, "swap_set_operation", "single_branch"} and len(offered) >= 5
    offered = best_agreeing(offered, LAPSED, "sqlite", [complete[c.rank].unused_words for c in offered])
    assert {c.edit for c in offered} == {None, "swap_set_operation"} and len(offered) == 2
    scored = asyncio.run(score_candidates(embedded_engine, [c.sql for c in offered], question_messages, metrics=None,
                                          timeout_s=60, reply_for=lambda _sql: question_answer(LAPSED),
                                          one_at_a_time=True))
    for cand, offer in zip(scored, offered):
        cand.rank, cand.edit = offer.rank, offer.edit
    best = by_likelihood(scored, settings.sql.edit_penalty)[0]
    first = body["attempts"][0]
    assert body["status"] == "ok" and first["sql"].startswith(best.sql.split(" ORDER BY")[0])
    assert (first["source"], first["edit"]) == (("edit" if best.edit else "template"), best.edit)
    assert first["logprob"] == pytest.approx(best.logprob, abs=1e-3)
