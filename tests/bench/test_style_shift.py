"""bench/style_shift.py: the upper-case copy of a database, the rewriter into the classic datasets'
style (same rows), and on the sample: every rewritten pair returns the original's rows and has the
original's canonical form (no model)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from bench.style_shift import StyleRewriter, build_database, is_code_column, same_rows, sqlite_columns

DDL = """
CREATE TABLE customers (id INTEGER PRIMARY KEY, name VARCHAR(120), city VARCHAR(40), status VARCHAR(12),
                        email VARCHAR(40), signup DATE);
CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER REFERENCES customers(id), channel TEXT,
                     total REAL);
INSERT INTO customers VALUES (1, 'Acme Ltd', 'Berlin', 'active', 'a@acme.example', '2024-01-02'),
                             (2, 'Bolt GmbH', 'Paris', 'closed', 'b@bolt.example', '2024-02-03'),
                             (3, 'Cork Inc', 'New York', 'active', 'c@cork.example', '2024-03-04');
INSERT INTO orders VALUES (1, 1, 'web', 50), (2, 2, 'store', 150), (3, 3, 'web', 300), (4, 1, 'phone', 20);
"""

SQL = [
    "SELECT name FROM customers WHERE city = 'Berlin'",
    "SELECT c.name, o.total FROM customers c JOIN orders o ON o.customer_id = c.id WHERE o.channel = 'web' "
    "AND (c.status = 'active' OR c.city LIKE 'Par%') ORDER BY o.total",
    "SELECT name FROM customers WHERE id IN (SELECT customer_id FROM orders WHERE total > 100) ORDER BY name",
    "SELECT c.city, COUNT(*) AS n FROM customers c LEFT JOIN orders o ON o.customer_id = c.id GROUP BY c.city "
    "ORDER BY n DESC, c.city",
    "SELECT name FROM customers c WHERE EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = c.id AND "
    "o.channel IN ('store', 'phone')) UNION SELECT name FROM customers WHERE status = 'closed'",
    "SELECT d.city FROM (SELECT city, COUNT(*) AS n FROM customers GROUP BY city) AS d WHERE d.n >= 1 ORDER BY d.city",
]


@pytest.fixture()
def dbs(tmp_path: Path) -> tuple[Path, Path, dict]:
    src = tmp_path / "lower.sqlite"
    conn = sqlite3.connect(src)
    conn.executescript(DDL)
    conn.commit()
    conn.close()
    dst = tmp_path / "upper.sqlite"
    return src, dst, build_database(src, dst)


def test_the_copy_is_upper_case_with_its_code_like_values_upper_case(dbs) -> None:
    src, dst, code = dbs
    assert code == {"customers": {"city", "status"}, "orders": {"channel"}}  # not names, e-mails, dates
    assert sqlite_columns(dst) == {"CUSTOMERS": ["ID", "NAME", "CITY", "STATUS", "EMAIL", "SIGNUP"],
                                   "ORDERS": ["ID", "CUSTOMER_ID", "CHANNEL", "TOTAL"]}
    with sqlite3.connect(dst) as conn:
        assert conn.execute("SELECT NAME, CITY, STATUS FROM CUSTOMERS WHERE ID = 3").fetchone() == \
            ("Cork Inc", "NEW YORK", "ACTIVE")


def test_code_columns_are_short_text() -> None:
    assert is_code_column("VARCHAR(40)", ["Berlin"]) and is_code_column("TEXT", ["web", "store"])
    assert not is_code_column("VARCHAR(120)", ["Acme"]) and not is_code_column("DATE", ["2024-01-01"])
    assert not is_code_column("TEXT", ["a@b.example"]) and not is_code_column("INTEGER", [1])


@pytest.mark.parametrize("sql", SQL)
def test_rewritten_sql_is_in_the_classic_style_and_returns_the_same_rows(dbs, sql) -> None:
    from server.sql.compare import is_ordered

    src, dst, code = dbs
    shifted = StyleRewriter(sqlite_columns(src), code).rewrite(sql)
    with sqlite3.connect(src) as a, sqlite3.connect(dst) as b:
        assert same_rows(b.execute(shifted).fetchall(), a.execute(sql).fetchall(), is_ordered(sql)), shifted
    assert "'" not in shifted and " JOIN ORDERS" not in shifted.replace("LEFT JOIN ORDERS", "")
    assert "CUSTOMERSalias0." in shifted


def test_the_classic_style_spelled_out(dbs) -> None:
    src, _, code = dbs
    assert StyleRewriter(sqlite_columns(src), code).rewrite(SQL[1]) == (
        "SELECT CUSTOMERSalias0.NAME, ORDERSalias0.TOTAL FROM CUSTOMERS AS CUSTOMERSalias0, ORDERS AS ORDERSalias0 "
        'WHERE ORDERSalias0.CUSTOMER_ID = CUSTOMERSalias0.ID AND (ORDERSalias0.CHANNEL = "WEB" AND '
        '(CUSTOMERSalias0.STATUS = "ACTIVE" OR CUSTOMERSalias0.CITY LIKE "PAR%")) ORDER BY ORDERSalias0.TOTAL')


@pytest.mark.slow
def test_on_the_sample_every_pair_keeps_its_rows_and_its_canonical_form(data_dir, tmp_path: Path) -> None:
    from bench.style_shift import canonical_parity, shift_pairs
    from server.settings import ServerSettings
    from server.sql.sample.location import PAIRS_DIR
    from server.sql.sample.paths import ensure_sample_database, sample_sqlite_path

    ensure_sample_database(ServerSettings().databases)
    shifted_db = tmp_path / "upper.sqlite"
    code = build_database(sample_sqlite_path(), shifted_db)
    shifted = shift_pairs(sample_sqlite_path(), shifted_db, code, PAIRS_DIR, tmp_path)
    assert not shifted.failures, shifted.failures[:2]
    differ = canonical_parity(shifted, sample_sqlite_path(), shifted_db)
    assert not differ, differ[:2]
