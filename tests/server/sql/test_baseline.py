"""The template + slot-filling baseline (server/sql/baseline.py), on hand-made pairs with known answers."""

from __future__ import annotations

import pytest

from server.sql.baseline import TemplateBaseline
from server.sql.mentions import ValueIndex
from server.sql.prompt import Example

TRAIN = [
    Example("How many customers are in Berlin?", "SELECT COUNT(*) FROM customers WHERE city = 'Berlin'"),
    Example("Which 5 products cost the most?", "SELECT name FROM products ORDER BY price DESC LIMIT 5"),
    Example("What was the revenue in March 2024?",
            "SELECT SUM(total) FROM orders WHERE order_date >= '2024-03-01' AND order_date < '2024-04-01'"),
    Example("Which customers in Paris ordered in 2023 and again in 2024?",
            "SELECT name FROM customers c JOIN orders o ON o.cid = c.id WHERE c.city = 'Paris' "
            "AND o.order_date >= '2023-01-01' AND o.order_date < '2024-01-01' INTERSECT "
            "SELECT name FROM customers c JOIN orders o ON o.cid = c.id WHERE c.city = 'Paris' "
            "AND o.order_date >= '2024-01-01' AND o.order_date < '2025-01-01'"),
    Example("Which suppliers are rated 3 or better and deliver within 30 days?",
            "SELECT name FROM suppliers WHERE rating >= 3 AND lead_days <= 30"),
    Example("List papers with the keyphrase \"Machine Learning\".",
            "SELECT title FROM paper WHERE LOWER(keyphrase) LIKE LOWER('%Machine Learning%')"),
    Example("How many orders were paid by credit card?", "SELECT COUNT(*) FROM payments WHERE method = 'credit_card'"),
    Example("How many active products are there?", "SELECT COUNT(*) FROM products WHERE discontinued = 0"),
    Example("What share of orders exceed 20%?", "SELECT COUNT(*) FROM orders WHERE discount > 0.2"),
]
VALUES = ValueIndex([
    ("customers", "city", "Berlin"), ("customers", "city", "Paris"), ("customers", "city", "Los Angeles"),
    ("customers", "city", "Lyon"), ("payments", "method", "credit_card"), ("payments", "method", "check"),
    ("customers", "country", "Germany"),
])


@pytest.fixture(scope="module")
def baseline() -> TemplateBaseline:
    return TemplateBaseline(TRAIN, VALUES)


@pytest.mark.parametrize("question, sql", [
    # a database value from the value index, multi-word
    ("How many customers are in Los Angeles?", "SELECT COUNT(*) FROM customers WHERE city = 'Los Angeles'"),
    # a number
    ("Which 10 products cost the most?", "SELECT name FROM products ORDER BY price DESC LIMIT 10"),
    ("Which three products cost the most?", "SELECT name FROM products ORDER BY price DESC LIMIT 3"),
    # a month-year period: both ends of the range move
    ("What was the revenue in December 2023?",
     "SELECT SUM(total) FROM orders WHERE order_date >= '2023-12-01' AND order_date < '2024-01-01'"),
    # two years and a city, each occurrence of one old value becomes the same new value
    ("Which customers in Lyon ordered in 2021 and again in 2025?",
     "SELECT name FROM customers AS c JOIN orders AS o ON o.cid = c.id WHERE c.city = 'Lyon' "
     "AND o.order_date >= '2021-01-01' AND o.order_date < '2022-01-01' INTERSECT "
     "SELECT name FROM customers AS c JOIN orders AS o ON o.cid = c.id WHERE c.city = 'Lyon' "
     "AND o.order_date >= '2025-01-01' AND o.order_date < '2026-01-01'"),
    # numbers paired by their context words, not by order of mention
    ("Which suppliers deliver within 7 days and are rated 4 or better?",
     "SELECT name FROM suppliers WHERE rating >= 4 AND lead_days <= 7"),
    # a quoted string inside LIKE wildcards
    ("List papers with the keyphrase \"Deep Learning\".",
     "SELECT title FROM paper WHERE LOWER(keyphrase) LIKE LOWER('%Deep Learning%')"),
    # the stored spelling, found from the question's words
    ("How many orders were paid by check?", "SELECT COUNT(*) FROM payments WHERE method = 'check'"),
    # a literal the neighbour's question does not mention is template, not slot
    ("How many active products are there in total?", "SELECT COUNT(*) FROM products WHERE discontinued = 0"),
    # a percentage fills a fraction slot
    ("What share of orders exceed 35%?", "SELECT COUNT(*) FROM orders WHERE discount > 0.35"),
])
def test_known_answers(baseline: TemplateBaseline, question: str, sql: str) -> None:
    assert baseline.answer(question).sql == sql


