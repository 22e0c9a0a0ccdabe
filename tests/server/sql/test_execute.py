"""execute_readonly on SQLite, PostgreSQL and MariaDB: rows, caps, writes refused, time limits."""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from decimal import Decimal

import pytest

from server.errors import HearthError, InvalidRequest, QueryTimeout
from server.sql.execute import QueryResult, execute_readonly, to_jsonable
from tests.server.sql.test_connections import (  # noqa: F401  (pytest fixtures)
    FixtureDb,
    fixture_db,
    mariadb_fixture,
    postgres_fixture,
    sqlite_fixture,
)


def run(fixture_db: FixtureDb, sql: str, *, max_rows: int = 100, timeout_s: float = 5) -> QueryResult:
    return execute_readonly(fixture_db.database, sql, max_rows=max_rows, timeout_s=timeout_s)


def test_select_returns_columns_and_json_rows(fixture_db: FixtureDb) -> None:
    result = run(fixture_db, "SELECT id, total, placed_on FROM orders WHERE id <= 2 ORDER BY id")
    assert result.columns == ["id", "total", "placed_on"]
    assert result.rows == [[1, 19.99, "2024-01-05"], [2, 5.0, "2024-02-10"]]
    assert (result.row_count, result.truncated) == (2, False)
    assert result.elapsed_ms >= 0
    json.dumps(result.to_dict())


def test_sql_text_is_not_parsed_for_placeholders(fixture_db: FixtureDb) -> None:
    # In sqlalchemy.text() ':name' would be a bind parameter; for psycopg/PyMySQL '%' would be one.
    result = run(fixture_db, "SELECT note, '?' AS q FROM orders WHERE note LIKE '%:name%'")
    assert result.rows == [["first :name order 100%", "?"]]


@pytest.mark.parametrize("sql", ["SELECT 7 AS n;", "-- the count\nSELECT 7 AS n", "SELECT 7 AS n -- trailing note"])
def test_comments_and_a_trailing_semicolon_are_fine(fixture_db: FixtureDb, sql: str) -> None:
    assert run(fixture_db, sql).rows == [[7]]


def test_empty_result_keeps_its_columns(fixture_db: FixtureDb) -> None:
    result = run(fixture_db, "SELECT id, name FROM customers WHERE id < 0")
    assert (result.columns, result.rows, result.truncated) == (["id", "name"], [], False)


def test_row_cap_sets_truncated(fixture_db: FixtureDb) -> None:
    result = run(fixture_db, "SELECT id FROM orders ORDER BY id", max_rows=2)
    assert (result.rows, result.row_count, result.truncated) == ([[1], [2]], 2, True)
    exact = run(fixture_db, "SELECT id FROM orders ORDER BY id", max_rows=6)
    assert (exact.row_count, exact.truncated) == (6, False)


ENDLESS = {
    # Lazily evaluated: only a reader that stops after max_rows + 1 rows comes back.
    "sqlite": "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT n FROM r",
    "postgres": "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT n FROM r",
    # MariaDB materialises recursive CTEs; its SEQUENCE engine streams instead.
    "mariadb": "SELECT seq FROM seq_1_to_1000000000",
}


def test_huge_result_is_not_read_to_the_end(fixture_db: FixtureDb) -> None:
    # Reading the endless result to the end would hit the statement timeout and raise QueryTimeout;
    # rows come back only when the reader stops after max_rows + 1. No wall-time bound is needed.
    result = run(fixture_db, ENDLESS[fixture_db.kind], max_rows=3, timeout_s=60)
    assert (result.rows, result.truncated) == ([[1], [2], [3]], True)
    assert run(fixture_db, "SELECT COUNT(*) FROM customers").rows == [[3]]  # the pool is still fine


WRITES = [
    "INSERT INTO customers (id, name, country) VALUES (99, 'Mallory', 'XX')",
    "UPDATE orders SET total = 0",
    "DELETE FROM orders",
    "DROP TABLE orders",
    "CREATE TABLE evil (id INTEGER)",
    "SELECT 1; DELETE FROM orders",
]


