"""server/sql/grounding.py: which literals a question vouches for, on the real sample values."""

from __future__ import annotations

import json

import pytest
import sqlglot

from server.sql.grounding import Grounding, compared_literals
from server.sql.mentions import ValueIndex


@pytest.fixture(scope="module")
def values(data_dir):
    from server.settings import ServerSettings
    from server.sql.sample.paths import ensure_sample_database, sample_sqlite_path

    ensure_sample_database(ServerSettings().databases)
    return ValueIndex.from_sqlite(sample_sqlite_path())


def _unsupported(question: str, sql: str, values=None) -> list[str]:
    g = Grounding.of(question, values)
    return [lit.sql() for lit, _ in compared_literals(sqlglot.parse_one(sql)) if not g.supports(lit)]


@pytest.mark.parametrize("question, sql, bad", [
    ("How many customers are in each segment?",
     "SELECT segment, COUNT(*) FROM customers WHERE country = 'Netherlands' GROUP BY segment", ["'Netherlands'"]),
    ("How many payments were made by credit card?", "SELECT COUNT(*) FROM payments WHERE method = 'credit_card'", []),
    ("Which Account Executives were hired before 2020?",
     "SELECT first_name FROM employees WHERE job_title = 'Account Executive' AND hire_date < '2020-01-01'", []),
    ("Orders in 2023", "SELECT COUNT(*) FROM orders WHERE order_date >= '2023-01-01' AND order_date < '2024-01-01'", []),
    ("Orders in 2023", "SELECT COUNT(*) FROM orders WHERE order_date >= '2021-01-01'", ["'2021-01-01'"]),
    ("Products under $12", "SELECT product_name FROM products WHERE unit_price < 12 AND discontinued = 0", []),
    ("Products under $12", "SELECT product_name FROM products WHERE unit_price < 15", ["15"]),
    ("Which products are out of stock?", "SELECT product_name FROM products WHERE units_in_stock = 0", []),
    ("Customers with names like 'Adams'", "SELECT company_name FROM customers WHERE company_name LIKE '%Adams%'", []),
    ("Orders placed in June", "SELECT COUNT(*) FROM orders WHERE STRFTIME('%m', order_date) = '06'", []),
    ("Orders shipped last month", "SELECT COUNT(*) FROM orders WHERE order_date >= '2024-05-01'", []),
    ("Orders in the past 30 days", "SELECT COUNT(*) FROM orders WHERE order_date >= '2024-05-01'", []),
    ("Customers who signed up 2 years ago", "SELECT COUNT(*) FROM customers WHERE signup_date < '2023-01-01'", []),
    # "last" or "latest" alone orders rows and vouches for no date (a copied year got through).
    ("When did each Small Business customer in Pittsburgh last order?",
     "SELECT MAX(order_date) FROM orders WHERE order_date >= '2025-01-01'", ["'2025-01-01'"]),
    ("Show the latest order of each customer", "SELECT MAX(order_date) FROM orders WHERE order_date < '2024-01-01'",
     ["'2024-01-01'"]),
])
def test_a_literal_is_supported_only_by_what_the_question_names(values, question, sql, bad):
    assert _unsupported(question, sql, values) == bad


def test_only_compared_literals_are_checked():
    sql = "SELECT ROUND(AVG(unit_price), 2), STRFTIME('%Y', signup_date) FROM customers LIMIT 7"
    assert list(compared_literals(sqlglot.parse_one(sql))) == []


def test_the_sample_training_pairs_are_all_grounded(values):
    """No gold query of the sample's training pairs fails the rule (its false rejections)."""
    from server.sql.sample.paths import PAIRS_DIR

    rows = [json.loads(line) for line in (PAIRS_DIR / "train.jsonl").read_text().splitlines() if line.strip()]
    rejected = [r["question"] for r in rows if _unsupported(r["question"], r["sql"], values)]
    assert not rejected, rejected[:3]
