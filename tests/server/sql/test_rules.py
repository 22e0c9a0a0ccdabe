"""Table-driven tests for the SQL validator (server/sql/rules.py + server/sql/validate.py).

reject.yaml: each hostile/invalid statement must fail on exactly the expected rule (and code).
accept.yaml: each valid query must pass; for SQLite entries the original text and the
regenerated SQL are both run on an in-memory shop database and must return the same rows.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import sqlite3
from collections import Counter
from pathlib import Path

import pytest
import sqlglot
import yaml
from sqlglot import exp

from server.sql import rules
from server.sql.grounding import Grounding
from server.sql.rules import RULES, RuleContext
from server.sql.schema import Column, DatabaseSchema, ForeignKey, Table
from server.sql.validate import ValidationReport, validate_sql

FIXTURES = Path(__file__).parent / "fixtures"
REJECT = yaml.safe_load((FIXTURES / "reject.yaml").read_text())
ACCEPT = yaml.safe_load((FIXTURES / "accept.yaml").read_text())
RULE_NAMES = [r.__name__ for r in RULES]


@pytest.fixture(autouse=True)
def _quiet_sqlglot():
    # sqlglot logs a warning for every Command fallback; the reject fixtures trigger dozens.
    logging.getLogger("sqlglot").setLevel(logging.ERROR)


def _col(name: str, type_: str = "INTEGER", pk: bool = False, nullable: bool = True) -> Column:
    return Column(name, type_, nullable=nullable, primary_key=pk)


SHOP = DatabaseSchema(
    name="shop",
    dialect="sqlite",
    tables=(
        Table("categories", (_col("id", pk=True), _col("name", "TEXT"), _col("parent_id")),
              (ForeignKey(("parent_id",), "categories", ("id",)),)),
        Table("products", (_col("id", pk=True), _col("category_id"), _col("name", "TEXT"),
                           _col("price", "NUMERIC(10,2)"), _col("stock"), _col("created_at", "DATE")),
              (ForeignKey(("category_id",), "categories", ("id",)),)),
        Table("customers", (_col("id", pk=True), _col("name", "TEXT"), _col("email", "TEXT"),
                            _col("country", "TEXT"), _col("created_at", "DATE"))),
        Table("orders", (_col("id", pk=True), _col("customer_id"), _col("status", "TEXT"),
                         _col("ordered_at", "DATE"), _col("total", "NUMERIC(10,2)")),
              (ForeignKey(("customer_id",), "customers", ("id",)),)),
        Table("order_items", (_col("id", pk=True), _col("order_id"), _col("product_id"), _col("quantity"),
                              _col("unit_price", "NUMERIC(10,2)")),
              (ForeignKey(("order_id",), "orders", ("id",)), ForeignKey(("product_id",), "products", ("id",)))),
    ),
)


def shop(dialect: str) -> DatabaseSchema:
    return dataclasses.replace(SHOP, dialect=dialect)


@pytest.fixture(scope="module")
def shop_db() -> sqlite3.Connection:
    """The SHOP schema in SQLite with a small deterministic data set (well under max_rows)."""
    db = sqlite3.connect(":memory:")
    for t in SHOP.tables:
        cols = ", ".join(f"{c.name} {c.type}{' PRIMARY KEY' if c.primary_key else ''}" for c in t.columns)
        db.execute(f"CREATE TABLE {t.name} ({cols})")
    rng = random.Random(42)
    db.executemany("INSERT INTO categories VALUES (?, ?, ?)", [
        (1, "Books", None), (2, "Garden", None), (3, "Novels", 1), (4, "Poetry", 1), (5, "Tools", 2),
        (6, "Seeds", 2)])
    db.executemany("INSERT INTO products VALUES (?, ?, ?, ?, ?, ?)", [
        (i, rng.choice([1, 2, 3, 4, 5, 6, None]), f"Product {i}", round(rng.uniform(2, 250), 2),
         rng.choice([0, 0, 3, 8, 15, 40]), f"2023-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}")
        for i in range(1, 13)])
    names = ["Alice", "Anton", "Bob", "O'Brien", "Carla", "Dieter", "Eve", "Frank", "Gina", "Hugo"]
    db.executemany("INSERT INTO customers VALUES (?, ?, ?, ?, ?)", [
        (i, n, None if i % 4 == 0 else f"{n.lower()}@{'example.com' if i % 3 else 'mail.de'}",
         rng.choice(["DE", "US", "FR"]), f"2023-{i:02d}-15") for i, n in enumerate(names, 1)])
    db.executemany("INSERT INTO orders VALUES (?, ?, ?, ?, ?)", [
        (i, rng.randint(1, 8), rng.choice(["paid", "shipped", "cancelled", "open"]),
         f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}", round(rng.uniform(5, 400), 2))
        for i in range(1, 31)])
    db.executemany("INSERT INTO order_items VALUES (?, ?, ?, ?, ?)", [
        (i, rng.randint(1, 30), rng.randint(1, 12), rng.randint(1, 6), round(rng.uniform(2, 250), 2))
        for i in range(1, 61)])
    return db


def _ids(entries: list[dict], key: str | None) -> list[str]:
    return [f"{i:03d}-{e['dialect']}" + (f"-{e[key]}" if key else "") for i, e in enumerate(entries)]


def _validate(entry: dict, **kw) -> ValidationReport:
    # An entry with a question is generated SQL: its literals must be ones the question names.
    grounding = Grounding.of(entry["question"]) if "question" in entry else None
    return validate_sql(entry["sql"], shop(entry["dialect"]), dialect=entry.get("read"), grounding=grounding, **kw)


# ------------------------------------------------------------------------------ fixtures' shape
def test_fixture_tables_are_big_enough_and_cover_every_rule():
    assert len(REJECT) >= 150 and len(ACCEPT) >= 50
    assert {e["rule"] for e in REJECT} == set(RULE_NAMES), "every rule needs a failing fixture"
    assert {e["dialect"] for e in REJECT} == {"sqlite", "postgres", "mysql"}
    assert sum(e["dialect"] == "sqlite" and "read" not in e for e in ACCEPT) >= 50
    assert all(set(e) <= {"sql", "dialect", "rule", "code", "read", "why", "question"} for e in REJECT + ACCEPT)


# ------------------------------------------------------------------------------ reject table
@pytest.mark.parametrize("entry", REJECT, ids=_ids(REJECT, "rule"))
def test_reject(entry):
    report = _validate(entry)
    assert not report.valid and report.sql is None
    assert (report.failed_rule, report.code) == (entry["rule"], entry.get("code", report.code)), report.message
    assert report.message
    # Every rule reported, in order: passed before the failure, False at it, None (not run) after.
    failed_at = RULE_NAMES.index(entry["rule"])
    assert [c.rule for c in report.checks] == RULE_NAMES
    assert [c.passed for c in report.checks] == [True] * failed_at + [False] + [None] * (
        len(RULE_NAMES) - failed_at - 1)


# ------------------------------------------------------------------------------ accept table
@pytest.mark.parametrize("entry", ACCEPT, ids=_ids(ACCEPT, None))
def test_accept(entry, shop_db):
    report = _validate(entry)
    assert report.valid, f"{report.failed_rule}/{report.code}: {report.message}"
    assert report.dialect == entry["dialect"] and all(c.passed for c in report.checks)
    # Regenerating is a fixpoint: the output validates again to itself.
    assert _validate(entry | {"sql": report.sql}).sql == report.sql
    if entry["dialect"] != "sqlite":
        return
    got = shop_db.execute(report.sql).fetchall()
    if entry.get("read", "sqlite") != "sqlite":
        return  # the original text is another dialect: it only has to run
    want = shop_db.execute(entry["sql"]).fetchall()
    if sqlglot.parse_one(report.sql, read="sqlite").args.get("order") is None:
        got, want = sorted(got, key=repr), sorted(want, key=repr)
    assert got == want


def test_accept_fixtures_return_rows(shop_db):
    # Guards the comparison above against vacuous passes: most queries must see data.
    empty = [e["sql"] for e in ACCEPT if e["dialect"] == "sqlite" and "read" not in e
             and not shop_db.execute(e["sql"]).fetchall()]
    assert len(empty) <= 5, empty


# ------------------------------------------------------------------------------ LIMIT
def _limit(sql: str, dialect: str) -> int:
    return int(sqlglot.parse_one(sql, read=dialect).args["limit"].expression.name)


@pytest.mark.parametrize("dialect", ["sqlite", "postgres", "mysql"])
def test_limit_is_capped_to_max_rows(dialect):
    report = validate_sql("SELECT name FROM customers LIMIT 100000", shop(dialect), max_rows=250)
    assert report.valid and _limit(report.sql, dialect) == 250


@pytest.mark.parametrize("dialect", ["sqlite", "postgres", "mysql"])
def test_limit_is_added_when_absent(dialect):
    report = validate_sql("SELECT name FROM customers", shop(dialect), max_rows=250)
    assert report.sql.endswith("LIMIT 250") and _limit(report.sql, dialect) == 250


def test_smaller_limit_and_offset_are_kept():
    report = validate_sql("SELECT name FROM customers ORDER BY name LIMIT 7 OFFSET 3", SHOP, max_rows=250)
    assert report.sql == "SELECT name FROM customers ORDER BY name LIMIT 7 OFFSET 3"
    report = validate_sql("SELECT name FROM customers LIMIT 3, 700", shop("mysql"), max_rows=250)
    assert report.sql == "SELECT name FROM customers LIMIT 250 OFFSET 3"


def test_limit_applies_to_a_set_operation_as_a_whole_not_to_branches():
    report = validate_sql("SELECT id FROM customers UNION SELECT id FROM products LIMIT 5000", SHOP, max_rows=9)
    tree = sqlglot.parse_one(report.sql, read="sqlite")
    assert isinstance(tree, exp.Union) and _limit(report.sql, "sqlite") == 9
    assert tree.this.args.get("limit") is None and tree.expression.args.get("limit") is None


def test_fetch_first_is_capped():
    report = validate_sql("SELECT name FROM customers FETCH FIRST 5000 ROWS ONLY", shop("postgres"), max_rows=20)
    assert report.sql == "SELECT name FROM customers LIMIT 20"


def test_subquery_limits_are_left_alone():
    sql = "SELECT name FROM customers WHERE id IN (SELECT customer_id FROM orders LIMIT 100000)"
    assert validate_sql(sql, SHOP, max_rows=10).sql == sql + " LIMIT 10"


def test_max_rows_must_be_positive():
    with pytest.raises(ValueError):
        validate_sql("SELECT 1", SHOP, max_rows=0)


# ------------------------------------------------------------------------------ output text
def test_output_is_regenerated_and_comments_are_dropped():
    sql = "select  name -- the name\nfrom customers /* all of them */ where id=1 # not a comment in sqlite"
    report = validate_sql(sql.rsplit(" #", 1)[0], SHOP)
    assert report.sql == "SELECT name FROM customers WHERE id = 1 LIMIT 1000"
    mysql = validate_sql("SELECT name /* x */ FROM customers # y", shop("mysql"))
    assert "/*" not in mysql.sql and "#" not in mysql.sql and "--" not in mysql.sql


def test_output_keeps_the_original_spelling_not_the_qualified_tree():
    report = validate_sql("SELECT c.name FROM customers c JOIN orders o ON o.customer_id = c.id", SHOP)
    assert report.sql == ("SELECT c.name FROM customers AS c JOIN orders AS o ON o.customer_id = c.id "
                          "LIMIT 1000")


def test_output_is_written_in_the_schema_dialect():
    report = validate_sql("SELECT name FROM customers WHERE name ILIKE 'a%'", SHOP, dialect="postgres")
    assert report.dialect == "sqlite" and "ILIKE" not in report.sql


# ------------------------------------------------------------------------------ report
def test_report_dict_shape():
    report = validate_sql("SELECT nope FROM customers", SHOP).to_dict()
    assert set(report) == {"valid", "sql", "dialect", "checks", "failed_rule", "code", "message"}
    assert report["valid"] is False and report["failed_rule"] == "known_columns"
    assert report["code"] == "unknown_column" and "nope" in report["message"]
    assert all(set(c) == {"rule", "passed", "message", "line", "col"} for c in report["checks"])


def test_location_points_at_the_offending_name():
    report = validate_sql("SELECT name,\n       bogus\nFROM customers", SHOP)
    failed = next(c for c in report.checks if c.passed is False)
    assert (failed.line, failed.col) == (2, 8)
    report = validate_sql("SELECT 1 FROM customers\nJOIN nowhere ON 1 = 1", SHOP)
    assert (report.checks[4].line, report.checks[4].col) == (2, 6)
    report = validate_sql("SELECT id,  PG_SLEEP(1) FROM customers", shop("postgres"))
    assert (report.checks[3].line, report.checks[3].col) == (1, 13)


def test_a_crashing_rule_fails_closed(monkeypatch):
    def boom(tree, ctx):
        raise RuntimeError("bug")

    monkeypatch.setattr(rules, "RULES", RULES[:2] + (boom,) + RULES[2:])
    report = validate_sql("SELECT name FROM customers", SHOP)
    assert not report.valid and report.sql is None
    assert (report.failed_rule, report.code) == ("boom", "internal_error")


def test_regenerated_text_is_rechecked(monkeypatch):
    # If the generator ever emitted something other than what was checked, `regenerates` catches it.
    monkeypatch.setattr(rules, "render_sql", lambda tree, dialect: "SELECT 1; DROP TABLE customers")
    report = validate_sql("SELECT name FROM customers", SHOP)
    assert (report.failed_rule, report.code) == ("regenerates", "roundtrip_failed")
    monkeypatch.setattr(rules, "render_sql", lambda tree, dialect: "SELECT name FROM customers")
    report = validate_sql("SELECT name FROM customers", SHOP)
    assert (report.code, report.message) == ("roundtrip_failed", "regenerated SQL lost its row limit")


# ------------------------------------------------------------------------------ rules are pure
def test_rules_do_not_mutate_their_input():
    ctx = RuleContext(sql="", schema=SHOP, read_dialect="sqlite", dialect="sqlite", max_rows=5,
                      mapping=SHOP.to_sqlglot_mapping())
    tree = sqlglot.parse_one("SELECT c.name FROM customers c LIMIT 100", read="sqlite")
    out = tree
    for rule in RULES[2:]:  # chain them as the runner does; no call may change its input
        given, text = out, out.sql()
        out = rule(given, ctx)
        assert given.sql() == text, rule.__name__
    assert out.sql() == "SELECT c.name FROM customers AS c LIMIT 5"


def test_rule_registry():
    assert RULE_NAMES == ["parses", "single_statement", "read_only", "safe_functions", "known_tables",
                          "known_columns", "joins_connect", "grounded_literals", "row_limit", "regenerates"]
    counts = Counter(e["rule"] for e in REJECT)
    assert min(counts.values()) >= 4, counts
