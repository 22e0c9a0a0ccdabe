"""server/sql/edits.py: each rule on a table of queries, what `edits()` returns, and that an edit
of a sample template answers a question of a held-out shape on the real sample database."""

from __future__ import annotations

import sqlite3

import pytest
import sqlglot

from server.sql.compare import Gold, compare_to_gold, is_ordered
from server.sql.choice import ScoredCandidate
from server.sql.edits import RULES, edits, single_branch, swap_set_operation, with_edits
from server.sql.sample.generate import ensure_sample_sqlite

BOTH = ("SELECT city FROM customers WHERE country = 'Ireland' INTERSECT "
        "SELECT city FROM suppliers WHERE country = 'Ireland' ORDER BY city")

# (rule, query, the edits it makes, in order)
CASES = [
    (swap_set_operation, BOTH, [
        "SELECT city FROM customers WHERE country = 'Ireland' UNION SELECT city FROM suppliers WHERE country = 'Ireland' ORDER BY city",
        "SELECT city FROM customers WHERE country = 'Ireland' EXCEPT SELECT city FROM suppliers WHERE country = 'Ireland' ORDER BY city",
    ]),
    (swap_set_operation, "SELECT a FROM t UNION ALL SELECT a FROM u", []),  # stacked counts: left alone
    (swap_set_operation, "SELECT a FROM t WHERE b = 1", []),
    (single_branch, BOTH, [
        "SELECT DISTINCT city FROM customers WHERE country = 'Ireland' ORDER BY city",
        "SELECT DISTINCT city FROM suppliers WHERE country = 'Ireland' ORDER BY city",
    ]),
    (single_branch, "SELECT a FROM t UNION ALL SELECT a FROM u LIMIT 5", [  # ALL keeps duplicates: no DISTINCT
        "SELECT a FROM t LIMIT 5", "SELECT a FROM u LIMIT 5",
    ]),
    (single_branch, "SELECT a FROM t", []),
]


@pytest.mark.parametrize("rule, sql, expected", CASES, ids=[f"{c[0].__name__}-{i}" for i, c in enumerate(CASES)])
def test_rule(rule, sql, expected):
    tree = sqlglot.parse_one(sql, read="sqlite")
    before = tree.sql("sqlite")
    assert [e.sql("sqlite") for e in rule(tree)] == expected
    assert tree.sql("sqlite") == before  # pure: the input tree is not changed


def test_edits_runs_every_rule_names_it_and_drops_repeats():
    out = edits(BOTH)
    assert [e.rule for e in out] == ["swap_set_operation"] * 2 + ["single_branch"] * 2
    assert len({e.sql for e in out}) == len(out) and BOTH not in {e.sql for e in out}
    assert edits("SELECT a FROM t WHERE b = 1") == []
    assert edits("SELEC nonsense (") == []
    assert [r.__name__ for r in RULES] == ["swap_set_operation", "single_branch"]


def test_with_edits_offers_templates_first_then_new_edits_with_their_template_s_rank():
    union = BOTH.replace("INTERSECT", "UNION")
    offered = with_edits([ScoredCandidate(sql=BOTH, rank=0), ScoredCandidate(sql=union, rank=2),
                          ScoredCandidate(sql="SELECT a FROM t", rank=1)])
    assert [(c.rank, c.edit) for c in offered[:3]] == [(0, None), (2, None), (1, None)]
    # BOTH's swap to UNION is already the second template: offered once, as the template.
    assert [(c.rank, c.edit) for c in offered[3:]] == [(0, "swap_set_operation"), (0, "single_branch"),
                                                       (0, "single_branch")]
    assert len({c.sql for c in offered}) == len(offered) == 6


# Held-out shapes of the sample (server/sql/sample): no training pair has them, yet one edit of a
# training template is the gold query's answer.
HELD_OUT = [
    # "Which customers in Amsterdam ordered in 2023 but not in 2024?" from "ordered in both ... and ..."
    ("SELECT c.company_name FROM customers AS c JOIN orders AS o ON o.customer_id = c.customer_id "
     "WHERE c.city = 'Amsterdam' AND o.order_date >= '2023-01-01' AND o.order_date < '2024-01-01' INTERSECT "
     "SELECT c.company_name FROM customers AS c JOIN orders AS o ON o.customer_id = c.customer_id "
     "WHERE c.city = 'Amsterdam' AND o.order_date >= '2024-01-01' AND o.order_date < '2025-01-01' "
     "ORDER BY company_name",
     "swap_set_operation",
     "SELECT c.company_name FROM customers c JOIN orders o ON o.customer_id = c.customer_id WHERE c.city = 'Amsterdam' "
     "AND o.order_date >= '2023-01-01' AND o.order_date < '2024-01-01' EXCEPT SELECT c.company_name FROM customers c "
     "JOIN orders o ON o.customer_id = c.customer_id WHERE c.city = 'Amsterdam' AND o.order_date >= '2024-01-01' "
     "AND o.order_date < '2025-01-01' ORDER BY company_name"),
    # "In which cities in Sweden do we have customers?" from "cities with both customers and suppliers"
    ("SELECT city FROM customers WHERE country = 'Sweden' INTERSECT SELECT city FROM suppliers "
     "WHERE country = 'Sweden' ORDER BY city",
     "single_branch",
     "SELECT DISTINCT city FROM customers WHERE country = 'Sweden' ORDER BY city"),
]


@pytest.mark.parametrize("template, rule, gold", HELD_OUT, ids=["lapsed-customers", "distinct-cities"])
def test_an_edit_of_a_template_answers_a_held_out_shape(data_dir, template, rule, gold):
    conn = sqlite3.connect(ensure_sample_sqlite(data_dir / "sample.sqlite"))
    expected = [Gold(conn.execute(gold).fetchall(), is_ordered(gold))]
    assert expected[0].rows  # a non-empty answer, so matching it means something
    assert not compare_to_gold(conn.execute(template).fetchall(), expected).correct
    right = [e for e in edits(template) if compare_to_gold(conn.execute(e.sql).fetchall(), expected).correct]
    assert rule in {e.rule for e in right}
