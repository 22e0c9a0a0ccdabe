"""When several templates fit a question, the nearest one (retrieval order) among those that agree
best with the question's cues answers, and the next one when it fails validation; no model is
asked. Real sample SQLite, a fake engine that would answer if asked."""

from __future__ import annotations

import contextlib

import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from server.settings import ServerSettings
from tests.fakes import FakeEngine

# Of the nearest four shapes (as asked and value-masked, taking turns), the first two keep a value the
# question does not name (no fit); the third (customers per segment in Belgium) and the fourth
# (suppliers in Belgium) fit.
TWO_FIT = "Who supplies us from Belgium, and how long do they take to deliver?"
ONE_FITS = "Which customers are based in Calgary?"  # only customers_in_city fits


@pytest.fixture()
def client_for(data_dir):
    with contextlib.ExitStack() as stack:

        def make(**sql) -> TestClient:
            engine = FakeEngine(n_ctx=8192, reply="SELECT 1")
            # The sample's own pairs, four shapes: the templates named above.
            settings = ServerSettings(sql={"template_first": True, "schema_templates": False,
                                           "template_shapes": 4, **sql})
            client = stack.enter_context(TestClient(create_app(settings, engine)))
            client.engine = engine
            return client

        yield make


def test_the_nearest_fitting_template_answers_and_no_model_is_asked(client_for):
    client = client_for()
    body = client.post("/v1/sql", json={"question": TWO_FIT}).json()
    assert body["status"] == "ok"
    (attempt,) = body["attempts"]
    assert (attempt["source"], attempt["rank"]) == ("template", 2) and "FROM customers" in attempt["sql"]
    assert not client.engine.requests and body["usage"]["completion_tokens"] == 0


def test_a_single_fitting_template_answers(client_for):
    client = client_for()
    body = client.post("/v1/sql", json={"question": ONE_FITS}).json()
    assert [a["source"] for a in body["attempts"]] == ["template"] and not client.engine.requests


def test_the_nearest_failing_validation_gives_way_to_the_next(client_for, reject_sql):
    reject_sql(lambda sql: "FROM customers" in sql)
    client = client_for()
    body = client.post("/v1/sql", json={"question": TWO_FIT}).json()
    assert [(a["source"], a["rank"], a["stage"]) for a in body["attempts"]] == [
        ("template", 2, "validation"), ("template", 3, "ok")]
    assert "FROM suppliers" in body["attempts"][1]["sql"] and not client.engine.requests


def test_a_removed_template_option_is_ignored_with_a_warning(client_for):
    with pytest.warns(DeprecationWarning, match="sql.template_choice"):
        client = client_for(template_choice="model")
    body = client.post("/v1/sql", json={"question": TWO_FIT}).json()
    assert body["attempts"][0]["rank"] == 2 and not client.engine.requests  # the nearest, as without it
