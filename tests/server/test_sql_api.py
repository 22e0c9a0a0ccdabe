"""The Text-to-SQL routes' plumbing on the real sample SQLite database, with a scripted engine.

The engine is fake (these test the service's control flow: validation, self-correction,
refusals, error mapping); tests/server/test_sql_engines.py runs the real model on all three
database engines.
"""

from __future__ import annotations

from contextlib import aclosing

import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from server.settings import ServerSettings
from server.sql.prompt import CANNOT_ANSWER, DRAFT_LABEL
from tests.fakes import FakeEngine


class ScriptedEngine(FakeEngine):
    """Answers each generation with the next reply of a script (the last one repeats)."""

    def __init__(self, replies: list[str]):
        super().__init__(n_ctx=8192)
        self.replies = list(replies)

    async def generate(self, request):
        self.reply = self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]
        async with aclosing(super().generate(request)) as events:  # closing this closes the fake's stream
            async for event in events:
                yield event


@pytest.fixture()
def client_for(data_dir):
    clients = []

    def make(replies=("SELECT 1",), **settings) -> TestClient:
        engine = ScriptedEngine(list(replies))
        # The model's path: no template answers first (tests/server/services/test_sql_template_*.py).
        settings["sql"] = {"template_first": False, **settings.get("sql", {})}
        client = TestClient(create_app(ServerSettings(**settings), engine))
        client.engine = engine
        clients.append(client.__enter__())
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


def test_databases_lists_the_sample_schema_without_credentials(client_for):
    body = client_for().get("/v1/sql/databases").json()
    sample = body["data"][0]
    assert sample["name"] == "sample" and sample["dialect"] == "sqlite" and sample["available"]
    tables = {t["name"]: t for t in sample["tables"]}
    assert {"customers", "orders", "order_items", "products", "payments", "shipments"} <= set(tables)
    orders = tables["orders"]
    assert {"columns": ["customer_id"], "ref_table": "customers", "ref_columns": ["customer_id"]} in orders["foreign_keys"]
    assert "url" not in sample and "sqlite:" not in str(body)


def test_validate_accepts_and_caps_the_limit(client_for):
    r = client_for().post("/v1/sql/validate", json={"sql": "select count(*) as n from customers", "execute": True})
    assert r.status_code == 200
    body = r.json()
    assert body["validation"]["valid"] is True
    assert body["validation"]["sql"] == "SELECT COUNT(*) AS n FROM customers LIMIT 1000"
    assert body["result"]["columns"] == ["n"] and body["result"]["rows"][0][0] > 100


@pytest.mark.parametrize("sql, rule", [
    ("DELETE FROM orders", "read_only"),
    ("SELECT 1; DROP TABLE orders", "single_statement"),
    ("SELECT nope FROM customers", "known_columns"),
    ("SELECT * FROM secrets", "known_tables"),
])
def test_validate_rejection_is_a_200_naming_the_rule(client_for, sql, rule):
    r = client_for().post("/v1/sql/validate", json={"sql": sql, "execute": True})
    assert r.status_code == 200
    body = r.json()
    assert body["validation"]["valid"] is False and body["validation"]["failed_rule"] == rule
    assert body["result"] is None


def test_unknown_database_is_a_404_in_openai_shape(client_for):
    r = client_for().post("/v1/sql/validate", json={"sql": "SELECT 1", "database": "nope"})
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "database_not_found" and r.json()["error"]["param"] == "database"


def test_malformed_body_is_a_400(client_for):
    r = client_for().post("/v1/sql", json={"question": ""})
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"


def test_generate_runs_valid_sql_and_returns_rows(client_for):
    client = client_for(["SELECT segment, COUNT(*) FROM customers GROUP BY segment ORDER BY segment"])
    body = client.post("/v1/sql", json={"question": "How many customers per segment?"}).json()
    assert body["status"] == "ok"
    assert body["sql"].endswith("LIMIT 1000")
    assert body["result"]["row_count"] == len(body["result"]["rows"]) >= 3
    assert len(body["attempts"]) == 1 and body["attempts"][0]["stage"] == "ok"
    assert body["usage"]["prompt_tokens"] > 0 and body["timings"]["total_ms"] > 0


def test_self_correction_feeds_the_error_back(client_for):
    client = client_for(["SELECT total FROM orders", "SELECT COUNT(*) FROM orders"])
    body = client.post("/v1/sql", json={"question": "How many orders?", "max_attempts": 3}).json()
    assert body["status"] == "ok"
    assert [a["stage"] for a in body["attempts"]] == ["validation", "ok"]
    assert body["attempts"][0]["failed_rule"] == "known_columns"
    # The second prompt shows the model its failed query and the validator's message.
    second_prompt = client.engine.detokenize(client.engine.requests[1].prompt_tokens)
    assert "SELECT total FROM orders" in second_prompt and "That query failed" in second_prompt


def test_writes_are_never_executed(client_for):
    client = client_for(["DELETE FROM orders"])
    body = client.post("/v1/sql", json={"question": "Remove all orders", "max_attempts": 2}).json()
    assert body["status"] == "rejected" and body["sql"] is None and body["result"] is None
    assert [a["failed_rule"] for a in body["attempts"]] == ["read_only", "read_only"]
    count = client.post("/v1/sql/validate", json={"sql": "SELECT COUNT(*) FROM orders", "execute": True}).json()
    assert count["result"]["rows"][0][0] > 0


