"""Question shapes, part 2: ORDER BY/LIMIT, date ranges, nested queries and set operations.

Same conventions as shapes_basic.py (portable SQL rules in questions.py). Set operations use
UNION, UNION ALL, INTERSECT and EXCEPT, which SQLite, PostgreSQL and MariaDB (10.3+) all run;
their ORDER BY names an output column, the only form all three accept.
"""

from __future__ import annotations

from random import Random

from server.sql.sample.build.questions import Pools, Shape, day, month, quarter, week, year

_REVENUE = "oi.quantity * oi.unit_price * (1 - oi.discount)"  # net line value


def _two_years(r: Random) -> dict:
    a, b = sorted(r.sample((2023, 2024, 2025), 2))
    return {"year_a": a, "a0": f"{a}-01-01", "a1": f"{a + 1}-01-01", "year_b": b, "b0": f"{b}-01-01", "b1": f"{b + 1}-01-01"}


def _hire_window(r: Random) -> dict:
    a = r.randint(2015, 2023)
    b = r.randint(a + 2, a + 4)  # at least two calendar years, so "between A and B" has A < B
    return {"year_a": a, "year_b": b - 1, "d0": f"{a}-01-01", "d1": f"{b}-01-01"}


def _two(r: Random, pool: list) -> tuple:
    a, b = r.sample(pool, 2)
    return a, b


def _abroad(p: Pools) -> list[str]:
    # Outside the US: per-country customer lists stay short enough to read.
    return [c for c in p.countries if c != "United States"]


