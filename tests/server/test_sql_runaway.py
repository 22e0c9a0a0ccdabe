"""Queries that cannot finish are the model's error, not the server's (issue 26, item 5), on SQLite,
PostgreSQL and MariaDB with the sample data.

A join whose condition holds for nearly every pair of rows (`oi.order_id <> o.order_id`, orders x
order_items: ~77 million rows) passes the validator. Generated, it is caught by the planner's cost
estimate before it runs (server/sql/cost.py) or, with the check off, by the statement timeout;
either way it is a failed attempt fed back to the model, and the answer is a 200 naming what
happened. Written by the client on /v1/sql/validate, it runs as written and times out: 504.

The engine is scripted (a real model does not write a runaway join on cue); the databases and
their planners are real.
"""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from server.settings import ServerSettings
from server.sql.connections import Database
from server.sql.cost import DEFAULT_MAX_COST, estimate_cost
from server.sql.sample.paths import default_sample_config, ensure_sample_database
from server.sql.settings import DatabaseConfig
from server.sql.validate import validate_sql
from tests.server.test_sql_api import ScriptedEngine

pytestmark = [pytest.mark.databases]

DB = "hearth_sample_runaway"
URLS = {"sqlite": None, "postgres": f"postgresql://postgres@127.0.0.1:5432/{DB}",
        "mysql": f"mysql://root@127.0.0.1:3306/{DB}"}
RUNAWAY = ("SELECT o.customer_id, COUNT(*) AS n FROM orders AS o JOIN order_items AS oi ON oi.order_id <> o.order_id "
           "GROUP BY o.customer_id ORDER BY n DESC LIMIT 5")
FIXED = ("SELECT o.customer_id, COUNT(*) AS n FROM orders AS o JOIN order_items AS oi ON oi.order_id = o.order_id "
         "GROUP BY o.customer_id ORDER BY n DESC LIMIT 5")
# An explicit cartesian product: the validator rejects it (rules.joins_connect, cartesian_product),
# and the planner's cost would bound it too.
CROSS = "SELECT COUNT(*) FROM orders CROSS JOIN order_items"
QUESTION = "Which 5 customers have the most order lines?"


@pytest.fixture(scope="module")
def urls(data_dir):
    from server.sql.sample.load import load_mysql, load_postgres

    sqlite = default_sample_config()
    ensure_sample_database([sqlite])
    load_postgres(URLS["postgres"], readonly_user=None)
    load_mysql(URLS["mysql"], readonly_user=None)
    return URLS | {"sqlite": sqlite.url}


def _client(url: str, replies, **db) -> TestClient:
    config = {"name": "db", "url": url, **db}
    engine = ScriptedEngine(list(replies))
    client = TestClient(create_app(ServerSettings(databases=[config], sql={"template_first": False}), engine))
    client.engine = engine
    return client


@pytest.mark.parametrize("dialect", ["sqlite", "postgres", "mysql"])
def test_the_planner_prices_a_runaway_join_above_the_limit_and_gold_queries_below(urls, dialect):
    from server.sql.sample.build.pairs import load_pairs

    database = Database(DatabaseConfig(name="db", url=urls[dialect]))
    schema = database.schema()
    golds = []
    for pair in load_pairs("test"):
        report = validate_sql(pair["sql"], schema, dialect="sqlite", max_rows=1000)
        if report.valid:
            golds.append(report.sql)
    assert len(golds) > 50
    with database.readonly(30) as session:
        assert validate_sql(CROSS, schema, max_rows=1000).failed_rule == "joins_connect"
        runaway = min(estimate_cost(session, validate_sql(RUNAWAY, schema, max_rows=1000).sql),
                      estimate_cost(session, CROSS))
        gold = max(estimate_cost(session, sql) for sql in golds)
    database.dispose()
    # Well clear on each side: the check never refuses a sane query on this data.
    assert runaway > 3 * DEFAULT_MAX_COST[dialect] and DEFAULT_MAX_COST[dialect] > 50 * gold, (runaway, gold)


@pytest.mark.parametrize("dialect", ["sqlite", "postgres", "mysql"])
def test_a_costly_generated_query_is_fed_back_before_it_runs(urls, dialect):
    with _client(urls[dialect], [RUNAWAY, FIXED], statement_timeout_s=30) as client:
        started = time.monotonic()
        body = client.post("/v1/sql", json={"question": QUESTION, "max_attempts": 2}).json()
        assert body["status"] == "ok", body["attempts"]
        first, second = body["attempts"]
        assert (first["stage"], first["failed_rule"]) == ("execution", "query_cost")
        assert "max_query_cost" in first["error"] and second["stage"] == "ok"
        assert time.monotonic() - started < 20  # never ran: well inside its 30 s timeout
        retry_prompt = client.engine.detokenize(client.engine.requests[1].prompt_tokens)
        assert "oi.order_id <> o.order_id" in retry_prompt and "check the join conditions" in retry_prompt
        assert len(body["result"]["rows"]) == 5


@pytest.mark.parametrize("dialect", ["sqlite", "postgres", "mysql"])
def test_the_cost_limit_comes_from_the_settings(urls, dialect):
    with _client(urls[dialect], [FIXED], max_query_cost=1) as client:
        body = client.post("/v1/sql", json={"question": QUESTION, "max_attempts": 1}).json()
        assert body["status"] == "too_costly" and body["result"] is None
        assert "above the limit of 1" in body["attempts"][0]["error"]


@pytest.mark.parametrize("dialect", ["sqlite", "postgres", "mysql"])
def test_a_generated_query_past_the_statement_timeout_is_a_failed_attempt(urls, dialect):
    # The cost check off (0): only the statement timeout can stop it.
    with _client(urls[dialect], [RUNAWAY, FIXED], statement_timeout_s=1, max_query_cost=0) as client:
        body = client.post("/v1/sql", json={"question": QUESTION, "max_attempts": 2}).json()
        assert body["status"] == "ok", body["attempts"]
        first = body["attempts"][0]
        assert (first["stage"], first["failed_rule"]) == ("execution", "statement_timeout")
        assert "ran past the statement timeout (1 s)" in first["error"]
        retry_prompt = client.engine.detokenize(client.engine.requests[1].prompt_tokens)
        assert "check the join conditions" in retry_prompt

        client.engine.replies = [RUNAWAY]  # the model never fixes it: still a 200 that names it
        r = client.post("/v1/sql", json={"question": QUESTION, "max_attempts": 2})
        assert r.status_code == 200 and r.json()["status"] == "query_timeout"
        assert [a["failed_rule"] for a in r.json()["attempts"]] == ["statement_timeout"] * 2


@pytest.mark.parametrize("dialect", ["sqlite", "postgres", "mysql"])
def test_client_written_sql_past_the_timeout_is_a_504(urls, dialect):
    # No cost check for SQL the client wrote: it runs as written, bounded by the statement timeout.
    with _client(urls[dialect], ["SELECT 1"], statement_timeout_s=1) as client:
        r = client.post("/v1/sql/validate", json={"sql": RUNAWAY, "database": "db", "execute": True})
        assert r.status_code == 504
        assert r.json()["error"]["code"] == "query_timeout" and "'db'" in r.json()["error"]["message"]
        ok = client.post("/v1/sql/validate", json={"sql": FIXED, "database": "db", "execute": True})
        assert ok.status_code == 200 and len(ok.json()["result"]["rows"]) == 5
