"""DatabaseConfig, DatabaseRegistry and read-only sessions, against SQLite, PostgreSQL and MariaDB.

This module also holds the fixture databases that test_introspect.py and test_execute.py import:
the same small shop schema (customers, orders with a FK) in a SQLite file, in the PostgreSQL
database `hearth_test_exec` and in the MariaDB database `hearth_test_exec`. The server-side ones
are created and dropped by session fixtures as superuser; the superuser connection also counts
rows, so a test can prove the read-only path changed nothing.
"""

from __future__ import annotations

import socket
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydantic
import pytest
import sqlalchemy.exc

from server.errors import DatabaseNotFound, DatabaseUnavailable
from server.sql import readonly
from server.sql.connections import Database, DatabaseRegistry
from server.sql.execute import execute_readonly
from server.sql.settings import DatabaseConfig

TEST_DB = "hearth_test_exec"
PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres connect_timeout=3"
MARIADB_ADMIN = dict(host="127.0.0.1", port=3306, user="root", password="", connect_timeout=3)

SCHEMA = [
    "CREATE TABLE customers (id INTEGER PRIMARY KEY, name VARCHAR(80) NOT NULL, country CHAR(2))",
    "CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL, total NUMERIC(10,2) NOT NULL,"
    " placed_on DATE NOT NULL, note TEXT, FOREIGN KEY (customer_id) REFERENCES customers (id))",
    "INSERT INTO customers VALUES (1, 'Ada', 'GB'), (2, 'Linus', 'FI'), (3, 'Grace', 'US')",
    "INSERT INTO orders VALUES (1, 1, 19.99, '2024-01-05', 'first :name order 100%'),"
    " (2, 1, 5.00, '2024-02-10', NULL), (3, 2, 120.50, '2024-02-11', '" + "x" * 60 + "'),"
    " (4, 3, 7.25, '2024-03-01', NULL), (5, 3, 42.00, '2024-03-02', 'gift'), (6, 2, 0.99, '2024-03-03', NULL)",
]
SNAPSHOT = "SELECT (SELECT COUNT(*) FROM customers), (SELECT COUNT(*) FROM orders), (SELECT SUM(total) FROM orders)"


@dataclass
class FixtureDb:
    kind: str  # sqlite, postgres, mariadb
    database: Database
    admin: Callable[[str], list[tuple]]  # runs SQL as superuser (autocommit), returns all rows
    tables_sql: str  # lists the fixture database's table names, sorted

    def snapshot(self) -> tuple[Any, ...]:
        """Row counts, the order total and the table list, read over the superuser connection."""
        customers, orders, total = self.admin(SNAPSHOT)[0]
        return customers, orders, float(total), [r[0] for r in self.admin(self.tables_sql)]


def _config(name: str, url: str, **kw: Any) -> DatabaseConfig:
    return DatabaseConfig(name=name, url=url, **kw)


@pytest.fixture(scope="session")
def sqlite_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FixtureDb]:
    path = tmp_path_factory.mktemp("sqlite") / "shop.db"
    admin_conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    admin_conn.execute("PRAGMA foreign_keys = ON")
    for statement in SCHEMA:
        admin_conn.execute(statement)
    database = Database(_config("shop_sqlite", f"sqlite:///{path}"))
    yield FixtureDb(
        "sqlite",
        database,
        lambda sql: admin_conn.execute(sql).fetchall(),
        "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name",
    )
    database.dispose()
    admin_conn.close()


@pytest.fixture(scope="session")
def postgres_fixture() -> Iterator[FixtureDb]:
    psycopg = pytest.importorskip("psycopg")
    try:
        server = psycopg.connect(f"{PG_ADMIN} dbname=test", autocommit=True)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL not reachable: {exc}")
    server.execute(f"DROP DATABASE IF EXISTS {TEST_DB} WITH (FORCE)")
    server.execute(f"CREATE DATABASE {TEST_DB}")
    admin_conn = psycopg.connect(f"{PG_ADMIN} dbname={TEST_DB}", autocommit=True)
    for statement in SCHEMA:
        admin_conn.execute(statement)
    # Outside the default schema: introspection must not list it.
    admin_conn.execute("CREATE SCHEMA audit")
    admin_conn.execute("CREATE TABLE audit.hidden (id INTEGER PRIMARY KEY)")
    # A write hidden in a function: only the read-only transaction can stop `SELECT sneaky_write()`.
    admin_conn.execute(
        "CREATE FUNCTION sneaky_write() RETURNS INTEGER LANGUAGE sql"
        " AS $$ INSERT INTO customers VALUES (50, 'Eve', 'ZZ') RETURNING id $$"
    )
    database = Database(_config("shop_pg", f"postgresql://postgres:unused-pw@127.0.0.1:5432/{TEST_DB}"))

    def admin(sql: str) -> list[tuple]:
        cursor = admin_conn.execute(sql)
        return cursor.fetchall() if cursor.description else []

    yield FixtureDb(
        "postgres",
        database,
        admin,
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename",
    )
    database.dispose()
    admin_conn.close()
    server.execute(f"DROP DATABASE IF EXISTS {TEST_DB} WITH (FORCE)")
    server.close()


