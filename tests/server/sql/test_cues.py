"""server/sql/cues.py: a query's structure against its question's words."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from server.sql.cues import CUES, agreement, best_agreeing, most_named, named_words, stray_outputs


@pytest.mark.parametrize("question, right, wrong", [
    ("Which product has the least stock?", "SELECT name FROM p ORDER BY stock ASC LIMIT 1",
     "SELECT name FROM p ORDER BY stock DESC LIMIT 1"),
    ("Which product has the most stock?", "SELECT name FROM p ORDER BY stock DESC LIMIT 1",
     "SELECT name FROM p ORDER BY stock LIMIT 1"),
    ("How many customers are in France?", "SELECT COUNT(*) FROM c WHERE country = 'France'",
     "SELECT name FROM c WHERE country = 'France'"),
    ("How many customers are in France?", "SELECT COUNT(*) FROM c WHERE country = 'France'",
     "SELECT segment, COUNT(*) FROM c WHERE country = 'France' GROUP BY segment"),
    ("How many customers are in each segment?", "SELECT segment, COUNT(*) FROM c GROUP BY segment",
     "SELECT COUNT(*) FROM c"),
    ("What is the average price?", "SELECT AVG(price) FROM p", "SELECT SUM(price) FROM p"),
    ("List all the product categories.", "SELECT name FROM categories",
     "SELECT c.name, COUNT(*) FROM p JOIN categories AS c ON c.id = p.cid GROUP BY c.name"),
    ("Which customers never ordered?", "SELECT name FROM c WHERE id NOT IN (SELECT cid FROM o)",
     "SELECT name FROM c WHERE id IN (SELECT cid FROM o)"),
    # an anti-join is a negation too ("have no"), a plain LEFT JOIN is not
    ("Which regions have no customers?",
     "SELECT r.name FROM r LEFT JOIN c ON c.rid = r.id WHERE c.id IS NULL",
     "SELECT r.name, COUNT(c.id) FROM r LEFT JOIN c ON c.rid = r.id GROUP BY r.name"),
    # "how often" asks for a count, not a listing
    ("Which channels did Enterprise customers use in 2023, and how often?",
     "SELECT channel, COUNT(*) FROM o WHERE segment = 'Enterprise' GROUP BY channel",
     "SELECT name, signup_date FROM c WHERE segment = 'Enterprise'"),
    ("How often did we ship with DHL in 2024?", "SELECT COUNT(*) FROM s WHERE carrier = 'DHL'",
     "SELECT id FROM s WHERE carrier = 'DHL'"),
    # "total" asks for a sum (or a count), "how many units" for a sum of quantities
    ("total payments received from Highland Notaries LLC",
     "SELECT SUM(p.amount) FROM p JOIN c ON c.id = p.cid WHERE c.name = 'Highland Notaries LLC'",
     "SELECT contact_name, contact_email FROM c WHERE name = 'Highland Notaries LLC'"),
    ("How many units of the Visitor Chair have we sold?",
     "SELECT SUM(oi.quantity) FROM oi JOIN p ON p.id = oi.pid WHERE p.name = 'Visitor Chair'",
     "SELECT s.name, s.country FROM p JOIN s ON s.id = p.sid WHERE p.name = 'Visitor Chair'"),
    # no word of rank: a neighbour's ORDER BY ... LIMIT kept on a plain list contradicts it
    ("Which customers are in Ireland?", "SELECT name FROM c WHERE country = 'Ireland'",
     "SELECT name FROM c WHERE country = 'Ireland' ORDER BY credit_limit DESC LIMIT 3"),
    ("line items on order 2808 incl qty, price and discount", "SELECT qty, price, discount FROM oi WHERE oid = 2808",
     "SELECT id FROM oi ORDER BY discount DESC LIMIT 2808"),
    # no negative word: a neighbour's anti-join kept on a plain list contradicts it (day-one d13)
    ("List all the product categories.", "SELECT category_name FROM categories",
     "SELECT c.category_name FROM categories AS c LEFT JOIN products AS p ON p.category_id = c.category_id "
     "WHERE p.product_id IS NULL"),
    # "add up" asks for a sum, "the segment mix" for a breakdown
    ("Add up every payment Highland Notaries LLC has made.",
     "SELECT SUM(p.amount) FROM p JOIN c ON c.id = p.cid WHERE c.name = 'Highland Notaries LLC'",
     "SELECT p.paid_at, p.amount FROM p JOIN c ON c.id = p.cid WHERE c.name = 'Highland Notaries LLC'"),
    ("What is the segment mix of customers in Belgium?",
     "SELECT segment, COUNT(*) FROM c WHERE country = 'Belgium' GROUP BY segment",
     "SELECT DISTINCT segment FROM c WHERE country = 'Belgium'"),
    # "8 products or more" bounds how many rows a supplier has; "7 days or more" bounds a value
    ("Who supplies 8 products or more?",
     "SELECT s.name, COUNT(*) FROM p JOIN s ON s.id = p.sid GROUP BY s.name HAVING COUNT(*) >= 8",
     "SELECT name, price FROM p WHERE price < 8"),
    ("customers with at least 3 orders", "SELECT c.name FROM c JOIN o ON o.cid = c.id GROUP BY c.name HAVING COUNT(*) >= 3",
     "SELECT name FROM c WHERE credit >= 3"),
    # "in the same city", "in common": an intersection, never a UNION
    ("In Ireland, where are customers and suppliers located in the same city?",
     "SELECT city FROM c WHERE country = 'Ireland' INTERSECT SELECT city FROM s WHERE country = 'Ireland'",
     "SELECT city FROM c WHERE country = 'Ireland' UNION SELECT city FROM s WHERE country = 'Ireland'"),
    # "by <column>" alone is a breakdown by that column; "sorted by", "top 5 by" are not
    ("custmers in belgium by segment",
     "SELECT segment, COUNT(*) FROM c WHERE country = 'Belgium' GROUP BY segment",
     "SELECT DISTINCT segment FROM c WHERE country = 'Belgium'"),
    ("orders by status, 2024", "SELECT status, COUNT(*) FROM o GROUP BY status",
     "SELECT channel, COUNT(*) FROM o GROUP BY channel"),
])
def test_the_right_query_agrees_more(question, right, wrong):
    assert agreement(question, right) > agreement(question, wrong)


def test_a_question_without_cues_asks_only_for_no_rank_and_no_negation():
    assert agreement("Acme orders", "SELECT COUNT(*) FROM o") == 2
    assert agreement("Acme orders", "SELECT id FROM o ORDER BY total DESC LIMIT 5") == 0
    assert agreement("Acme orders", "SELECT id FROM o WHERE id NOT IN (SELECT oid FROM r)") == 0
    assert agreement("Acme's 5 biggest orders", "SELECT id FROM o ORDER BY total DESC LIMIT 5") == 2  # "most", no negation
    assert agreement("Show me Acme's orders.", "SELECT * FROM o") == 3  # listing, no rank, no negation
    # "zero sales" may be a negation: neither cue is asked
    assert agreement("Which suppliers had zero sales?", "SELECT name FROM s") == agreement(
        "Which suppliers had zero sales?", "SELECT name FROM s WHERE NOT EXISTS (SELECT 1 FROM o WHERE o.sid = s.id)")
    # IS NOT NULL and <> are plain filters, no negation
    assert agreement("Acme orders", "SELECT id FROM o WHERE note IS NOT NULL AND status <> 'x'") == 2


@dataclass
class C:
    sql: str


def test_best_agreeing_keeps_the_top_tier_in_order_and_weighs_penalties():
    cands = [C("SELECT name FROM c"), C("SELECT COUNT(*) FROM c"), C("SELECT COUNT(*) FROM c WHERE x = 1")]
    assert best_agreeing(cands, "How many customers?") == cands[1:]
    assert best_agreeing(cands, "How many customers?", penalties=[0, 0, 1]) == [cands[1]]
    assert best_agreeing(cands[:1], "How many?") == cands[:1]  # one candidate: nothing to choose


def test_how_many_customers_is_still_a_count_not_a_sum():
    question = "How many customers buy Breakroom Supplies from us?"
    count = "SELECT COUNT(DISTINCT o.cid) FROM o JOIN p ON p.id = o.pid WHERE p.category = 'Breakroom Supplies'"
    revenue = "SELECT SUM(o.qty * o.price) FROM o JOIN p ON p.id = o.pid WHERE p.category = 'Breakroom Supplies'"
    assert agreement(question, count) > agreement(question, revenue)


@pytest.mark.parametrize("question", ["Suppliers with at least 8 products in our catalog",
                                      "Customers with at most 2 orders", "at the very least 3 items"])
def test_a_bound_is_no_superlative(question):
    # "at least 8 products" bounds a count (HAVING); it asks for no ordering. Seen on hand-reworded
    # questions: the cue made a cheapest-first list win over the right HAVING query.
    having = "SELECT s.name FROM p JOIN s ON s.id = p.sid GROUP BY s.name HAVING COUNT(*) >= 8"
    ordered = "SELECT name FROM p WHERE price < 8 ORDER BY price"
    assert not [c.name for c in CUES if c.name in ("most", "least") and c.asks.search(question)]
    assert agreement(question, having) >= agreement(question, ordered)  # the count bound prefers HAVING
    assert agreement("Which product has the least stock?", ordered) == 2


@pytest.mark.parametrize("question", ["customers sorted by city", "top 5 products by margin",
                                      "customers ordered by signup date", "3 most senior reps by hire date"])
def test_by_after_a_sort_or_a_rank_is_no_grouping(question):
    assert agreement(question, "SELECT city FROM c GROUP BY city") == agreement(question, "SELECT city FROM c")


def test_most_named_puts_the_query_about_the_asked_columns_first():
    question = "who's the contact person at Evergreen Notaries LLC and what's their email"
    paid = C("SELECT SUM(p.amount) AS total_paid FROM payments AS p JOIN customers AS c ON c.id = p.cid "
             "WHERE c.company_name = 'Evergreen Notaries LLC'")
    contact = C("SELECT contact_name, contact_email FROM customers WHERE company_name = 'Evergreen Notaries LLC'")
    assert named_words(question, contact.sql) == 2  # contact, email
    assert named_words(question, paid.sql) == 0
    assert most_named([paid, contact], question) == [contact, paid]
    # ties keep their order; a table named counts too ("customers in Sweden", not suppliers)
    suppliers, customers = C("SELECT city FROM suppliers WHERE country = 'Sweden'"), C(
        "SELECT DISTINCT city FROM customers WHERE country = 'Sweden'")
    assert most_named([suppliers, customers], "what cities in sweden are our customers in") == [customers, suppliers]
    assert most_named([suppliers, customers], "what cities are in sweden") == [suppliers, customers]


def test_among_as_named_the_answer_from_tables_the_question_names_comes_first():
    question = "What orders do we have from Hawthorne Events Inc., oldest first?"
    payments = C("SELECT p.paid_at, p.amount FROM payments AS p JOIN orders AS o ON o.order_id = p.order_id "
                 "JOIN customers AS c ON c.customer_id = o.customer_id WHERE c.company_name = 'Hawthorne Events Inc.' "
                 "ORDER BY p.paid_at")
    orders = C("SELECT o.order_id, o.order_date FROM orders AS o JOIN customers AS c ON c.customer_id = o.customer_id "
               "WHERE c.company_name = 'Hawthorne Events Inc.' ORDER BY o.order_date")
    assert named_words(question, payments.sql) == named_words(question, orders.sql)  # both join orders
    assert (stray_outputs(question, payments.sql), stray_outputs(question, orders.sql)) == (1, 0)
    assert most_named([payments, orders], question) == [orders, payments]
    # a listed column the question names is no stray ("carrier" of shipments, an unqualified column)
    assert stray_outputs("Which carrier shipped the most orders?", "SELECT carrier FROM shipments GROUP BY carrier") == 0
    # a measure summed from an unnamed table is no stray where a named table's column is listed
    assert stray_outputs("top 3 best-selling products by units", "SELECT p.product_name, SUM(oi.quantity) FROM "
                         "order_items AS oi JOIN products AS p ON p.product_id = oi.product_id GROUP BY 1") == 0
    # the branches of a set operation are told apart by their tables: suppliers' cities are never asked here
    assert stray_outputs("In which cities in Sweden do we have customers?", "SELECT city FROM customers INTERSECT "
                         "SELECT city FROM suppliers") == 1
    assert stray_outputs("cities of customers or suppliers", "SELECT city FROM customers UNION SELECT city FROM suppliers") == 0
    # an answer of aggregates alone comes from their tables
    assert stray_outputs("what do we buy from Acme", "SELECT MIN(p.unit_price) FROM products AS p") == 1


@pytest.mark.parametrize("question", ["suppliers with a lead time of 7 days or more", "orders with 5 or more items",
                                      "rated 4 or higher", "products with at least 20 units in stock"])
def test_a_bound_on_a_value_asks_no_count(question):
    assert agreement(question, "SELECT name FROM s WHERE lead_days >= 7") == agreement(
        question, "SELECT name FROM s GROUP BY name HAVING COUNT(*) >= 7")


@pytest.mark.parametrize("question, right, wrong", [
    ("low inventory check: anything below 50 units on hand?",
     "SELECT sku FROM products WHERE units_in_stock < 50", "SELECT product_name FROM products WHERE unit_price < 50"),
    ("What can customers buy for under $8?",
     "SELECT product_name FROM products WHERE unit_price < 8", "SELECT sku FROM products WHERE units_in_stock < 8"),
    ("suppliers that deliver within 7 days",
     "SELECT name FROM suppliers WHERE lead_time_days <= 7", "SELECT name FROM suppliers WHERE unit_cost <= 7"),
])
def test_a_number_s_unit_must_fit_the_column_it_is_compared_with(question, right, wrong):
    assert agreement(question, right) > agreement(question, wrong)


def test_a_column_of_no_known_kind_fits_any_unit():
    question = "suppliers that deliver within 7 days"
    assert agreement(question, "SELECT name FROM s WHERE rating >= 7") == agreement(question, "SELECT name FROM s")


@pytest.mark.parametrize("question", ["Which 10 products in Office Furniture cost the most?",
                                      "Which 5 well-rated (>= 4) suppliers take longest to deliver?",
                                      "top 5 desk accessories by unit margin"])
def test_a_number_of_rows_asked_is_a_limit_not_a_value(question):
    n = [w for w in question.replace("(", " ").split() if w.isdigit()][0]
    limited = f"SELECT name FROM p ORDER BY price DESC LIMIT {n}"
    compared = f"SELECT name FROM p WHERE price > {n} ORDER BY price DESC"
    assert agreement(question, limited) > agreement(question, compared)


@pytest.mark.parametrize("question", ["orders with 5 or more items", "suppliers with a lead time of 30 days",
                                      "the 2023 orders", "products with at least 20 units in stock"])
def test_a_bound_or_a_value_asks_no_number_of_rows(question):
    assert agreement(question, "SELECT name FROM p LIMIT 5") == agreement(question, "SELECT name FROM p")


@pytest.mark.parametrize("question", ["What Paper & Notebooks products are more expensive than that category's mean price?",
                                      "states with a population above average",
                                      "customers whose spend is over 3x the regional average"])
def test_more_than_the_average_is_a_comparison_with_an_average(question):
    nested = "SELECT name FROM p WHERE price > (SELECT AVG(price) FROM p)"
    cte = "WITH s AS (SELECT AVG(price) AS a FROM p) SELECT name FROM p, s WHERE price > 3 * s.a"
    average = "SELECT AVG(price), COUNT(*) FROM p"
    assert agreement(question, nested) > agreement(question, average)
    assert agreement(question, cte) > agreement(question, average)
    assert agreement("what is the average price", average) >= agreement("what is the average price", nested)


def test_one_number_is_a_row_of_figures_not_a_list():
    question = "On average, how expensive is an item in Filing & Storage?"
    figures = "SELECT ROUND(AVG(p.unit_price), 2), COUNT(*) FROM products AS p WHERE p.category_id = 3"
    listing = ("SELECT p.product_name, p.unit_price FROM products AS p WHERE p.category_id = 3 "
               "AND p.unit_price > (SELECT AVG(unit_price) FROM products)")
    assert agreement(question, figures) > agreement(question, listing)
    # rows compared with the average ask for rows, not one number
    question = "products priced above the average"
    assert agreement(question, "SELECT name FROM p WHERE price > (SELECT AVG(price) FROM p)") > agreement(
        question, "SELECT AVG(price) FROM p")


def test_a_word_of_price_names_a_price_column():
    question = "top 10 priciest items in Office Furniture"
    priced = C("SELECT p.product_name, p.unit_price FROM products AS p ORDER BY p.unit_price DESC LIMIT 10")
    stocked = C("SELECT p.product_name, p.units_in_stock FROM products AS p ORDER BY p.units_in_stock DESC LIMIT 10")
    assert (named_words(question, priced.sql), named_words(question, stocked.sql)) == (1, 0)  # "priciest": unit_price
    assert most_named([stocked, priced], question) == [priced, stocked]
    assert named_words("top 10 items in Office Furniture", priced.sql) == 0
