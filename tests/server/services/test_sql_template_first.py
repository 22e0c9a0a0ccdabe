"""sql.template_first on the real sample SQLite database: the template's own query answers when
its values all fit the question, and the model (a fake engine here) writes the rest."""

from __future__ import annotations

import contextlib

import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from server.settings import ServerSettings
from server.sql.prompt import DRAFT_LABEL
from tests.fakes import FakeEngine

FITS = "Which customers are based in Calgary?"  # customers_in_city: the city slot takes Calgary
# The nearest pair names a value this question does not (its country stays): that template does not fit.
DOES_NOT_FIT = "What can customers buy for under $3 among products we still sell?"
REPLY = "SELECT product_name, unit_price FROM products WHERE unit_price < 3 AND discontinued = 0"


@pytest.fixture()
def client_for(data_dir):
    with contextlib.ExitStack() as stack:

        def make(**sql) -> TestClient:
            engine = FakeEngine(n_ctx=8192, reply=REPLY)
            # The fake engine gives one REPLY to every question: its values are not the question's.
            # The sample's own pairs and three shapes: the templates the tests below name.
            shapes = {"template_shapes": 3} if sql.get("template_first") else {}
            settings = ServerSettings(sql={"grounded_literals": False, "template_first": False,
                                           "schema_templates": False, **shapes, **sql})
            client = stack.enter_context(TestClient(create_app(settings, engine)))
            client.engine = engine
            return client

        yield make


def test_a_fitting_template_answers_without_the_model(client_for):
    client = client_for(template_first=True)
    body = client.post("/v1/sql", json={"question": FITS}).json()
    assert body["status"] == "ok" and not client.engine.requests
    (attempt,) = body["attempts"]
    assert attempt["source"] == "template" and "'Calgary'" in attempt["sql"]
    assert body["result"]["rows"] and body["usage"]["completion_tokens"] == 0


def test_the_nearest_shape_whose_values_fit_answers(client_for):
    # The nearest pair (a city INTERSECT) keeps its 'Canada'; the third shape's price slot takes the 3.
    client = client_for(template_first=True, template_shapes=3)
    body = client.post("/v1/sql", json={"question": DOES_NOT_FIT}).json()
    (attempt,) = body["attempts"]
    assert (attempt["source"], attempt["rank"]) == ("template", 2) and not client.engine.requests
    assert "unit_price < 3" in attempt["sql"] and body["status"] == "ok"


def test_a_template_that_does_not_fit_goes_to_the_model_with_its_draft(client_for):
    client = client_for(template_first=True, template_shapes=1)
    body = client.post("/v1/sql", json={"question": DOES_NOT_FIT}).json()
    assert [a["source"] for a in body["attempts"]] == ["model"]
    assert body["attempts"][0]["sql"] == REPLY and body["status"] == "ok"
    (request,) = client.engine.requests
    assert DRAFT_LABEL in client.engine.detokenize(request.prompt_tokens)  # as trained: the draft is still shown


def test_a_fitting_template_that_fails_validation_gives_way_to_the_model(client_for, reject_sql):
    reject_sql(lambda sql: "Calgary" in sql)
    client = client_for(template_first=True)
    body = client.post("/v1/sql", json={"question": FITS}).json()
    assert [(a["source"], a["stage"]) for a in body["attempts"]] == [("template", "validation"), ("model", "ok")]
    assert len(client.engine.requests) == 1 and body["status"] == "ok"


def test_switched_off_the_model_always_writes(client_for):
    client = client_for(template_first=False)
    body = client.post("/v1/sql", json={"question": FITS}).json()
    assert [a["source"] for a in body["attempts"]] == ["model"] and len(client.engine.requests) == 1


# -- the same templates on PostgreSQL and MariaDB ------------------------------------------------
# No model is involved when a template answers, so the real databases need no real model either:
# what is checked is each template's dialect (dates, LIMIT, ROUND, set operations) on each engine.

PG_URL = "postgresql://postgres@127.0.0.1:5432/hearth_sample_template"
MYSQL_URL = "mysql://root@127.0.0.1:3306/hearth_sample_template"
# Seen-shape test questions (server/sql/sample/pairs/test.jsonl) whose nearest template fits.
QUESTIONS = [
    "What client companies do we have in Los Angeles?",
    "What orders do we have from David Legal Partners SAS, oldest first?",
    "Which channels did Small Business customers use in 2025, and how often?",
    "Which 10 products in Office Furniture cost the most?",
    "Number of orders in November 2024?",
    "What Paper & Notebooks products are more expensive than that category's mean price?",
]


@pytest.fixture(scope="module")
def engines_client(data_dir):
    from server.sql.sample.load import load_mysql, load_postgres
    from server.sql.sample.paths import PAIRS_DIR

    load_postgres(PG_URL, readonly_user=None)
    load_mysql(MYSQL_URL, readonly_user=None)
    examples = str(PAIRS_DIR / "train.jsonl")
    databases = [{"name": "sample", "url": f"sqlite:///{data_dir / 'sample.sqlite'}", "examples_path": examples},
                 {"name": "pg", "url": PG_URL, "examples_path": examples},
                 {"name": "maria", "url": MYSQL_URL, "examples_path": examples}]
    engine = FakeEngine(n_ctx=8192, reply=REPLY)
    settings = ServerSettings(databases=databases, sql={"template_first": True})
    with TestClient(create_app(settings, engine)) as client:
        client.engine = engine
        yield client


@pytest.mark.databases
@pytest.mark.parametrize("question", QUESTIONS)
def test_templates_answer_alike_on_sqlite_postgres_and_mariadb(engines_client, question):
    from server.sql.compare import is_ordered, same_result

    bodies = {db: engines_client.post("/v1/sql", json={"question": question, "database": db}).json()
              for db in ("sample", "pg", "maria")}
    assert {db: [a["source"] for a in b["attempts"]] for db, b in bodies.items()} == {
        "sample": ["template"], "pg": ["template"], "maria": ["template"]}
    assert not engines_client.engine.requests  # no model call on any engine
    rows = bodies["sample"]["result"]["rows"]
    assert rows, question
    for db in ("pg", "maria"):
        assert bodies[db]["status"] == "ok" and bodies[db]["dialect"] != "sqlite"
        assert same_result(rows, bodies[db]["result"]["rows"], ordered=is_ordered(bodies["sample"]["sql"])), db
