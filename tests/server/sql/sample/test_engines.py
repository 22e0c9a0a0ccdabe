"""The sample on PostgreSQL and MariaDB: loaded completely, read-only for Hearth, and every gold
SQL answers the same on all three engines."""

from __future__ import annotations

import pytest

from server.sql.sample.ddl import TABLES
from server.sql.compare import is_ordered, same_result
from tests.server.sql.sample.conftest import Engines

pytestmark = pytest.mark.databases


def test_loaded_row_counts_match_sqlite(sample_servers: Engines) -> None:
    run = sample_servers.run
    for table in TABLES:
        counts = {engine: run[engine](f"SELECT COUNT(*) FROM {table.name}")[0][0] for engine in run}
        assert len(set(counts.values())) == 1, (table.name, counts)
    for result in sample_servers.load_results.values():
        assert result["readonly_user"] == "hearth_ro"
        assert result["rows"]["order_items"] == run["sqlite"]("SELECT COUNT(*) FROM order_items")[0][0]


@pytest.mark.parametrize("engine", ["postgres", "mariadb"])
def test_readonly_login_cannot_write(sample_servers: Engines, engine: str) -> None:
    with pytest.raises(Exception, match="(?i)read-only|denied|permission"):
        sample_servers.run[engine]("UPDATE products SET unit_price = 0 WHERE product_id = 1")
    assert sample_servers.run[engine]("SELECT unit_price FROM products WHERE product_id = 1")[0][0] != 0


def test_money_dates_and_text_survive_loading(sample_servers: Engines) -> None:
    sql = ("SELECT c.company_name, c.credit_limit, c.signup_date, p.paid_at, p.amount FROM payments p "
           "JOIN orders o ON o.order_id = p.order_id JOIN customers c ON c.customer_id = o.customer_id "
           "ORDER BY p.payment_id LIMIT 50")
    reference = sample_servers.run["sqlite"](sql)
    for engine in ("postgres", "mariadb"):
        assert same_result(reference, sample_servers.run[engine](sql), ordered=True), engine
    # Non-ASCII names come back identical, and sort by code point everywhere.
    names = "SELECT supplier_name FROM suppliers ORDER BY supplier_name"
    assert sample_servers.run["postgres"](names) == sample_servers.run["mariadb"](names) == sample_servers.run["sqlite"](names)


def test_every_gold_sql_agrees_on_all_engines(sample_servers: Engines, committed_pairs: list[dict],
                                              validated: dict) -> None:
    """Each gold SQL, run verbatim and as the validator re-renders it for the engine (what the
    endpoint would execute), gives SQLite's answer on PostgreSQL and MariaDB."""
    dialect_of = {"sqlite": "sqlite", "postgres": "postgres", "mariadb": "mysql"}
    mismatches = []
    for pair in committed_pairs:
        ordered = is_ordered(pair["sql"])
        reference = sample_servers.run["sqlite"](pair["sql"])
        for engine, run in sample_servers.run.items():
            report = validated[dialect_of[engine]][pair["id"]]
            variants = [("rendered", report.sql)] if engine == "sqlite" else [("gold", pair["sql"]), ("rendered", report.sql)]
            for label, sql in variants:
                try:
                    rows = run(sql)
                except Exception as exc:  # noqa: BLE001 - collect every failure, then report them together
                    mismatches.append((pair["id"], engine, label, f"error: {exc}"))
                    continue
                if not same_result(reference, rows, ordered=ordered):
                    mismatches.append((pair["id"], engine, label, f"sqlite {reference[:3]} vs {rows[:3]}"))
    assert mismatches == []