@pytest.mark.parametrize("sql", WRITES)
def test_writes_fail_and_change_nothing(fixture_db: FixtureDb, sql: str) -> None:
    before = fixture_db.snapshot()
    with pytest.raises(InvalidRequest, match=fixture_db.database.name):
        run(fixture_db, sql)
    assert fixture_db.snapshot() == before


_DB = pytest.mark.databases
ESCAPES = [
    # Each engine's ways out of a read-only transaction; the steps run as separate calls.
    pytest.param("sqlite", ["PRAGMA query_only = OFF", "DELETE FROM orders"], id="sqlite-query_only"),
    pytest.param("sqlite", ["ATTACH DATABASE 'evil.db' AS evil"], id="sqlite-attach"),
    pytest.param("sqlite", ["COMMIT", "DELETE FROM orders"], id="sqlite-commit"),
    pytest.param("postgres", ["COMMIT; DELETE FROM orders"], id="pg-commit", marks=_DB),
    pytest.param(
        "postgres",
        ["SELECT set_config('default_transaction_read_only', 'off', false)", "DELETE FROM orders"],
        id="pg-set_config",
        marks=_DB,
    ),
    pytest.param(
        "postgres", ["SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE", "DELETE FROM orders"], id="pg-set", marks=_DB
    ),
    pytest.param(
        "postgres", ["WITH gone AS (DELETE FROM orders RETURNING id) SELECT COUNT(*) FROM gone"], id="pg-cte", marks=_DB
    ),
    pytest.param("postgres", ["SELECT 1 FROM customers FOR UPDATE"], id="pg-for-update", marks=_DB),
    pytest.param("postgres", ["SELECT sneaky_write()"], id="pg-function", marks=_DB),
    pytest.param("mariadb", ["SELECT sneaky_write()"], id="maria-function", marks=_DB),
    pytest.param("mariadb", ["SET SESSION TRANSACTION READ WRITE", "DELETE FROM orders"], id="maria-set", marks=_DB),
    pytest.param("mariadb", ["COMMIT", "DELETE FROM orders"], id="maria-commit", marks=_DB),
    pytest.param("mariadb", ["SET autocommit = 1", "UPDATE orders SET total = 0"], id="maria-autocommit", marks=_DB),
    pytest.param("mariadb", ["CREATE TEMPORARY TABLE t AS SELECT * FROM orders"], id="maria-temp", marks=_DB),
]


@pytest.mark.parametrize("kind, steps", ESCAPES)
def test_engine_specific_escapes_fail(
    kind: str, steps: list[str], request: pytest.FixtureRequest, tmp_path, monkeypatch
) -> None:
    fixture_db = request.getfixturevalue(f"{kind}_fixture")
    monkeypatch.chdir(tmp_path)  # where SQLite's ATTACH would create evil.db
    before = fixture_db.snapshot()
    for sql in steps:
        try:
            run(fixture_db, sql)
        except HearthError:
            pass  # refusing is fine; the snapshot below is what matters
    # Whatever earlier calls did to the session, the last one (the write) must fail.
    with pytest.raises(HearthError):
        run(fixture_db, steps[-1])
    assert fixture_db.snapshot() == before
    assert not (tmp_path / "evil.db").exists()


LOCKS = [
    # (take a session-level lock, ask the superuser whether anyone still holds it)
    pytest.param(
        "postgres",
        "SELECT pg_advisory_lock(424242)",
        "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 424242",
        marks=_DB,
    ),
    pytest.param("mariadb", "SELECT GET_LOCK('hearth_test_lock', 0)", "SELECT IS_USED_LOCK('hearth_test_lock') IS NOT NULL", marks=_DB),
]