@pytest.fixture(scope="session")
def mariadb_fixture() -> Iterator[FixtureDb]:
    pymysql = pytest.importorskip("pymysql")
    try:
        admin_conn = pymysql.connect(autocommit=True, **MARIADB_ADMIN)
    except pymysql.err.OperationalError as exc:
        pytest.skip(f"MariaDB not reachable: {exc}")

    def admin(sql: str) -> list[tuple]:
        with admin_conn.cursor() as cursor:
            cursor.execute(sql)
            return list(cursor.fetchall())

    admin(f"DROP DATABASE IF EXISTS {TEST_DB}")
    admin(f"CREATE DATABASE {TEST_DB}")
    admin(f"USE {TEST_DB}")
    for statement in SCHEMA:
        admin(statement)
    admin(
        "CREATE FUNCTION sneaky_write() RETURNS INTEGER MODIFIES SQL DATA"
        " BEGIN INSERT INTO customers VALUES (50, 'Eve', 'ZZ'); RETURN 1; END"
    )
    database = Database(_config("shop_maria", f"mariadb://root@127.0.0.1:3306/{TEST_DB}"))
    yield FixtureDb(
        "mariadb",
        database,
        admin,
        f"SELECT table_name FROM information_schema.tables WHERE table_schema = '{TEST_DB}' ORDER BY table_name",
    )
    database.dispose()
    admin(f"DROP DATABASE IF EXISTS {TEST_DB}")
    admin_conn.close()


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.databases),
        pytest.param("mariadb", marks=pytest.mark.databases),
    ]
)
def fixture_db(request: pytest.FixtureRequest) -> FixtureDb:
    return request.getfixturevalue(f"{request.param}_fixture")


# --- settings -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url, dialect",
    [
        ("sqlite:////srv/app.db", "sqlite"),
        ("postgresql://u:p@db/sales", "postgres"),
        ("postgresql+psycopg2://u:p@db/sales", "postgres"),
        ("mysql+pymysql://u:p@db/shop", "mysql"),
        ("mariadb://u:p@db/shop", "mysql"),
    ],
)
def test_dialect_is_derived_from_url(url: str, dialect: str) -> None:
    config = _config("x", url)
    assert config.dialect == dialect
    assert _config("x", url, dialect=dialect).dialect == dialect


@pytest.mark.parametrize(
    "url, kw",
    [
        ("oracle://u:s3cret@db/x", {}),
        ("sqlite://", {}),
        ("sqlite:///:memory:", {}),
        ("postgresql://u:s3cret@db/x", {"dialect": "mysql"}),
        ("not a url s3cret", {}),
    ],
)
def test_bad_configs_are_rejected_without_echoing_the_password(url: str, kw: dict) -> None:
    with pytest.raises(pydantic.ValidationError) as info:
        _config("x", url, **kw)
    assert "s3cret" not in str(info.value)


def test_redacted_url_and_repr_hide_every_password() -> None:
    config = _config("sales", "postgresql://reader:s3cr%40t@db.example:5432/sales?sslmode=require&password=other1")
    shown = config.redacted_url()
    assert "s3cr" not in shown and "other1" not in shown
    assert "reader@db.example:5432/sales" in shown and "sslmode=require" in shown
    assert "s3cr" not in repr(config) and "s3cr" not in str(config)


def test_fields_have_descriptions_and_defaults() -> None:
    for name, field in DatabaseConfig.model_fields.items():
        assert field.description, name
    config = _config("x", "sqlite:////srv/app.db")
    assert (config.statement_timeout_s, config.max_rows, config.sample_values) == (10, 1000, 5)
    assert config.examples_path is None


# --- registry -------------------------------------------------------------------------------


def test_registry_lookup_is_lazy_and_unknown_names_are_not_found() -> None:
    registry = DatabaseRegistry([_config("a", "postgresql://u:p@127.0.0.1:1/x"), _config("b", "sqlite:////nope.db")])
    assert registry.names() == ["a", "b"] and "a" in registry and len(registry) == 2
    assert registry.get("a")._engine is None  # nothing connected yet
    with pytest.raises(DatabaseNotFound, match="'c'.*a, b"):
        registry.get("c")
    with pytest.raises(ValueError, match="twice"):
        registry.add(_config("a", "sqlite:////other.db"))
    registry.close()


