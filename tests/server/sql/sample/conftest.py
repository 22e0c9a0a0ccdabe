"""Fixtures for the sample database: generated rows, a SQLite copy, and copies on the local servers.

`sample_servers` loads the sample into PostgreSQL and MariaDB as superuser (databases named
`hearth_sample_test`, so a developer's own `hearth_sample` is never touched) and yields
connections made with the read-only login the loader creates, the way Hearth would connect.
Tests that use it are marked `databases`; it skips when a server is unreachable.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from server.sql.execute import to_jsonable
from server.sql.sample.generate import SampleData, ensure_sample_sqlite, generate
from server.sql.sample.ddl import database_schema
from server.sql.sample.build.pairs import build_pairs, load_pairs
from server.sql.validate import ValidationReport, validate_sql

TEST_DB = "hearth_sample_test"
PG_ADMIN_URL = f"postgresql://postgres@127.0.0.1:5432/{TEST_DB}"
MYSQL_ADMIN_URL = f"mysql://root@127.0.0.1:3306/{TEST_DB}"
READONLY_USER = "hearth_ro"


@pytest.fixture(scope="session")
def sample_data() -> SampleData:
    return generate()


@pytest.fixture(scope="session")
def sample_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample database file, built the way the server builds it at startup."""
    return ensure_sample_sqlite(tmp_path_factory.mktemp("sample") / "sample.sqlite")


@pytest.fixture(scope="session")
def sample_conn(sample_sqlite: Path) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(f"file:{sample_sqlite}?mode=ro", uri=True, check_same_thread=False)
    yield conn
    conn.close()


@pytest.fixture(scope="session")
def committed_pairs() -> list[dict]:
    return load_pairs()


@pytest.fixture(scope="session")
def fresh_pairs(sample_conn: sqlite3.Connection) -> list[dict]:
    """The pairs regenerated from the data now (the committed files must equal them)."""
    return build_pairs(sample_conn)


@pytest.fixture(scope="session")
def validated(committed_pairs: list[dict]) -> dict[str, dict[str, ValidationReport]]:
    """{dialect: {pair id: validate_sql report}}: gold SQL read as each engine's own dialect.

    Validation is the slow part (sqlglot, ~5 ms a statement), so it runs once per session and
    both the validator test and the cross-engine test use the reports.
    """
    out = {}
    for dialect in ("sqlite", "postgres", "mysql"):
        schema = database_schema(dialect)
        out[dialect] = {p["id"]: validate_sql(p["sql"], schema, max_rows=100_000) for p in committed_pairs}
    return out


Runner = Callable[[str], list[list]]  # SQL -> rows as the endpoint would return them (to_jsonable)


@dataclass
class Engines:
    run: dict[str, Runner]  # "sqlite", "postgres", "mariadb"
    load_results: dict[str, dict]  # what load_postgres / load_mysql returned


def _jsonable(rows) -> list[list]:
    return [[to_jsonable(v) for v in row] for row in rows]


@pytest.fixture(scope="session")
def sample_servers(sample_data: SampleData, sample_conn: sqlite3.Connection) -> Iterator[Engines]:
    psycopg = pytest.importorskip("psycopg")
    pymysql = pytest.importorskip("pymysql")
    from server.sql.sample.load import load_mysql, load_postgres

    try:
        psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=test connect_timeout=3").close()
        pymysql.connect(host="127.0.0.1", port=3306, user="root", password="", connect_timeout=3).close()
    except (psycopg.OperationalError, pymysql.err.OperationalError) as exc:
        pytest.skip(f"PostgreSQL or MariaDB not reachable: {exc}")

    results = {"postgres": load_postgres(PG_ADMIN_URL, data=sample_data, readonly_user=READONLY_USER),
               "mariadb": load_mysql(MYSQL_ADMIN_URL, data=sample_data, readonly_user=READONLY_USER)}
    # Connect as the read-only login: proves the grants work and that nothing can write.
    pg = psycopg.connect(f"host=127.0.0.1 port=5432 user={READONLY_USER} dbname={TEST_DB}", autocommit=True)
    my = pymysql.connect(host="127.0.0.1", port=3306, user=READONLY_USER, password="", database=TEST_DB,
                         charset="utf8mb4", autocommit=True)

    def run_pg(sql: str) -> list[list]:
        with pg.cursor() as cur:
            cur.execute(sql)  # no params: '%' in LIKE patterns stays literal
            return _jsonable(cur.fetchall())

    def run_my(sql: str) -> list[list]:
        with my.cursor() as cur:
            cur.execute(sql)
            return _jsonable(cur.fetchall())

    def run_lite(sql: str) -> list[list]:
        return _jsonable(sample_conn.execute(sql).fetchall())

    yield Engines({"sqlite": run_lite, "postgres": run_pg, "mariadb": run_my}, results)
    pg.close()
    my.close()
    with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=test", autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {TEST_DB} WITH (FORCE)")
    admin = pymysql.connect(host="127.0.0.1", port=3306, user="root", password="", autocommit=True)
    try:
        with admin.cursor() as cur:
            for host in ("%", "localhost"):  # the grant outlives the database otherwise
                try:
                    cur.execute(f"REVOKE SELECT ON `{TEST_DB}`.* FROM '{READONLY_USER}'@'{host}'")
                except pymysql.err.MySQLError:
                    pass
            cur.execute(f"DROP DATABASE IF EXISTS `{TEST_DB}`")
    finally:
        admin.close()