@pytest.mark.parametrize("kind, take, held", LOCKS)
def test_session_locks_do_not_outlive_the_call(kind: str, take: str, held: str, request: pytest.FixtureRequest) -> None:
    fixture_db = request.getfixturevalue(f"{kind}_fixture")
    run(fixture_db, take)
    deadline = time.monotonic() + 30  # a closed MariaDB connection is reaped asynchronously (ms when idle)
    while fixture_db.admin(held)[0][0] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not fixture_db.admin(held)[0][0]


SLOW = {
    "sqlite": "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000000) SELECT COUNT(*) FROM c",
    "postgres": "SELECT pg_sleep(120)",
    "mariadb": "SELECT COUNT(*) FROM seq_1_to_100000 a, seq_1_to_100000 b",
}


def _assert_times_out(fixture_db: FixtureDb, sql: str, timeout_s: float = 0.5) -> None:
    started = time.monotonic()
    with pytest.raises(QueryTimeout, match=fixture_db.database.name):
        run(fixture_db, sql, timeout_s=timeout_s)
    # Each SLOW query runs for minutes uncancelled; the bound only tells "cancelled at the timeout"
    # from "ran to the end", with room for any machine's cancel round trip.
    assert time.monotonic() - started < 60
    assert run(fixture_db, "SELECT COUNT(*) FROM customers").rows == [[3]]  # connection reusable


def test_long_query_times_out(fixture_db: FixtureDb) -> None:
    _assert_times_out(fixture_db, SLOW[fixture_db.kind])


@pytest.mark.databases
def test_mariadb_sleep_times_out(mariadb_fixture: FixtureDb) -> None:
    # MariaDB 10.11 raises error 1969 here; where SLEEP() instead returns 1 when the statement
    # timer fires (MySQL), execute_readonly turns the over-long result into QueryTimeout.
    _assert_times_out(mariadb_fixture, "SELECT SLEEP(120)")


def test_query_errors_are_invalid_requests(fixture_db: FixtureDb) -> None:
    with pytest.raises(InvalidRequest, match="no_such_table|doesn't exist"):
        run(fixture_db, "SELECT * FROM no_such_table")


@pytest.mark.databases
def test_postgres_runtime_error_and_rich_types(postgres_fixture: FixtureDb) -> None:
    with pytest.raises(InvalidRequest, match="division by zero"):
        run(postgres_fixture, "SELECT 1 / 0")
    result = run(
        postgres_fixture,
        "SELECT 1.5::numeric AS n, 12345678901234567890.12::numeric AS big, 'NaN'::numeric AS nan,"
        " TIMESTAMP '2024-01-02 03:04:05' AS ts, '\\xdead'::bytea AS b, INTERVAL '26 hours' AS i,"
        " '6f1c2e4a-0000-4000-8000-000000000001'::uuid AS u, ARRAY[1, 2] AS a, '{\"k\": 1.5}'::jsonb AS j",
    )
    assert result.rows == [
        [1.5, "12345678901234567890.12", "NaN", "2024-01-02T03:04:05", "dead", "26:00:00",
         "6f1c2e4a-0000-4000-8000-000000000001", [1, 2], {"k": 1.5}]
    ]
    json.dumps(result.to_dict())


def test_to_jsonable_rules() -> None:
    assert to_jsonable(Decimal("19.99")) == 19.99 and to_jsonable(Decimal("1E+3")) == 1000.0
    assert to_jsonable(Decimal("0.1000000000000000000001")) == "0.1000000000000000000001"
    assert to_jsonable(Decimal("-Infinity")) == "-Infinity" and to_jsonable(float("nan")) == "nan"
    assert to_jsonable(dt.date(2024, 1, 2)) == "2024-01-02"
    assert to_jsonable(dt.time(3, 4, 5)) == "03:04:05"
    assert to_jsonable(dt.timedelta(seconds=-90.5)) == "-0:01:30.500000"
    assert to_jsonable(b"\x00\xff") == "00ff" and to_jsonable(memoryview(b"\x01")) == "01"
    assert to_jsonable(uuid.UUID(int=1)) == "00000000-0000-0000-0000-000000000001"
    assert to_jsonable({"a", "b"}) == ["a", "b"] and to_jsonable(True) is True
