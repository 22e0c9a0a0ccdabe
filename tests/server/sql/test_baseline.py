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


DAY_PAIRS = [
    Example("Which UPS shipments went out in the week of March 17, 2025?",
            "SELECT id FROM shipments WHERE carrier = 'UPS' AND shipped_date BETWEEN '2025-03-17' AND '2025-03-23'"),
    Example("List the orders from 2024-03-18.", "SELECT id FROM orders WHERE order_date = '2024-03-18'"),
    Example("What was the revenue in March 2024?",
            "SELECT SUM(total) FROM orders WHERE order_date >= '2024-03-01' AND order_date < '2024-04-01'"),
]
DAY_VALUES = ValueIndex([("shipments", "carrier", "UPS"), ("shipments", "carrier", "GLS")])


@pytest.mark.parametrize("question, sql", [
    # the day moves, not only the month: both ends of the week
    ("Which GLS shipments went out in the week of September 18, 2023?",
     "SELECT id FROM shipments WHERE carrier = 'GLS' AND shipped_date BETWEEN '2023-09-18' AND '2023-09-24'"),
    ("List the orders from 2024-05-02.", "SELECT id FROM orders WHERE order_date = '2024-05-02'"),
    ("List the orders from 2 May 2024.", "SELECT id FROM orders WHERE order_date = '2024-05-02'"),
])
def test_a_day_fills_a_day(question: str, sql: str) -> None:
    answer = TemplateBaseline(DAY_PAIRS, DAY_VALUES).answer(question)
    assert answer.sql == sql and answer.complete


def test_a_month_template_does_not_answer_a_day() -> None:
    answer = TemplateBaseline(DAY_PAIRS[2:], DAY_VALUES).answer("What was the revenue on March 5, 2024?")
    assert not answer.complete


NAME_PAIRS = [Example("Who ordered the product Stackwell 4-Drawer Filing Cabinet?",
                      "SELECT DISTINCT customer FROM orders WHERE product = 'Stackwell 4-Drawer Filing Cabinet'")]
NAME_VALUES = ValueIndex([("orders", "product", "Stackwell 4-Drawer Filing Cabinet"),
                          ("orders", "product", "Northpoint Surge Protector 6-Outlet")])


def test_the_digits_of_a_named_value_are_no_numbers() -> None:
    answer = TemplateBaseline(NAME_PAIRS, NAME_VALUES).answer(
        "Who ordered the product Northpoint Surge Protector 6-Outlet?")
    assert answer.sql.endswith("product = 'Northpoint Surge Protector 6-Outlet'")
    assert answer.complete and answer.unused == 0


WORD_PAIRS = [
    Example("List Safety items with no orders in 2025.",
            "SELECT name FROM products WHERE category = 'Safety' AND id NOT IN (SELECT product_id FROM sales "
            "WHERE sold >= '2025-01-01' AND sold < '2026-01-01')"),
    Example("Which customers have a credit limit of at least $50,000?",
            "SELECT name FROM customers WHERE credit_limit >= 50000"),
    Example("Which 10 customers have the highest credit limits?",
            "SELECT name FROM customers ORDER BY credit_limit DESC LIMIT 10"),
    Example("Which product costs the most?", "SELECT name FROM products ORDER BY price DESC LIMIT 1"),
]
WORD_VALUES = ValueIndex([("products", "category", "Safety")])


def test_a_weak_number_word_may_be_left_out_at_a_penalty() -> None:
    answer = TemplateBaseline(WORD_PAIRS[:1], WORD_VALUES).answer("What in Safety had zero sales in 2025?")
    assert answer.complete and (answer.unused, answer.unused_words) == (1, 1)


@pytest.mark.parametrize("pair", [1, 2])
def test_a_weak_number_word_fills_no_bound_nor_limit(pair: int) -> None:
    # "at least one customer" is not a credit limit of 1, nor the one customer with the highest
    answer = TemplateBaseline(WORD_PAIRS[pair:pair + 1], WORD_VALUES).answer(
        "Name every city where at least one customer is based.")
    assert not answer.fits


def test_a_number_word_that_is_a_quantity_must_be_used() -> None:
    base = TemplateBaseline(WORD_PAIRS[3:], WORD_VALUES)
    assert not base.answer("Which three products cost the most?").complete  # LIMIT 1 is not three
    top = TemplateBaseline(TRAIN, VALUES).answer("Which three products cost the most?")
    assert top.sql.endswith("LIMIT 3") and top.complete