def test_answer_reports_neighbour_and_fills(baseline: TemplateBaseline) -> None:
    answer = baseline.answer("How many customers are in Lyon?")
    assert answer.neighbour == TRAIN[0]
    assert answer.filled == [("Berlin", "Lyon")] and answer.unfilled == 0
    assert 0 < answer.similarity <= 1


def test_a_slot_without_a_new_value_keeps_the_old_one(baseline: TemplateBaseline) -> None:
    answer = baseline.answer("Which products cost the most?")
    assert answer.sql == "SELECT name FROM products ORDER BY price DESC LIMIT 5"
    assert answer.unfilled == 1


def test_a_value_from_another_column_is_not_used(baseline: TemplateBaseline) -> None:
    # 'Germany' is a country: it must not land in the city slot.
    answer = baseline.answer("How many customers are in Germany?")
    assert "city = 'Berlin'" in answer.sql and answer.unfilled == 1


@pytest.mark.parametrize("question, fits", [
    ("How many customers are in Lyon?", True),            # the one slot filled
    ("Which 10 products cost the most?", True),
    ("Which products cost the most?", False),             # LIMIT 5 kept for want of a number
    ("How many customers are in Germany?", False),        # a country cannot fill the city slot
    ("How many active products are there in total?", True),  # no slots at all
])
def test_fits_means_every_slot_was_filled(baseline: TemplateBaseline, question: str, fits: bool) -> None:
    assert baseline.answer(question).fits is fits


def test_no_training_pairs_means_no_answer() -> None:
    assert TemplateBaseline([]).answer("anything").sql is None
    assert not TemplateBaseline([]).answer("anything").fits


# Two more pairs: Paris shares Berlin's SQL shape, Germany asks the same words of another column.
CITY_PAIRS = TRAIN + [
    Example("How many customers are in Paris?", "SELECT COUNT(*) FROM customers WHERE city = 'Paris'"),
    Example("How many customers are in Germany?", "SELECT COUNT(*) FROM customers WHERE country = 'Germany'"),
]


def test_answers_are_candidates_of_different_shapes_nearest_first() -> None:
    lyon = "SELECT COUNT(*) FROM customers WHERE city = 'Lyon'"
    pairs = CITY_PAIRS
    base = TemplateBaseline(pairs, VALUES)
    question = "How many customers are in Lyon?"
    three = base.answers(question, 3)
    assert len(three) == 3
    assert three[0].sql == base.answer(question).sql == lyon  # the first is the single draft
    skeletons = [base.skeleton(a.neighbour) for a in three]
    assert len(set(skeletons)) == 3  # Berlin and Paris share one shape: only the nearest of them is kept
    assert three[1].neighbour.sql == pairs[-1].sql  # the country query, next nearest shape
    assert [a.similarity for a in three] == sorted((a.similarity for a in three), reverse=True)
    assert [a.sql for a in base.answers(question, 1)] == [lyon]
    # leave_out skips the pair asking exactly that question (training drafts its own pairs so)
    left = base.answers("How many customers are in Paris?", 3, leave_out="How many customers are in Paris?")
    assert all(a.neighbour.question != "How many customers are in Paris?" for a in left)
    assert base.answers(question, 50) and len(base.answers(question, 50)) < len(pairs)  # one per shape
    assert TemplateBaseline([]).answers(question, 3) == []
