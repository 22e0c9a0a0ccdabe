"""POST /v1/sql with the real model on SQLite, PostgreSQL and MariaDB, through a real server.

The server is configured with the sample database on all three engines, and on the two servers
with an account that CAN write (postgres superuser, MariaDB root): the attempts to write below
must be stopped by Hearth itself, by the validator and by its read-only transactions, not by
the account's privileges. After each attempt, every table's row count and a checksum of the
orders table must be unchanged.
"""

from __future__ import annotations

import sqlite3

import httpx
import pytest
import yaml

from server.sql.sample.load import load_mysql, load_postgres
from server.sql.sample.build.pairs import load_pairs
from tests.conftest import API_KEY, start_server, stop_server

pytestmark = [pytest.mark.model, pytest.mark.databases, pytest.mark.slow]

DB = "hearth_sample_api"
PG_URL = f"postgresql://postgres@127.0.0.1:5432/{DB}"
MYSQL_URL = f"mysql://root@127.0.0.1:3306/{DB}"
ENGINES = ["sample", "sample_pg", "sample_maria"]
TABLES = ["regions", "employees", "customers", "suppliers", "categories", "products", "orders",
          "order_items", "payments", "shipments"]

HOSTILE = [
    "DELETE FROM orders",
    "UPDATE orders SET status = 'cancelled'",
    "INSERT INTO regions (region_id, region_name) VALUES (999, 'Mars')",
    "DROP TABLE order_items",
    "SELECT 1; DELETE FROM orders",
    "WITH gone AS (DELETE FROM orders RETURNING *) SELECT * FROM gone",
    "SELECT * INTO backup FROM orders",
    "TRUNCATE payments",
    "SELECT order_id FROM orders FOR UPDATE",
    "/* harmless */ DELETE FROM orders -- ;SELECT 1",
]


@pytest.fixture(scope="module")
def sql_server(tmp_path_factory, data_dir):
    load_postgres(PG_URL, readonly_user=None)
    load_mysql(MYSQL_URL, readonly_user=None)
    tmp = tmp_path_factory.mktemp("sql-server")
    examples = str(load_pairs_path())
    config = {
        "databases": [
            {"name": "sample", "url": f"sqlite:///{data_dir / 'sample.sqlite'}", "examples_path": examples},
            {"name": "sample_pg", "url": PG_URL, "examples_path": examples},
            {"name": "sample_maria", "url": MYSQL_URL, "examples_path": examples},
        ],
        # These tests judge answers, not speed: a loaded 2-core box can take minutes per question.
        # The model's path (prompt, prefix cache, grammar, validator): no template answers first.
        "sql": {"generation_timeout_s": 900, "template_first": False},
    }
    (tmp / "hearth.yaml").write_text(yaml.safe_dump(config))
    server = start_server(tmp, "--config", str(tmp / "hearth.yaml"), "--api-keys", API_KEY, "--n-ctx", "2048",
                          "--n-slots", "2", env={"HEARTH_DATA_DIR": str(data_dir)})
    client = httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=900)
    yield client
    client.close()
    stop_server(server)


def load_pairs_path():
    from server.sql.sample.paths import PAIRS_DIR

    return PAIRS_DIR / "train.jsonl"


def snapshot(client: httpx.Client, database: str) -> list:
    """Row counts of every table and a checksum of orders, read through the endpoint itself."""
    counts = " UNION ALL ".join(f"SELECT '{t}', COUNT(*) FROM {t}" for t in TABLES)
    out = []
    for sql in (counts, "SELECT SUM(order_id * 7 + customer_id), COUNT(DISTINCT status) FROM orders"):
        body = client.post("/v1/sql/validate", json={"sql": sql, "database": database, "execute": True}).json()
        assert body["validation"]["valid"], body
        out.append(sorted(map(tuple, body["result"]["rows"])))
    return out


def test_databases_report_their_dialects(sql_server):
    listed = {d["name"]: d for d in sql_server.get("/v1/sql/databases").json()["data"]}
    assert {n: listed[n]["dialect"] for n in ENGINES} == {"sample": "sqlite", "sample_pg": "postgres",
                                                          "sample_maria": "mysql"}
    assert all(listed[n]["available"] and len(listed[n]["tables"]) == 10 for n in ENGINES)
    assert "postgres@" not in str(listed) and "root@" not in str(listed)


@pytest.mark.parametrize("database", ENGINES)
def test_model_answers_a_known_question_on_each_engine(sql_server, database, data_dir):
    pair = next(p for p in load_pairs("train") if p["id"] == "select.suppliers_in_country.00.q0")
    body = sql_server.post("/v1/sql", json={"question": pair["question"], "database": database}).json()
    assert body["status"] == "ok", body["attempts"]
    assert body["dialect"] == {"sample": "sqlite", "sample_pg": "postgres", "sample_maria": "mysql"}[database]
    gold = sqlite3.connect(f"file:{data_dir / 'sample.sqlite'}?mode=ro", uri=True).execute(pair["sql"]).fetchall()
    assert sorted(map(tuple, body["result"]["rows"])) == sorted(gold)
    assert body["validation"]["checks"][-1] == {"rule": "regenerates", "passed": True, "message": None,
                                                "line": None, "col": None}


@pytest.mark.parametrize("database", ENGINES)
def test_writes_through_the_endpoint_change_nothing(sql_server, database):
    before = snapshot(sql_server, database)
    for sql in HOSTILE:
        body = sql_server.post("/v1/sql/validate", json={"sql": sql, "database": database, "execute": True}).json()
        assert body["validation"]["valid"] is False, sql
        assert body["result"] is None
    # And a model asked to write: whatever it answers, nothing may change.
    answer = sql_server.post("/v1/sql", json={"question": "Delete every cancelled order from the orders table.",
                                              "database": database, "max_attempts": 1,
                                              "max_tokens": 48, "constrained": False}).json()
    assert answer["status"] in ("ok", "rejected", "unanswerable", "execution_error")
    if answer["sql"] is not None:
        assert answer["sql"].lstrip().upper().startswith(("SELECT", "WITH", "("))
    assert snapshot(sql_server, database) == before


def test_schema_prefix_is_reused_across_questions(sql_server):
    questions = ["How many customers are there?", "How many orders were placed in 2024?"]
    usage = [sql_server.post("/v1/sql", json={"question": q, "database": "sample", "execute": False}).json()["usage"]
             for q in questions]
    # The instructions and schema (over a thousand tokens) come first in every prompt, and all of
    # it is reused, not only its whole 128-token blocks: on a CPU build any prefix that leaves the
    # last 64 prompt tokens to recompute (slots.py, tiled chunks), elsewhere the prefix boundary.
    assert usage[1]["cached_tokens"] >= 1000
    assert usage[1]["prompt_tokens"] - usage[1]["cached_tokens"] < 90  # the question and its draft