def test_a_number_both_questions_name_keeps_its_slot() -> None:
    # Two-word windows reach the other number's words ("longest" sits near both); the value the
    # new question repeats ("2 or higher") is the same slot, and the other number takes the rest.
    pairs = [Example("Which 3 suppliers rated 2 or higher have the longest lead times?",
                     "SELECT name FROM suppliers WHERE rating >= 2 ORDER BY lead_time DESC LIMIT 3")]
    answer = TemplateBaseline(pairs).answer("5 suppliers with the longest lead times, rating 2 or higher")
    assert answer.sql == "SELECT name FROM suppliers WHERE rating >= 2 ORDER BY lead_time DESC LIMIT 5"


PROPER_PAIRS = [Example("How many customers are there in each segment?",
                        "SELECT segment, COUNT(*) FROM customers GROUP BY segment"),
                Example("How many orders were placed in March 2024?",
                        "SELECT COUNT(*) FROM orders WHERE order_date >= '2024-03-01' AND order_date < '2024-04-01'")]
PROPER_VALUES = ValueIndex([("customers", "country", "Belgium"), ("orders", "status", "shipped"),
                            ("employees", "first_name", "Jan")])


def test_a_stored_name_typed_in_lower_case_is_still_a_value() -> None:
    # 'Belgium' is stored as a name: "custmers in belgium by segment" asks about Belgium, so the
    # per-segment template that leaves it out may not answer as it is.
    answer = TemplateBaseline(PROPER_PAIRS[:1], PROPER_VALUES).answer("custmers in belgium by segment")
    assert answer.fits and answer.unused == 1 and not answer.complete
    # a code word ('shipped') may still be a plain word, and a month is a month, whoever is called Jan
    shipped = TemplateBaseline(PROPER_PAIRS[:1], PROPER_VALUES).answer("customers by segment that shipped")
    assert shipped.complete
    month = TemplateBaseline(PROPER_PAIRS[1:], PROPER_VALUES).answer("order count for jan 2023")
    assert month.complete and "'2023-01-01'" in month.sql


def test_a_like_pattern_the_pair_spells_is_a_slot_though_no_stored_value() -> None:
    # 'Paper' is in no column of the value index, yet the pair's question names it: the new
    # question's quoted or "called" name takes its place, and a question with neither leaves it
    # unfilled (never complete with the neighbour's 'Paper').
    pairs = [Example("List the SKU, name and price of all Paper products.",
                     "SELECT sku, name FROM products WHERE name LIKE '%Paper%' ORDER BY price")]
    tb = TemplateBaseline(pairs, ValueIndex([("customers", "city", "Berlin")]))
    quoted = tb.answer("find all products with 'Tape' in the name, show sku and price")
    assert quoted.sql == "SELECT sku, name FROM products WHERE name LIKE '%Tape%' ORDER BY price" and quoted.complete
    called = tb.answer("anything called Folders in the catalog: sku and name")
    assert called.sql == "SELECT sku, name FROM products WHERE name LIKE '%Folders%' ORDER BY price" and called.complete
    assert not tb.answer("list the sku and name of all products").complete


@pytest.mark.parametrize("question, sql, fits", [
    ("What is the status of order 2310?", "SELECT status FROM orders WHERE order_id = 2310", True),
    ("Look up order 2105: its status.", "SELECT status FROM orders WHERE order_id = 2105", True),  # read as a year too
    # a month is no order number: the template keeps its own and does not fit
    ("Which orders placed in April 2023 were late?", "SELECT status FROM orders WHERE order_id = 1952", False),
])
def test_a_year_like_number_compared_with_an_identifier_is_an_identifier(question, sql, fits) -> None:
    # mentions() reads "order 1952" as the year 1952; `order_id` says it is an order number
    base = TemplateBaseline([Example("Look up order 1952: what is its status?",
                                     "SELECT status FROM orders WHERE order_id = 1952")])
    answer = base.answer(question)
    assert (answer.sql, answer.fits) == (sql, fits)


@pytest.mark.parametrize("question, sql, fits", [
    ("What were sales in Q2 2025?", "order_date >= '2025-04-01' AND order_date < '2025-07-01'", True),
    ("Sales in the first quarter of 2024?", "order_date >= '2024-01-01' AND order_date < '2024-04-01'", True),
    ("2023-Q3 sales", "order_date >= '2023-07-01' AND order_date < '2023-10-01'", True),
    # a month or a year is no quarter: the template keeps its dates and does not fit
    ("Sales in March 2025?", "order_date >= '2025-10-01' AND order_date < '2026-01-01'", False),
    ("Sales in 2024?", "order_date >= '2025-10-01' AND order_date < '2026-01-01'", False),
])
def test_a_quarter_re_fills_a_quarter_s_three_months(question, sql, fits) -> None:
    base = TemplateBaseline([Example("Total revenue from orders placed in Q4 2025?",
                                     "SELECT SUM(total) FROM orders WHERE order_date >= '2025-10-01' "
                                     "AND order_date < '2026-01-01'")])
    answer = base.answer(question)
    assert sql in answer.sql and answer.fits is fits