def test_refusal_is_reported_as_unanswerable(client_for):
    body = client_for([CANNOT_ANSWER]).post("/v1/sql", json={"question": "Who won the 2022 World Cup?"}).json()
    assert body["status"] == "unanswerable" and body["sql"] is None and len(body["attempts"]) == 1


def test_generation_past_the_deadline_ends_with_status_timeout(client_for):
    client = client_for(["SELECT COUNT(*) FROM orders WHERE status = 'shipped' AND total > 10 AND total < 99"],
                        sql={"generation_timeout_s": 1.5})
    # The first request reads the database's example pairs and values (~1 s): warm them first.
    client.post("/v1/sql", json={"question": "How many shipped orders?", "max_attempts": 1})
    client.engine.delay_s = 4.0  # 16 words at 4 s each: the reply would take 64 s
    body = client.post("/v1/sql", json={"question": "How many shipped orders?",
                                        "max_attempts": 3}).json()
    assert body["status"] == "timeout" and body["sql"] is None and body["result"] is None
    assert [a["stage"] for a in body["attempts"]] == ["timeout"]
    # Not before the 1.5 s deadline (no machine is faster than a deadline), and long before the
    # 64 s reply would end: the bounds tell a working deadline from a missing one on any machine.
    assert 1.4 < body["timings"]["total_ms"] / 1000 < 30
    assert client.engine.cancelled == 1  # the engine's request was cancelled, so its slot is free


def test_execute_false_returns_sql_without_rows(client_for):
    client = client_for(["SELECT COUNT(*) FROM products"])
    body = client.post("/v1/sql", json={"question": "How many products?", "execute": False}).json()
    assert body["status"] == "ok" and body["result"] is None and body["validation"]["valid"]


def test_database_down_is_a_503(client_for):
    down = {"name": "down", "url": "postgresql://nobody@127.0.0.1:1/none"}
    client = client_for(databases=[down])
    r = client.post("/v1/sql/validate", json={"sql": "SELECT 1", "database": "down"})
    assert r.status_code == 503 and r.json()["error"]["code"] == "database_unavailable"
    listed = client.get("/v1/sql/databases").json()["data"][0]
    assert listed["available"] is False and "database_unavailable" not in listed["error"] and listed["error"]


def test_prompt_lists_the_schema_and_nearest_examples(client_for):
    client = client_for(["SELECT COUNT(*) FROM customers"], sql={"few_shot_k": 3})
    client.post("/v1/sql", json={"question": "Which customers are based in Vancouver?"})
    prompt = client.engine.detokenize(client.engine.requests[0].prompt_tokens)
    assert "CREATE TABLE customers (" in prompt and prompt.count("<assistant>SELECT") == 3
    assert "WHERE city = 'Vancouver'" in prompt  # the train pair asking exactly this was retrieved
    # The default (few_shot_k 0): schema, question and draft in one turn, no example turns.
    plain = client_for(["SELECT COUNT(*) FROM customers"])
    plain.post("/v1/sql", json={"question": "Which customers are based in Vancouver?"})
    prompt = plain.engine.detokenize(plain.engine.requests[0].prompt_tokens)
    assert "CREATE TABLE customers (" in prompt and "<assistant>SELECT" not in prompt


def test_the_draft_carries_the_new_questions_values(client_for):
    """The draft is the nearest pair's SQL with this question's city in it; sql.draft=false omits it."""
    question = "Which customers are based in Calgary?"
    client = client_for(["SELECT COUNT(*) FROM customers"])
    client.post("/v1/sql", json={"question": question})
    prompt = client.engine.detokenize(client.engine.requests[0].prompt_tokens)
    last_turn = prompt.rsplit("<user>", 1)[1]
    assert f"Question: {question}\n{DRAFT_LABEL} SELECT" in last_turn
    assert "city = 'Calgary'" in last_turn.split(DRAFT_LABEL)[1]
    plain = client_for(["SELECT COUNT(*) FROM customers"], sql={"draft": False})
    plain.post("/v1/sql", json={"question": question})
    assert DRAFT_LABEL not in plain.engine.detokenize(plain.engine.requests[0].prompt_tokens)


def test_tool_definition_matches_the_request_schema(client_for):
    tool = client_for().get("/v1/sql/tool").json()
    assert tool["type"] == "function"
    assert set(tool["function"]["parameters"]["properties"]) <= {"question", "database"}


def test_metrics_count_validations(client_for):
    client = client_for()
    client.post("/v1/sql/validate", json={"sql": "DROP TABLE orders"})
    assert 'hearth_sql_validations_total{database="sample",rule="read_only"} 1.0' in client.get("/metrics").text


def test_the_token_budget_fits_the_longest_example_query(client_for):
    """A budget shorter than the example queries cuts a generated one mid-way; the fake engine
    counts characters, so the sample's longest canonical query sets the budget here."""
    client = client_for(["SELECT COUNT(*) FROM customers"])
    client.post("/v1/sql", json={"question": "How many customers?"})
    service = client.app.state.sql
    pairs = service.examples(service.database(None), service.registry.get("sample").schema())
    longest = max(len(ex.sql) for ex in pairs.examples)
    assert longest * 1.25 > 256  # so the test can tell the budget from the default
    budget = client.engine.requests[0].params.max_tokens
    assert budget >= longest * 1.25 and budget % 32 == 0 and budget - 32 < longest * 1.25
    client.post("/v1/sql", json={"question": "How many customers?", "max_tokens": 64})
    assert client.engine.requests[-1].params.max_tokens == 64  # the request's own limit wins
