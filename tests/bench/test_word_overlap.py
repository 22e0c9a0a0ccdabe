"""bench/word_overlap.py: the word-overlap template peer on a tiny SQLite database, and its served-
templates replica on the sample (no model)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from bench.word_overlap import WordOverlapBaseline, sqlite_values

PAIRS = [
    {"question": "Which customers are based in Berlin?", "sql": "SELECT name FROM customers WHERE city = 'Berlin'"},
    {"question": "How many orders cost more than 100 dollars?",
     "sql": "SELECT COUNT(*) FROM orders WHERE amount > 100"},
    {"question": "Show the 5 customers with the highest credit limit",
     "sql": "SELECT name FROM customers ORDER BY credit DESC LIMIT 5"},
    {"question": "Which orders did customers from Berlin place in the store channel?",
     "sql": "SELECT o.id FROM orders AS o JOIN customers AS c ON c.id = o.customer_id "
            "WHERE c.city = 'Berlin' AND o.channel = 'store'"},
]


@pytest.fixture()
def db(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript("""
        CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT, city TEXT, credit REAL);
        CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER, amount REAL, channel TEXT);
        INSERT INTO customers VALUES (1, 'Acme', 'Berlin', 10), (2, 'Bolt', 'Paris', 20), (3, 'Cork', 'New York', 30);
        INSERT INTO orders VALUES (1, 1, 50, 'store'), (2, 2, 150, 'web'), (3, 3, 300, 'web'), (4, 2, 20, 'phone');
    """)
    conn.commit()
    conn.close()
    return path


def _rows(db: Path, sql: str) -> list:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql).fetchall()


def test_reads_the_short_text_values_per_column(db: Path) -> None:
    values = sqlite_values(db)
    assert values["city"] == {"Berlin", "Paris", "New York"}
    assert values["channel"] == {"store", "web", "phone"}
    assert values["amount"] == set()  # a column of numbers: named (a quoted "amount" is no value), no text values


def test_nearest_pair_by_word_overlap(db: Path) -> None:
    wo = WordOverlapBaseline(PAIRS, db)
    assert wo.nearest("Which customers are based in Paris?") == 0
    assert wo.nearest("How many orders cost more than 20 dollars?") == 1
    assert wo.nearest("Show the 2 customers with the highest credit limit") == 2
    assert wo.nearest("Which orders did customers from Paris place in the web channel?") == 3


def test_string_literal_refilled_with_the_value_the_question_names(db: Path) -> None:
    wo = WordOverlapBaseline(PAIRS, db)
    sql = wo.answer("Which customers are based in new york?")  # case-insensitive; the stored spelling goes in
    assert sql == "SELECT name FROM customers WHERE city = 'New York'"
    assert _rows(db, sql) == [("Cork",)]
    # two slots, each from its own column's values, whatever order the question names them in
    sql = wo.answer("Which orders did customers from Paris place in the web channel?")
    assert "c.city = 'Paris'" in sql and "o.channel = 'web'" in sql
    assert _rows(db, sql) == [(2,)]


def test_numbers_refilled_in_order(db: Path) -> None:
    wo = WordOverlapBaseline(PAIRS, db)
    sql = wo.answer("How many orders cost more than 120 dollars?")
    assert sql == "SELECT COUNT(*) FROM orders WHERE amount > 120"
    assert _rows(db, sql) == [(2,)]
    assert wo.answer("Show the 2 customers with the highest credit limit").endswith("LIMIT 2")


def test_a_value_the_question_does_not_name_keeps_the_template_literal(db: Path) -> None:
    wo = WordOverlapBaseline(PAIRS, db)
    # Atlantis is no stored city: the template's Berlin stays (the peer never refuses)
    assert wo.answer("Which customers are based in Atlantis?") == PAIRS[0]["sql"]
    # no number in the question: the template's 100 stays
    assert wo.answer("How many orders cost more than a hundred dollars?") == PAIRS[1]["sql"]


def test_values_may_be_given_instead_of_a_database() -> None:
    wo = WordOverlapBaseline([(p["question"], p["sql"]) for p in PAIRS], {"City": ["Lyon", "Berlin"]})
    assert wo.answer("Which customers are based in Lyon?") == "SELECT name FROM customers WHERE city = 'Lyon'"


def test_served_replica_answers_as_the_service_does(data_dir: Path, tmp_path: Path) -> None:
    """The replica of /v1/sql's template-first stage gives the SQL SqlService.generate() serves when
    its model declines (so only a template can answer), and says why it answered or not."""
    import asyncio

    from bench.word_overlap import Served
    from server.protocol.sql import SqlRequest
    from server.services.models import ModelPool
    from server.sql.prompt import CANNOT_ANSWER
    from tests.fakes import FakeEngine
    from training.evaluation.sql_data import sample_items

    every = sample_items()
    la = next(i for i in every if i.question == "What client companies do we have in Los Angeles?")
    unseen = [i for i in every if i.seen_shape is False]
    served = Served([la, *every[:10], *unseen], Path("unused"), tmp_path, {})
    pool = ModelPool({"fake": FakeEngine(reply=CANNOT_ANSWER, n_ctx=100_000)})
    try:
        # a question of a shape no pair has that no template answers: the model would write it
        unfit = next(i for i in unseen if served.answer(i)[0]["sql"] is None)
        items = [*every[:10], unfit]
        record, trace = served.answer(la)
        assert record["status"] == "ok" and record["source"] == "template" and "'Los Angeles'" in record["sql"]
        assert trace["complete"] and trace["tried"][0]["rank"] == record["rank"]
        answered = 0
        for item in items:
            record, _ = served.answer(item)
            reply = asyncio.run(served.service.generate(
                SqlRequest(question=item.question, database=item.database, max_rows=10_000), pool))
            assert record["sql"] == (reply.sql if reply.status == "ok" else None), item.question
            answered += record["sql"] is not None
        assert 0 < answered < len(items)  # both kinds were compared
    finally:
        served.close()


def test_a_double_quoted_value_is_refilled_like_a_string(db: Path) -> None:
    """Classic text-to-SQL datasets write values in double quotes; SQLite reads "Paris" as a string
    when no column has that name, sqlglot as a column. The peer re-fills it all the same."""
    wo = WordOverlapBaseline([("Which customers are based in Paris?",
                               'SELECT name FROM customers WHERE city = "Paris"')], db)
    assert wo.answer("Which customers are based in Berlin?") == "SELECT name FROM customers WHERE city = 'Berlin'"