ORDER_LIMIT = [
    Shape("order_limit.priciest_in_category", "order_limit",
          "SELECT p.product_name, p.unit_price FROM products p JOIN categories c ON c.category_id = p.category_id "
          "WHERE c.category_name = '{category}' ORDER BY p.unit_price DESC, p.product_name LIMIT {k}",
          ("What are the {k} most expensive {category} products?", "List the top {k} {category} items by price.",
           "Show the {k} highest-priced products in {category}.", "Which {k} products in {category} cost the most?"),
          lambda p, r: {"category": r.choice(p.categories), "k": r.choice((3, 5, 10))}),
    Shape("order_limit.top_customers_segment_year", "order_limit",
          f"SELECT c.company_name, ROUND(SUM({_REVENUE}), 2) AS revenue FROM customers c "
          "JOIN orders o ON o.customer_id = c.customer_id JOIN order_items oi ON oi.order_id = o.order_id "
          "WHERE c.segment = '{segment}' AND o.order_date >= '{y0}' AND o.order_date < '{y1}' "
          "GROUP BY c.customer_id, c.company_name ORDER BY revenue DESC, c.company_name LIMIT {k}",
          ("Who were our top {k} {segment} customers by revenue in {year}?",
           "List the {k} {segment} accounts that spent the most in {year}.",
           "Show the {k} biggest {segment} customers of {year} with their net revenue.",
           "Which {k} {segment} clients brought in the most money in {year}?"),
          lambda p, r: {"segment": r.choice(p.segments), "k": r.choice((3, 5, 10)), **year(r)}),
    Shape("order_limit.best_sellers_category", "order_limit",
          "SELECT p.product_name, SUM(oi.quantity) AS units_sold FROM order_items oi "
          "JOIN products p ON p.product_id = oi.product_id JOIN categories c ON c.category_id = p.category_id "
          "WHERE c.category_name = '{category}' GROUP BY p.product_id, p.product_name "
          "ORDER BY units_sold DESC, p.product_name LIMIT {k}",
          ("What are the {k} best-selling {category} products by units?", "List the top {k} {category} items by quantity sold.",
           "Which {k} products in {category} have sold the most units?", "Show the {k} most popular {category} products and units sold."),
          lambda p, r: {"category": r.choice(p.categories), "k": r.choice((3, 5))}),
    Shape("order_limit.largest_credit_country", "order_limit",
          "SELECT company_name, credit_limit FROM customers WHERE country = '{country}' "
          "ORDER BY credit_limit DESC, company_name LIMIT {k}",
          ("Which {k} customers in {country} have the highest credit limits?", "List the top {k} accounts in {country} by credit limit.",
           "Show the {k} largest credit limits among customers in {country}.", "Who are the {k} customers from {country} with the most credit?"),
          lambda p, r: {"country": r.choice(p.countries), "k": r.choice((3, 5, 10))}),
    Shape("order_limit.latest_orders_company", "order_limit",
          "SELECT o.order_id, o.order_date, o.status FROM orders o JOIN customers c ON c.customer_id = o.customer_id "
          "WHERE c.company_name = '{company}' ORDER BY o.order_date DESC, o.order_id DESC LIMIT {k}",
          ("What are the {k} most recent orders from {company}?", "Show {company}'s last {k} orders.",
           "List the {k} latest orders placed by {company} with their status.", "Which {k} orders did {company} place most recently?"),
          lambda p, r: {"company": r.choice(p.companies), "k": r.choice((1, 3, 5))}),
    Shape("order_limit.slowest_suppliers", "order_limit",
          "SELECT supplier_name, country, lead_time_days FROM suppliers WHERE rating >= {rating} "
          "ORDER BY lead_time_days DESC, supplier_name LIMIT {k}",
          ("Which {k} suppliers rated {rating} or higher have the longest lead times?",
           "Among suppliers with a rating of at least {rating}, list the {k} slowest to deliver.",
           "Show the {k} longest lead times of suppliers rated {rating}+.",
           "Which {k} well-rated (>= {rating}) suppliers take longest to deliver?"),
          lambda p, r: {"rating": r.choice((2, 3, 4, 5)), "k": r.choice((3, 5))}),
    Shape("order_limit.largest_payments_method_year", "order_limit",
          "SELECT payment_id, order_id, amount, paid_at FROM payments WHERE method = '{method}' "
          "AND paid_at >= '{y0}' AND paid_at < '{y1}' ORDER BY amount DESC, payment_id LIMIT {k}",
          ("What were the {k} largest {method} payments in {year}?", "List the top {k} payments by amount made via {method} in {year}.",
           "Show the {k} biggest {method} payments received during {year}.", "Which {k} {method} payments in {year} were the largest?"),
          lambda p, r: {"method": r.choice(p.values("payments", "method")), "k": r.choice((3, 5, 10)), **year(r)}),
    Shape("order_limit.longest_serving", "order_limit",
          "SELECT first_name, last_name, hire_date FROM employees WHERE job_title = '{title}' "
          "ORDER BY hire_date, employee_id LIMIT {k}",
          ("Who are the {k} longest-serving {title}s?", "List the {k} {title}s with the earliest hire dates.",
           "Show the first {k} {title}s we hired.", "Which {k} {title}s have been here the longest?"),
          lambda p, r: {"title": r.choice(p.job_titles), "k": r.choice((1, 3, 5))}),
    Shape("order_limit.highest_margin", "order_limit",
          "SELECT p.product_name, ROUND(p.unit_price - p.unit_cost, 2) AS margin FROM products p "
          "JOIN categories c ON c.category_id = p.category_id WHERE c.category_name = '{category}' "
          "ORDER BY margin DESC, p.product_name LIMIT {k}",
          ("Which {k} {category} products have the highest margin per unit?",
           "List the top {k} {category} items by price minus cost.", "Show the {k} most profitable {category} products per unit sold.",
           "What are the {k} {category} products where we earn the most per unit?"),
          lambda p, r: {"category": r.choice(p.categories), "k": r.choice((3, 5))}, count=7, held_out=True),
]

