"""server/sql/repairs.py: a template that goes the other way from its question, mirrored; and the
template stage offering the mirror after the template (server/services/sql_stages.py)."""

from __future__ import annotations

import pytest

from server.services.sql_stages import template_candidates
from server.sql.baseline import BaselineAnswer
from server.sql.repairs import repaired

OR_BOTH = ("SELECT city FROM customers WHERE country = 'Norway' INTERSECT "
           "SELECT city FROM suppliers WHERE country = 'Norway' ORDER BY city")


@pytest.mark.parametrize("dialect", ["sqlite", "postgres", "mysql"])
def test_a_superlative_the_other_way_is_flipped_in_the_dialects_own_null_order(dialect):
    assert repaired("Which 5 products are the cheapest?", "SELECT name FROM p ORDER BY price DESC, name LIMIT 5",
                    dialect) == ["SELECT name FROM p ORDER BY price ASC, name LIMIT 5"]
    assert repaired("What is the lowest price?", "SELECT MAX(price) FROM p", dialect) == ["SELECT MIN(price) FROM p"]


def test_a_query_that_already_goes_the_questions_way_is_left_alone():
    assert repaired("What is the highest price?", "SELECT MAX(price) FROM p") == []
    assert repaired("Which customers are in Oslo?", "SELECT name FROM c WHERE city = 'Oslo'") == []


def test_an_ordered_list_without_a_cut_is_no_superlative():
    # "minimum 3 accounts" bounds a count: flipping its most-first order lost a right answer.
    sql = ("SELECT city, COUNT(*) FROM customers WHERE country = 'United Kingdom' GROUP BY city "
           "HAVING COUNT(*) >= 3 ORDER BY COUNT(*) DESC, city")
    assert repaired("customer count per city in the United Kingdom, minimum 3 accounts", sql) == []


def test_set_operations_both_ways():
    union = OR_BOTH.replace("INTERSECT", "UNION")
    assert repaired("norway cities with a customer or a supplier (or both)", OR_BOTH) == [union]
    assert repaired("cities in Norway that have both a customer and a supplier", union) == [OR_BOTH]
    assert repaired("cities in Norway with 2 or more customers", OR_BOTH) == []  # a bound, no alternative


def test_the_template_stage_offers_the_mirror_and_the_cues_prefer_it():
    got = template_candidates([BaselineAnswer(OR_BOTH)], "norway cities with a customer or a supplier (or both)",
                              "sqlite")
    assert [(c.sql, c.rank, c.template) for c in got] == [(OR_BOTH.replace("INTERSECT", "UNION"), 0, OR_BOTH)]
