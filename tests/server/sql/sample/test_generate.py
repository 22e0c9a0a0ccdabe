"""The sample database generator: deterministic, realistic, referentially sound, built atomically."""

from __future__ import annotations

import os
import sqlite3
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from server.sql.sample import generate as gen
from server.sql.sample.ddl import TABLES, create_statements, database_schema, ddl_script


def test_same_seed_same_rows_other_seed_other_rows(sample_data) -> None:
    assert gen.generate() == sample_data
    other = gen.generate(seed=gen.DEFAULT_SEED + 1)
    assert other["orders"] != sample_data["orders"]
    assert other["regions"] == sample_data["regions"]  # fixed lists stay fixed


def test_size_and_shape(sample_data) -> None:
    assert len(TABLES) >= 6
    counts = {t: len(rows) for t, rows in sample_data.items()}
    assert counts["orders"] == 5000 and counts["customers"] == 500 and counts["products"] == 200
    assert counts["order_items"] > 10_000 and counts["payments"] > 4000 and counts["shipments"] > 4000
    assert sum(counts.values()) > 25_000
    for table in TABLES:  # every row matches its table's column count
        assert {len(row) for row in sample_data[table.name]} == {len(table.columns)}, table.name


def test_foreign_keys_hold(sample_conn: sqlite3.Connection) -> None:
    assert sample_conn.execute("PRAGMA foreign_key_check").fetchall() == []
    # The same check spelled out, so it cannot pass just because enforcement was off.
    for table in TABLES:
        for col in table.columns:
            if col.references:
                ref_table, ref_col = col.references.split(".")
                orphans = sample_conn.execute(
                    f"SELECT COUNT(*) FROM {table.name} t LEFT JOIN {ref_table} r ON r.{ref_col} = t.{col.name} "
                    f"WHERE t.{col.name} IS NOT NULL AND r.{ref_col} IS NULL").fetchone()[0]
                assert orphans == 0, f"{table.name}.{col.name}"


def test_dates_money_and_categories_look_real(sample_conn: sqlite3.Connection, sample_data) -> None:
    q = lambda sql: sample_conn.execute(sql).fetchall()  # noqa: E731
    assert q("SELECT MIN(order_date), MAX(order_date) FROM orders") == [("2023-01-01", "2025-12-31")]
    for (d,) in q("SELECT order_date FROM orders UNION SELECT shipped_date FROM shipments"):
        date.fromisoformat(d)
    assert all(isinstance(row[5], Decimal) and row[5] == row[5].quantize(Decimal("0.01")) for row in sample_data["products"])
    assert [r[0] for r in q("SELECT COUNT(*) FROM categories")] == [12]
    assert {r[0] for r in q("SELECT DISTINCT status FROM orders")} >= {"delivered", "cancelled", "returned", "shipped"}
    # Growth year on year, and a back-to-school peak over December.
    per_year = dict(q("SELECT substr(order_date, 1, 4), COUNT(*) FROM orders GROUP BY 1"))
    assert per_year["2023"] < per_year["2024"] < per_year["2025"]
    aug, dec = (q(f"SELECT COUNT(*) FROM orders WHERE substr(order_date, 6, 2) = '{m}'")[0][0] for m in ("08", "12"))
    assert aug > dec
    # Tables agree with each other: cancelled orders neither ship nor get paid; delivered ones arrived.
    assert q("SELECT COUNT(*) FROM orders o JOIN shipments s ON s.order_id = o.order_id "
             "WHERE o.status IN ('cancelled', 'pending', 'processing')") == [(0,)]
    assert q("SELECT COUNT(*) FROM orders o JOIN payments p ON p.order_id = o.order_id WHERE o.status = 'cancelled'") == [(0,)]
    assert q("SELECT COUNT(*) FROM orders o JOIN shipments s ON s.order_id = o.order_id "
             "WHERE o.status = 'delivered' AND s.delivered_date IS NULL") == [(0,)]
    # Some customers never order and some products never sell: anti-join questions have answers.
    assert q("SELECT COUNT(*) FROM customers c WHERE NOT EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = c.customer_id)")[0][0] > 10
    assert q("SELECT COUNT(*) FROM products p WHERE NOT EXISTS (SELECT 1 FROM order_items oi WHERE oi.product_id = p.product_id)")[0][0] >= 5


def test_ensure_builds_once_then_only_stats(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "nested" / "sample.sqlite"
    assert gen.ensure_sample_sqlite(target) == target
    stamp = target.stat().st_mtime_ns

    def boom(*args, **kwargs):
        raise AssertionError("rebuilt an up-to-date file")

    monkeypatch.setattr(gen, "build_sqlite", boom)
    assert gen.ensure_sample_sqlite(target) == target
    assert target.stat().st_mtime_ns == stamp
    assert [p.name for p in target.parent.iterdir()] == ["sample.sqlite"]  # no temp files left behind


def test_ensure_uses_the_data_dir_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEARTH_DATA_DIR", str(tmp_path))
    assert gen.ensure_sample_sqlite() == tmp_path / "sample.sqlite"
    with sqlite3.connect(tmp_path / "sample.sqlite") as conn:
        assert conn.execute("SELECT COUNT(*) FROM orders").fetchone() == (5000,)
        assert conn.execute("PRAGMA user_version").fetchone() == (gen.DATA_VERSION,)


@pytest.mark.parametrize("content", [b"", b"not a database at all", None])
def test_ensure_replaces_broken_or_outdated_files(tmp_path: Path, content: bytes | None) -> None:
    target = tmp_path / "sample.sqlite"
    if content is None:  # a real SQLite file from an older generator version
        with sqlite3.connect(target) as conn:
            conn.execute("CREATE TABLE old (x INTEGER)")
            conn.execute(f"PRAGMA user_version = {gen.DATA_VERSION - 1}")
    else:
        target.write_bytes(content)
    gen.ensure_sample_sqlite(target)
    with sqlite3.connect(target) as conn:
        assert conn.execute("SELECT COUNT(*) FROM customers").fetchone() == (500,)


def test_failed_build_leaves_no_file(tmp_path: Path) -> None:
    target = tmp_path / "sample.sqlite"
    with pytest.raises(KeyError):
        gen.build_sqlite(target, data={"regions": []})  # incomplete data: fails midway
    assert list(tmp_path.iterdir()) == []


def test_custom_data_is_never_taken_for_the_default(tmp_path: Path, sample_data) -> None:
    target = tmp_path / "sample.sqlite"
    gen.build_sqlite(target, seed=1)
    assert gen._file_version(target) == 0
    gen.ensure_sample_sqlite(target)
    assert gen._file_version(target) == gen.DATA_VERSION


def test_ddl_renders_for_every_dialect() -> None:
    for dialect in ("sqlite", "postgres", "mysql"):
        statements = create_statements(dialect)
        assert sum(s.startswith("CREATE TABLE") for s in statements) == len(TABLES)
        schema = database_schema(dialect)
        assert sorted(t.name for t in schema.tables) == sorted(t.name for t in TABLES)
        assert sum(len(t.foreign_keys) for t in schema.tables) >= 10
    assert "DATETIME" in ddl_script("mysql") and "DATETIME" not in ddl_script("postgres")
    with pytest.raises(ValueError):
        create_statements("oracle")


def test_sqlite_file_is_readable_by_others(sample_sqlite: Path) -> None:
    if os.name == "posix":
        assert sample_sqlite.stat().st_mode & 0o044 == 0o044