DATE_RANGE = [
    Shape("date_range.orders_in_month", "date_range",
          "SELECT COUNT(*) AS order_count FROM orders WHERE order_date >= '{m0}' AND order_date < '{m1}'",
          ("How many orders did we receive in {month}?", "Count the orders placed during {month}.",
           "What was the order volume in {month}?", "Number of orders in {month}?"),
          lambda p, r: month(r)),
    Shape("date_range.company_orders_in_year", "date_range",
          "SELECT o.order_id, o.order_date, o.status FROM orders o JOIN customers c ON c.customer_id = o.customer_id "
          "WHERE c.company_name = '{company}' AND o.order_date BETWEEN '{y0}' AND '{ylast}' ORDER BY o.order_date, o.order_id",
          ("Which orders did {company} place in {year}?", "List {company}'s orders from {year}.",
           "Show all orders by {company} dated in {year}.", "What did {company} order during {year}? Order ids, dates and statuses."),
          lambda p, r: {"company": r.choice(p.companies), **year(r)}),
    Shape("date_range.revenue_in_quarter", "date_range",
          f"SELECT ROUND(SUM({_REVENUE}), 2) AS revenue FROM orders o JOIN order_items oi ON oi.order_id = o.order_id "
          "WHERE o.status <> 'cancelled' AND o.order_date >= '{q0}' AND o.order_date < '{q1}'",
          ("What was our net revenue in {quarter}, excluding cancelled orders?", "How much did we sell in {quarter} (not counting cancellations)?",
           "Total revenue from non-cancelled orders placed in {quarter}?", "Give the {quarter} sales total, cancelled orders excluded."),
          lambda p, r: quarter(r)),
    Shape("date_range.signups_segment_year", "date_range",
          "SELECT company_name, signup_date FROM customers WHERE segment = '{segment}' "
          "AND signup_date >= '{y0}' AND signup_date < '{y1}' ORDER BY signup_date, company_name",
          ("Which {segment} customers signed up in {year}?", "List the {segment} accounts opened during {year}.",
           "Show new {segment} customers from {year} with their signup dates.", "Who joined us as a {segment} customer in {year}?"),
          lambda p, r: {"segment": r.choice(p.segments), **year(r)}),
    Shape("date_range.payments_month_method", "date_range",
          "SELECT COUNT(*) AS payment_count, ROUND(SUM(amount), 2) AS total FROM payments "
          "WHERE method = '{method}' AND paid_at >= '{m0}' AND paid_at < '{m1}'",
          ("How many {method} payments did we receive in {month}, and for how much?",
           "What was the total of {method} payments in {month}?", "Count and sum the {method} payments of {month}.",
           "In {month}, how much money came in by {method}?"),
          lambda p, r: {"method": r.choice(p.values("payments", "method")), **month(r)}),
    Shape("date_range.carrier_shipments_week", "date_range",
          "SELECT shipment_id, order_id, tracking_number, shipped_date FROM shipments WHERE carrier = '{carrier}' "
          "AND shipped_date BETWEEN '{d0}' AND '{d6}' ORDER BY shipped_date, shipment_id",
          ("Which {carrier} shipments went out between {d0} and {d6}?", "List {carrier} tracking numbers for shipments sent {d0} to {d6}.",
           "Show shipments handed to {carrier} from {d0} through {d6}.", "What did we ship with {carrier} in {week}?"),
          lambda p, r: {"carrier": r.choice(p.values("shipments", "carrier")), **week(r)}),
    Shape("date_range.hired_between", "date_range",
          "SELECT first_name, last_name, job_title, hire_date FROM employees WHERE hire_date >= '{d0}' AND hire_date < '{d1}' "
          "ORDER BY hire_date, employee_id",
          ("Who was hired between {year_a} and {year_b}?", "List employees who joined from {year_a} through {year_b}.",
           "Show staff with hire dates in {year_a}-{year_b}, in hiring order.", "Which employees started with us in the years {year_a} to {year_b}?"),
          lambda p, r: _hire_window(r)),
    Shape("date_range.orders_on_day", "date_range",
          "SELECT o.order_id, c.company_name, o.channel FROM orders o JOIN customers c ON c.customer_id = o.customer_id "
          "WHERE o.order_date = '{day}' ORDER BY o.order_id",
          ("Which orders were placed on {day}?", "List the orders from {day} with customer and channel.",
           "Show every order dated {day}.", "What came in on {day}? Order ids, customers and channels."),
          lambda p, r: {"day": day(r)}),
    Shape("date_range.late_deliveries_month", "date_range",
          "SELECT o.order_id, o.required_date, s.delivered_date FROM orders o JOIN shipments s ON s.order_id = o.order_id "
          "WHERE o.order_date >= '{m0}' AND o.order_date < '{m1}' AND s.delivered_date > o.required_date "
          "ORDER BY o.order_id, s.shipment_id",
          ("Which orders placed in {month} were delivered after their required date?",
           "List {month} orders that arrived late, with required and delivery dates.",
           "Show late deliveries for orders from {month}.", "What orders from {month} missed their due date?"),
          lambda p, r: month(r), count=7, held_out=True),
]

