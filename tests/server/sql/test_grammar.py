"""The schema grammar (GBNF) run through llama.cpp's own grammar sampler, token by token."""

from __future__ import annotations

import pytest

from server.sql.grammar import sql_grammar
from server.sql.prompt import CANNOT_ANSWER, one_line
from server.sql.sample.ddl import database_schema
from server.sql.sample.build.pairs import load_pairs

pytestmark = pytest.mark.model


@pytest.mark.parametrize("sql", [
    "SELECT COUNT(*) FROM customers",
    "SELECT c.company_name, SUM(oi.quantity * oi.unit_price) AS revenue FROM customers c JOIN orders o "
    "ON o.customer_id = c.customer_id JOIN order_items oi ON oi.order_id = o.order_id "
    "WHERE o.order_date >= '2024-01-01' GROUP BY c.company_name HAVING COUNT(*) > 3 ORDER BY revenue DESC LIMIT 5",
    "SELECT product_name FROM products WHERE category_id IN (SELECT category_id FROM categories "
    "WHERE category_name = 'Desk Accessories') UNION SELECT 'x'",
    "SELECT city FROM customers EXCEPT SELECT city FROM suppliers;",
    CANNOT_ANSWER,
])
def test_accepts_real_queries(accepts, sql):
    assert accepts(sql)


@pytest.mark.parametrize("sql", [
    "SELECT nope FROM customers",                 # unknown column
    "SELECT * FROM secrets",                      # unknown table
    "SELECT orders.company_name FROM orders",     # a column of another table
    "SELECT made_up_alias.city FROM customers",   # a long name posing as an alias
    "DELETE FROM orders",                         # not a query
    "SELECT COUNT(*) FROM customers; DROP TABLE orders",
    "The answer is 42.",
])
def test_refuses_what_is_not_in_the_schema(accepts, sql):
    assert not accepts(sql)


def test_most_gold_queries_fit_the_grammar(accepts):
    # Gold SQL as written by people (CTEs and long aliases included) mostly fits; what does not
    # is the price of constraining, and bench/sql.py measures it on accuracy.
    pairs = load_pairs("train")[::10]
    fitting = sum(accepts(one_line(p["sql"])) for p in pairs)
    print(f"{fitting}/{len(pairs)} gold queries fit the grammar")
    assert fitting / len(pairs) >= 0.9, f"only {fitting}/{len(pairs)} gold queries fit"


@pytest.mark.parametrize("sql", [
    # sqlglot's own renderings, which canonical SQL (what training teaches) is made of
    "SELECT c.company_name FROM customers AS c CROSS JOIN orders AS o WHERE c.customer_id = o.customer_id",
    "SELECT COUNT(*) FROM customers CROSS JOIN suppliers",
    "SELECT c.company_name FROM customers AS c LEFT OUTER JOIN orders AS o ON o.customer_id = c.customer_id",
    "SELECT city FROM customers ORDER BY city NULLS LAST",
    "SELECT d.n FROM (SELECT COUNT(*) AS n FROM orders GROUP BY customer_id) AS d WHERE d.n > 2",
    "SELECT STRFTIME('%Y', order_date) AS yr, COUNT(*) FROM orders GROUP BY yr",
    "SELECT CASE status WHEN 'shipped' THEN 1 ELSE 0 END FROM orders WHERE TRUE",
    "SELECT SUBSTRING(city, 1, 3) FROM customers",
])
def test_accepts_the_canonical_renderings(accepts, sql):
    assert accepts(sql)