# --- read-only sessions -----------------------------------------------------------------------


def test_sessions_are_read_only_with_a_time_limit(fixture_db: FixtureDb) -> None:
    with fixture_db.database.readonly(1.5) as session:
        conn = session.conn
        if fixture_db.kind == "sqlite":
            assert conn.exec_driver_sql("PRAGMA query_only").scalar() == 1
        elif fixture_db.kind == "postgres":
            assert conn.exec_driver_sql("SHOW transaction_read_only").scalar() == "on"
            assert conn.exec_driver_sql("SHOW statement_timeout").scalar() == "1500ms"
        else:
            assert session.flavour == "mariadb"
            assert conn.exec_driver_sql("SELECT @@session.tx_read_only").scalar() == 1
            assert float(conn.exec_driver_sql("SELECT @@session.max_statement_time").scalar()) == 1.5


@pytest.mark.parametrize(
    "url",
    ["postgresql://postgres:hunter2@127.0.0.1:1/test", "mariadb://root:hunter2@127.0.0.1:1/test"],
    ids=["postgres", "mariadb"],
)
def test_a_database_that_is_down_is_unavailable_quickly(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # A refused connection must fail at once, not wait out the connect timeout or retry: with a
    # 120 s connect timeout, anything but an immediate failure takes far longer than the bound,
    # and the bound is far above what any machine needs for a refused TCP connect.
    monkeypatch.setattr(readonly, "CONNECT_TIMEOUT_S", 120)
    database = Database(_config("down_db", url))
    started = time.monotonic()
    with pytest.raises(DatabaseUnavailable) as info:
        execute_readonly(database, "SELECT 1", max_rows=1, timeout_s=1)
    assert time.monotonic() - started < 60
    assert "down_db" in info.value.message and "hunter2" not in info.value.message
    with pytest.raises(DatabaseUnavailable):
        database.schema()
    database.dispose()


@pytest.mark.parametrize("scheme", ["postgresql", "mariadb"])
def test_a_server_that_never_answers_is_unavailable_after_the_connect_timeout(
    scheme: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The connect timeout, not the 600 s query timeout, ends the wait: the bound sits far above the
    # 2 s timeout (any machine meets it) and far below the query timeout (a wrong wait misses it).
    monkeypatch.setattr(readonly, "CONNECT_TIMEOUT_S", 2)  # libpq's minimum
    with socket.socket() as listener:  # accepts TCP (in the kernel backlog), never says a word
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        database = Database(_config("silent_db", f"{scheme}://u:hunter2@127.0.0.1:{port}/x"))
        started = time.monotonic()
        with pytest.raises(DatabaseUnavailable, match="silent_db"):
            execute_readonly(database, "SELECT 1", max_rows=1, timeout_s=600)
        assert time.monotonic() - started < 60
        database.dispose()


@pytest.mark.databases
@pytest.mark.parametrize(
    "url",
    [
        f"postgresql://hearth_no_such_role:hunter2@127.0.0.1:5432/{TEST_DB}",
        "mariadb://hearth_no_such_user:hunter2@127.0.0.1:3306/test",
        "postgresql://postgres@127.0.0.1:5432/hearth_no_such_database",
    ],
    ids=["postgres-role", "mariadb-user", "postgres-database"],
)
def test_failed_login_is_unavailable_and_names_the_database(url: str) -> None:
    database = Database(_config("login_db", url))
    with pytest.raises(DatabaseUnavailable) as info:
        execute_readonly(database, "SELECT 1", max_rows=1, timeout_s=1)
    assert "login_db" in info.value.message and "hunter2" not in info.value.message
    database.dispose()


def test_missing_sqlite_file_is_unavailable_and_never_created(tmp_path: Path) -> None:
    path = tmp_path / "missing.db"
    database = Database(_config("gone", f"sqlite:///{path}"))
    with pytest.raises(DatabaseUnavailable, match="gone"):
        execute_readonly(database, "SELECT 1", max_rows=1, timeout_s=1)
    with pytest.raises(DatabaseUnavailable):
        database.schema()
    assert not path.exists()
    # Even past the file check, the read-only URI refuses to create it.
    with pytest.raises((sqlite3.OperationalError, sqlalchemy.exc.OperationalError), match="unable to open"):
        database.engine.raw_connection()
    assert not path.exists()
    database.dispose()