NESTED = [
    Shape("nested.above_category_average", "nested",
          "SELECT p.product_name, p.unit_price FROM products p WHERE p.category_id = "
          "(SELECT category_id FROM categories WHERE category_name = '{category}') AND p.unit_price > "
          "(SELECT AVG(p2.unit_price) FROM products p2 WHERE p2.category_id = p.category_id) "
          "ORDER BY p.unit_price DESC, p.product_name",
          ("Which {category} products are priced above the category average?",
           "List {category} items that cost more than the average {category} product.",
           "Show products in {category} with an above-average unit price.",
           "What {category} products are more expensive than that category's mean price?"),
          lambda p, r: {"category": r.choice(p.categories)}),
    Shape("nested.never_ordered_in_city", "nested",
          "SELECT c.company_name FROM customers c WHERE c.city = '{city}' AND NOT EXISTS "
          "(SELECT 1 FROM orders o WHERE o.customer_id = c.customer_id AND o.order_date >= '{y0}' AND o.order_date < '{y1}') "
          "ORDER BY c.company_name",
          ("Which customers in {city} placed no orders in {year}?", "List {city} accounts that did not order anything during {year}.",
           "Show customers from {city} without a single order in {year}.", "Who in {city} went all of {year} without ordering?"),
          lambda p, r: {"city": r.choice(p.cities), **year(r)}),
    Shape("nested.credit_above_average", "nested",
          "SELECT company_name, credit_limit FROM customers WHERE country = '{country}' AND credit_limit > "
          "(SELECT AVG(credit_limit) FROM customers) ORDER BY credit_limit DESC, company_name",
          ("Which customers in {country} have a credit limit above the overall average?",
           "List accounts in {country} whose credit limit beats the average across all customers.",
           "Show customers from {country} with higher-than-average credit limits.",
           "Who in {country} has more credit than our average customer?"),
          lambda p, r: {"country": r.choice(p.countries)}),
    Shape("nested.orders_with_supplier_products", "nested",
          "SELECT COUNT(*) AS order_count FROM orders WHERE order_date >= '{y0}' AND order_date < '{y1}' AND order_id IN "
          "(SELECT oi.order_id FROM order_items oi JOIN products p ON p.product_id = oi.product_id "
          "JOIN suppliers s ON s.supplier_id = p.supplier_id WHERE s.supplier_name = '{supplier}')",
          ("How many orders in {year} included at least one product from {supplier}?",
           "Count the {year} orders containing {supplier} products.", "In {year}, how many orders had an item supplied by {supplier}?",
           "Number of orders from {year} with something sourced from {supplier}?"),
          lambda p, r: {"supplier": r.choice(p.suppliers), **year(r)}),
    Shape("nested.avg_order_value", "nested",
          f"SELECT ROUND(AVG(t.total), 2) AS avg_order_value FROM (SELECT o.order_id, SUM({_REVENUE}) AS total "
          "FROM orders o JOIN order_items oi ON oi.order_id = o.order_id JOIN customers c ON c.customer_id = o.customer_id "
          "WHERE c.segment = '{segment}' AND o.order_date >= '{y0}' AND o.order_date < '{y1}' GROUP BY o.order_id) AS t",
          ("What was the average order value for {segment} customers in {year}?",
           "How much did a typical {segment} order come to in {year}, on average?",
           "Give the mean net value per order from {segment} accounts in {year}.",
           "On average, how big were {segment} orders in {year}?"),
          lambda p, r: {"segment": r.choice(p.segments), **year(r)}),
    Shape("nested.suppliers_idle_in_month", "nested",
          "SELECT s.supplier_name FROM suppliers s WHERE NOT EXISTS (SELECT 1 FROM products p "
          "JOIN order_items oi ON oi.product_id = p.product_id JOIN orders o ON o.order_id = oi.order_id "
          "WHERE p.supplier_id = s.supplier_id AND o.order_date >= '{m0}' AND o.order_date < '{m1}') ORDER BY s.supplier_name",
          ("Which suppliers had none of their products ordered in {month}?",
           "List suppliers whose products did not appear in any order during {month}.",
           "Show the suppliers with zero sales in {month}.", "For which suppliers did no customer order anything in {month}?"),
          lambda p, r: month(r)),
    Shape("nested.pricier_than_category", "nested",
          "SELECT p.product_name, p.unit_price FROM products p JOIN categories c ON c.category_id = p.category_id "
          "WHERE c.category_name = '{cat_a}' AND p.unit_price > (SELECT MAX(p2.unit_price) FROM products p2 "
          "JOIN categories c2 ON c2.category_id = p2.category_id WHERE c2.category_name = '{cat_b}') "
          "ORDER BY p.unit_price DESC, p.product_name",
          ("Which {cat_a} products cost more than every product in {cat_b}?",
           "List {cat_a} items priced above the most expensive {cat_b} product.",
           "Show {cat_a} products dearer than anything in {cat_b}.",
           "What {cat_a} products beat the top {cat_b} price?"),
          lambda p, r: dict(zip(("cat_a", "cat_b"), _two(r, p.categories)))),
    Shape("nested.cte_above_average_spend", "nested",
          f"WITH spend AS (SELECT c.customer_id, c.company_name, SUM({_REVENUE}) AS total FROM customers c "
          "JOIN regions r ON r.region_id = c.region_id JOIN orders o ON o.customer_id = c.customer_id "
          "JOIN order_items oi ON oi.order_id = o.order_id WHERE r.region_name = '{region}' "
          "GROUP BY c.customer_id, c.company_name) SELECT company_name, ROUND(total, 2) AS total FROM spend "
          "WHERE total > 3 * (SELECT AVG(total) FROM spend) ORDER BY total DESC, company_name",
          ("Which customers in {region} spent more than three times the region's average customer?",
           "List {region} accounts whose total spend exceeds 3x the {region} average.",
           "Show the {region} customers with spend above three times the regional mean.",
           "Who are the outsized spenders in {region}, at over triple the average customer spend?"),
          lambda p, r: {"region": r.choice(p.regions)}, count=7, held_out=True),
    Shape("nested.last_order_per_customer", "nested",
          "SELECT c.company_name, (SELECT MAX(o.order_date) FROM orders o WHERE o.customer_id = c.customer_id) "
          "AS last_order_date FROM customers c WHERE c.city = '{city}' AND c.segment = '{segment}' ORDER BY c.company_name",
          ("When did each {segment} customer in {city} last order?", "For {segment} accounts in {city}, show the date of their latest order.",
           "List {city} {segment} customers with their most recent order date.",
           "What is the last order date of every {segment} client in {city}?"),
          lambda p, r: {"city": r.choice(p.cities), "segment": r.choice(p.segments)}, count=7, held_out=True),
]

