"""A value the database's own pairs imply for a word ("major" cities: POPULATION > 150000) passes
the grounded-literals rule in a template and answers, while a question without that word still has
it refused. Real SQLite with upper-case names as classic text-to-SQL sets write them, the real
validator and template stage; a fake engine that would answer wrong if asked."""

from __future__ import annotations

import contextlib
import json
import sqlite3

import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from server.settings import ServerSettings
from tests.fakes import FakeEngine

CITIES = [("houston", "texas", 2300000), ("austin", "texas", 960000), ("waco", "texas", 140000),
          ("columbus", "ohio", 900000), ("akron", "ohio", 190000), ("kent", "ohio", 27000),
          ("des moines", "iowa", 215000), ("ames", "iowa", 66000), ("salt lake city", "utah", 200000)]
PAIRS = [
    ("what are the major cities in texas", "SELECT CITY_NAME FROM CITY WHERE POPULATION > 150000 AND STATE_NAME = 'texas'"),
    ("what are the major cities in ohio", "SELECT CITY_NAME FROM CITY WHERE POPULATION > 150000 AND STATE_NAME = 'ohio'"),
    ("how many major cities does utah have", "SELECT COUNT(*) FROM CITY WHERE POPULATION > 150000 AND STATE_NAME = 'utah'"),
    ("which cities are in texas", "SELECT CITY_NAME FROM CITY WHERE STATE_NAME = 'texas'"),
    ("how many cities are there in ohio", "SELECT COUNT(*) FROM CITY WHERE STATE_NAME = 'ohio'"),
    ("what is the population of austin", "SELECT POPULATION FROM CITY WHERE CITY_NAME = 'austin'"),
]


@pytest.fixture()
def client_for(tmp_path, data_dir):
    db = tmp_path / "geo.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE CITY (CITY_NAME TEXT PRIMARY KEY, STATE_NAME TEXT, POPULATION INTEGER)")
        conn.executemany("INSERT INTO CITY VALUES (?, ?, ?)", CITIES)
    with contextlib.ExitStack() as stack:

        def make(pairs) -> TestClient:
            examples = tmp_path / "pairs.jsonl"
            examples.write_text("".join(json.dumps({"question": q, "sql": s}) + "\n" for q, s in pairs))
            settings = ServerSettings(
                databases=[{"name": "geo", "url": f"sqlite:///{db}", "examples_path": str(examples)}],
                sql={"template_first": True, "max_attempts": 1})
            client = stack.enter_context(TestClient(create_app(settings, FakeEngine(n_ctx=8192, reply="SELECT 1"))))
            return client

        yield make


def _ask(client, question: str) -> dict:
    return client.post("/v1/sql", json={"question": question, "database": "geo"}).json()


def test_the_implied_threshold_answers_from_a_template(client_for) -> None:
    body = _ask(client_for(PAIRS), "what are the major cities in iowa")
    assert body["status"] == "ok", body
    assert body["attempts"][0]["source"] == "template" and "POPULATION > 150000" in body["sql"]
    assert body["result"]["rows"] == [["des moines"]]


def test_without_pairs_that_teach_it_the_threshold_is_refused(client_for) -> None:
    # One pair says "major" means 150000: an anecdote, so the template's 150000 is unvouched.
    body = _ask(client_for(PAIRS[:1] + PAIRS[3:]), "what are the major cities in iowa")
    assert body["attempts"][0]["source"] == "template" and body["attempts"][0]["failed_rule"] == "grounded_literals"
    assert body["status"] != "ok" or "150000" not in (body["sql"] or "")