SET_OPERATION = [
    Shape("set_operation.cities_customers_and_suppliers", "set_operation",
          "SELECT city FROM customers WHERE country = '{country}' INTERSECT "
          "SELECT city FROM suppliers WHERE country = '{country}' ORDER BY city",
          ("Which cities in {country} have both customers and suppliers?", "List the cities in {country} where we both buy from and sell to companies.",
           "Show the cities in {country} that host a customer as well as a supplier.",
           "In {country}, where are customers and suppliers located in the same city?"),
          lambda p, r: {"country": r.choice(p.supplier_countries)}),
    Shape("set_operation.cities_customers_or_suppliers", "set_operation",
          "SELECT city FROM customers WHERE country = '{country}' UNION "
          "SELECT city FROM suppliers WHERE country = '{country}' ORDER BY city",
          ("List every city in {country} where we have a customer or a supplier.",
           "Which cities in {country} host either customers or suppliers?",
           "Show all cities in {country} that appear among customer or supplier addresses.",
           "Where in {country} do we have business partners, customers or suppliers?"),
          lambda p, r: {"country": r.choice(p.supplier_countries)}),
    Shape("set_operation.category_unsold_in_year", "set_operation",
          "SELECT p.product_name FROM products p JOIN categories c ON c.category_id = p.category_id "
          "WHERE c.category_name = '{category}' EXCEPT SELECT p.product_name FROM products p "
          "JOIN order_items oi ON oi.product_id = p.product_id JOIN orders o ON o.order_id = oi.order_id "
          "WHERE o.order_date >= '{y0}' AND o.order_date < '{y1}' ORDER BY product_name",
          ("Which {category} products did not sell at all in {year}?", "List {category} items with no orders in {year}.",
           "Show the {category} products nobody bought during {year}.", "What in {category} had zero sales in {year}?"),
          lambda p, r: {"category": r.choice(p.categories), **year(r)}),
    Shape("set_operation.customers_both_years", "set_operation",
          "SELECT c.company_name FROM customers c JOIN orders o ON o.customer_id = c.customer_id "
          "WHERE c.city = '{city}' AND o.order_date >= '{a0}' AND o.order_date < '{a1}' INTERSECT "
          "SELECT c.company_name FROM customers c JOIN orders o ON o.customer_id = c.customer_id "
          "WHERE c.city = '{city}' AND o.order_date >= '{b0}' AND o.order_date < '{b1}' ORDER BY company_name",
          ("Which customers in {city} ordered in both {year_a} and {year_b}?",
           "List {city} accounts that placed orders in {year_a} as well as in {year_b}.",
           "Show {city} customers active in both {year_a} and {year_b}.",
           "Who in {city} bought from us in {year_a} and again in {year_b}?"),
          lambda p, r: {"city": r.choice(p.cities), **_two_years(r)}),
    Shape("set_operation.customers_two_channels", "set_operation",
          "SELECT c.company_name FROM customers c JOIN orders o ON o.customer_id = c.customer_id "
          "WHERE c.country = '{country}' AND o.channel = '{ch_a}' INTERSECT "
          "SELECT c.company_name FROM customers c JOIN orders o ON o.customer_id = c.customer_id "
          "WHERE c.country = '{country}' AND o.channel = '{ch_b}' ORDER BY company_name",
          ("Which customers in {country} have ordered both by {ch_a} and by {ch_b}?",
           "List accounts in {country} that used the {ch_a} channel and also the {ch_b} channel.",
           "Show customers from {country} with orders through both {ch_a} and {ch_b}.",
           "Who in {country} has placed {ch_a} orders as well as {ch_b} orders?"),
          lambda p, r: {"country": r.choice(_abroad(p)), **dict(zip(("ch_a", "ch_b"), _two(r, p.values("orders", "channel"))))}),
    Shape("set_operation.products_two_companies", "set_operation",
          "SELECT p.product_name FROM products p JOIN order_items oi ON oi.product_id = p.product_id "
          "JOIN orders o ON o.order_id = oi.order_id JOIN customers c ON c.customer_id = o.customer_id "
          "WHERE c.company_name = '{company_a}' INTERSECT SELECT p.product_name FROM products p "
          "JOIN order_items oi ON oi.product_id = p.product_id JOIN orders o ON o.order_id = oi.order_id "
          "JOIN customers c ON c.customer_id = o.customer_id WHERE c.company_name = '{company_b}' ORDER BY product_name",
          ("Which products have both {company_a} and {company_b} bought?",
           "List products ordered by {company_a} and also by {company_b}.",
           "Show the products {company_a} and {company_b} have in common.",
           "What have {company_a} and {company_b} both purchased?"),
          lambda p, r: dict(zip(("company_a", "company_b"), _two(r, p.big_companies)))),
    Shape("set_operation.region_mailing_list", "set_operation",
          "SELECT e.email FROM employees e JOIN regions r ON r.region_id = e.region_id WHERE r.region_name = '{region}' "
          "UNION SELECT c.contact_email FROM customers c JOIN regions r ON r.region_id = c.region_id "
          "WHERE r.region_name = '{region}' AND c.segment = '{segment}' ORDER BY email",
          ("Give me one email list with the {region} staff and the contacts of our {segment} customers there.",
           "List the emails of all {region} employees plus the {segment} customer contacts in {region}.",
           "Combine the email addresses of {region} sales staff and {region} {segment} customer contacts.",
           "What are the emails of everyone in {region}: our employees and {segment} customer contacts?"),
          lambda p, r: {"region": r.choice(p.regions), "segment": r.choice(p.segments)}),
    Shape("set_operation.customers_lapsed", "set_operation",
          "SELECT c.company_name FROM customers c JOIN orders o ON o.customer_id = c.customer_id "
          "WHERE c.city = '{city}' AND o.order_date >= '{a0}' AND o.order_date < '{a1}' EXCEPT "
          "SELECT c.company_name FROM customers c JOIN orders o ON o.customer_id = c.customer_id "
          "WHERE c.city = '{city}' AND o.order_date >= '{b0}' AND o.order_date < '{b1}' ORDER BY company_name",
          ("Which customers in {city} ordered in {year_a} but not in {year_b}?",
           "List {city} accounts active in {year_a} that placed no orders in {year_b}.",
           "Show {city} customers who bought in {year_a} and then stopped in {year_b}.",
           "Who in {city} ordered during {year_a} yet not at all during {year_b}?"),
          lambda p, r: {"city": r.choice(p.cities), **_two_years(r)}, count=7, held_out=True),
    Shape("set_operation.activity_in_month", "set_operation",
          "SELECT 'orders placed' AS activity, COUNT(*) AS total FROM orders WHERE order_date >= '{m0}' AND order_date < '{m1}' "
          "UNION ALL SELECT 'shipments sent', COUNT(*) FROM shipments WHERE shipped_date >= '{m0}' AND shipped_date < '{m1}' "
          "UNION ALL SELECT 'payments received', COUNT(*) FROM payments WHERE paid_at >= '{m0}' AND paid_at < '{m1}'",
          ("How many orders, shipments and payments were there in {month}?",
           "Give one table with the counts of orders placed, shipments sent and payments received in {month}.",
           "Summarise {month} activity: orders, shipments, payments.",
           "In {month}, how many orders came in, how many shipments went out and how many payments arrived?"),
          lambda p, r: month(r), count=7, held_out=True),
]

SHAPES = ORDER_LIMIT + DATE_RANGE + NESTED + SET_OPERATION
