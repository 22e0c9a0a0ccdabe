"""Question shapes, part 1: select/filter, join, aggregate and GROUP BY/HAVING.

Read questions.py first for the portable-SQL rules every template here follows. The last
paraphrase of each shape never appears in train (pairs.py); `held_out=True` keeps a whole shape
out of train, so the test split has SQL shapes the model never saw. Money is the catalogue's
currency, written "$".
"""

from __future__ import annotations

from server.sql.sample.build.questions import Shape, person, year

_REVENUE = "oi.quantity * oi.unit_price * (1 - oi.discount)"  # net line value, used verbatim below

SELECT = [
    Shape("select.customers_in_city", "select",
          "SELECT company_name FROM customers WHERE city = '{city}' ORDER BY company_name",
          ("Which customers are based in {city}?", "List the companies we sell to in {city}.",
           "Show the names of all customer accounts located in {city}.",
           "What client companies do we have in {city}?"),
          lambda p, r: {"city": r.choice(p.cities)}),
    Shape("select.cheap_active_products", "select",
          "SELECT product_name, unit_price FROM products WHERE unit_price < {price} AND discontinued = 0 "
          "ORDER BY unit_price, product_name",
          ("Which products that are not discontinued cost less than ${price}?",
           "List the active products priced under ${price}, cheapest first.",
           "Show every product still on sale with a unit price below {price} dollars.",
           "What can customers buy for under ${price} among products we still sell?"),
          lambda p, r: {"price": r.choice((3, 5, 8, 10, 12, 15, 20, 25))}),
    Shape("select.low_stock", "select",
          "SELECT sku, product_name, units_in_stock FROM products WHERE units_in_stock < {n} "
          "ORDER BY units_in_stock, sku",
          ("Which products have fewer than {n} units in stock?",
           "List SKUs with less than {n} units left in the warehouse.",
           "Show products whose stock level is below {n}, lowest stock first.",
           "What items are we running low on, meaning under {n} units on hand?"),
          lambda p, r: {"n": r.choice((1, 5, 10, 15, 20, 25, 30, 40, 50))}),
    Shape("select.suppliers_in_country", "select",
          "SELECT supplier_name, city, lead_time_days FROM suppliers WHERE country = '{country}' ORDER BY supplier_name",
          ("Which suppliers are located in {country}?", "List our suppliers from {country} with their city and lead time.",
           "Show the vendors based in {country}.", "Who supplies us from {country}, and how long do they take to deliver?"),
          lambda p, r: {"country": r.choice(p.supplier_countries)}),
    Shape("select.staff_by_title_hired_before", "select",
          "SELECT first_name, last_name, hire_date FROM employees WHERE job_title = '{title}' AND hire_date < '{y0}' "
          "ORDER BY hire_date, employee_id",
          ("Which {title}s were hired before {year}?", "List every {title} who joined the company before {year}.",
           "Show the names and hire dates of {title}s hired prior to {year}.",
           "Who among our {title}s has been with us since before {year}?"),
          lambda p, r: {"title": r.choice(p.job_titles), **year(r, tuple(range(2017, 2025)))}),
    Shape("select.customers_segment_industry", "select",
          "SELECT company_name, city, country FROM customers WHERE segment = '{segment}' AND industry = '{industry}' "
          "ORDER BY company_name",
          ("Which {segment} customers work in {industry}?", "List the {industry} companies in our {segment} segment.",
           "Show {segment} accounts from the {industry} industry with their city and country.",
           "What {industry} businesses do we serve in the {segment} segment?"),
          lambda p, r: dict(zip(("segment", "industry"), r.choice(p.industries)))),
    Shape("select.customers_credit_country", "select",
          "SELECT company_name, credit_limit FROM customers WHERE country = '{country}' AND credit_limit >= {amount} "
          "ORDER BY credit_limit DESC, company_name",
          ("Which customers in {country} have a credit limit of at least ${amount}?",
           "List accounts in {country} with credit limits of ${amount} or more, highest first.",
           "Show customers from {country} whose credit limit is {amount} or above.",
           "Who in {country} can we extend ${amount} or more of credit to?"),
          lambda p, r: {"country": r.choice(p.countries), "amount": r.choice((10000, 25000, 50000, 100000))}),
    Shape("select.order_lookup", "select",
          "SELECT status, order_date, required_date, channel FROM orders WHERE order_id = {order_id}",
          ("What is the status of order {order_id}?", "When was order #{order_id} placed, and where does it stand?",
           "Look up order {order_id}: status, order date, due date and channel.",
           "Give me the details of order number {order_id}."),
          lambda p, r: {"order_id": r.choice(p.order_ids)}),
    Shape("select.customer_contact", "select",
          "SELECT contact_name, contact_email FROM customers WHERE company_name = '{company}'",
          ("Who is our contact at {company}?", "What is the contact name and email for {company}?",
           "Give me the contact person of the customer {company}.", "How do I reach {company}? Name and email please."),
          lambda p, r: {"company": r.choice(p.companies)}),
    Shape("select.products_matching", "select",
          "SELECT sku, product_name, unit_price FROM products WHERE product_name LIKE '%{word}%' ORDER BY unit_price, sku",
          ("Which products have '{word}' in their name?", "Find every product whose name mentions {word}, cheapest first.",
           "List the SKU, name and price of all {word} products.", "Search the catalogue for {word}: SKU, name and price."),
          # Only words that never occur in lower case inside another name ('Desk' would hit the
          # brand Brightdesk): SQLite's LIKE ignores ASCII case, PostgreSQL's and utf8mb4_bin's do not.
          lambda p, r: {"word": r.choice(("Toner", "Notebook", "Chair", "Markers", "Envelopes", "Cable", "Lamp",
                                          "Coffee", "Gloves", "Whiteboard", "Tape", "Paper", "Stapler", "Monitor",
                                          "Cartridge", "Folders"))}),
    Shape("select.customers_status_country", "select",
          "SELECT company_name, segment FROM customers WHERE account_status = '{status}' AND country = '{country}' "
          "ORDER BY company_name",
          ("Which customers in {country} have the account status '{status}'?",
           "List the accounts in {country} whose status is {status}.",
           "Show the {status} customer accounts in {country} with their segment.",
           "What companies from {country} are currently marked {status}?"),
          lambda p, r: {"status": r.choice(("inactive", "on_hold")), "country": r.choice(p.countries)}),
    Shape("select.suppliers_rating_lead_time", "select",
          "SELECT supplier_name, country, rating FROM suppliers WHERE rating >= {rating} AND lead_time_days <= {days} "
          "ORDER BY supplier_name",
          ("Which suppliers are rated {rating} or better and deliver within {days} days?",
           "List vendors with a rating of at least {rating} and a lead time of {days} days or less.",
           "Show suppliers rated {rating}+ whose lead time does not exceed {days} days.",
           "Who can supply us within {days} days with a rating no lower than {rating}?"),
          lambda p, r: {"rating": r.choice((3, 4, 5)), "days": r.choice((3, 5, 7, 10, 14, 30))}),
    Shape("select.distinct_cities", "select",
          "SELECT DISTINCT city FROM customers WHERE country = '{country}' ORDER BY city",
          ("In which cities in {country} do we have customers?", "List the distinct customer cities in {country}.",
           "Name every city of {country} where at least one customer is based.",
           "Which cities of {country} do our customers come from?"),
          lambda p, r: {"country": r.choice(p.countries)}, count=7, held_out=True),
]

JOIN = [
    Shape("join.orders_of_company", "join",
          "SELECT o.order_id, o.order_date, o.status FROM orders o JOIN customers c ON c.customer_id = o.customer_id "
          "WHERE c.company_name = '{company}' ORDER BY o.order_date, o.order_id",
          ("List all orders placed by {company}.", "Show the order history of {company} with dates and statuses.",
           "Which orders has {company} made with us?", "What orders do we have from {company}, oldest first?"),
          lambda p, r: {"company": r.choice(p.companies)}),
    Shape("join.products_of_supplier", "join",
          "SELECT p.product_name, p.unit_price FROM products p JOIN suppliers s ON s.supplier_id = p.supplier_id "
          "WHERE s.supplier_name = '{supplier}' ORDER BY p.product_name",
          ("Which products do we buy from {supplier}?", "List the products supplied by {supplier} and their prices.",
           "Show everything {supplier} supplies to us.", "What does {supplier} provide, with unit prices?"),
          lambda p, r: {"supplier": r.choice(p.suppliers)}),
    Shape("join.category_products_over_price", "join",
          "SELECT p.product_name, p.unit_price FROM products p JOIN categories c ON c.category_id = p.category_id "
          "WHERE c.category_name = '{category}' AND p.unit_price > {price} ORDER BY p.unit_price DESC, p.product_name",
          ("Which {category} products cost more than ${price}?", "List {category} items priced above ${price}, most expensive first.",
           "Show products in the {category} category with a unit price over {price}.",
           "What {category} products sell for more than {price} dollars?"),
          lambda p, r: {"category": r.choice(p.categories), "price": r.choice((10, 20, 50, 100, 200))}),
    Shape("join.accounts_of_manager", "join",
          "SELECT c.company_name, c.city FROM customers c JOIN employees e ON e.employee_id = c.account_manager_id "
          "WHERE e.first_name = '{first}' AND e.last_name = '{last}' ORDER BY c.company_name",
          ("Which customers does {name} manage?", "List the accounts assigned to {name}.",
           "Show the companies whose account manager is {name}, with their city.",
           "What customer accounts is {name} responsible for?"),
          lambda p, r: person(r.choice(p.account_managers))),
    Shape("join.items_of_order", "join",
          "SELECT p.product_name, oi.quantity, oi.unit_price, oi.discount FROM order_items oi "
          "JOIN products p ON p.product_id = oi.product_id WHERE oi.order_id = {order_id} ORDER BY p.product_name",
          ("What products were in order {order_id}?", "List the line items of order #{order_id} with quantities and prices.",
           "Show what was ordered in order number {order_id}.", "Break down order {order_id}: products, quantities, prices, discounts."),
          lambda p, r: {"order_id": r.choice(p.order_ids)}),
    Shape("join.customers_city_carrier", "join",
          "SELECT DISTINCT c.company_name FROM customers c JOIN orders o ON o.customer_id = c.customer_id "
          "JOIN shipments s ON s.order_id = o.order_id WHERE c.city = '{city}' AND s.carrier = '{carrier}' "
          "ORDER BY c.company_name",
          ("Which customers in {city} have received shipments via {carrier}?",
           "List {city} companies that had an order shipped with {carrier}.",
           "Show customers based in {city} whose orders went out by {carrier}.",
           "Who in {city} has gotten deliveries from {carrier}?"),
          lambda p, r: {"city": r.choice(p.cities), "carrier": r.choice(p.values("shipments", "carrier"))}),
    Shape("join.region_staff", "join",
          "SELECT e.first_name, e.last_name, e.job_title FROM employees e JOIN regions r ON r.region_id = e.region_id "
          "WHERE r.region_name = '{region}' ORDER BY e.last_name, e.first_name",
          ("Who works in the {region} region?", "List the sales staff assigned to {region} with their job titles.",
           "Show all employees of the {region} region.", "Which employees cover {region}?"),
          lambda p, r: {"region": r.choice(p.regions)}),
    Shape("join.payments_of_company", "join",
          "SELECT p.paid_at, p.amount, p.method FROM payments p JOIN orders o ON o.order_id = p.order_id "
          "JOIN customers c ON c.customer_id = o.customer_id WHERE c.company_name = '{company}' "
          "ORDER BY p.paid_at, p.payment_id",
          ("What payments have we received from {company}?", "List every payment made by {company}, oldest first.",
           "Show the payment history of {company}: date, amount and method.", "How and when has {company} paid us?"),
          lambda p, r: {"company": r.choice(p.companies)}),
    Shape("join.buyers_of_product_in_country", "join",
          "SELECT DISTINCT c.company_name FROM customers c JOIN orders o ON o.customer_id = c.customer_id "
          "JOIN order_items oi ON oi.order_id = o.order_id JOIN products p ON p.product_id = oi.product_id "
          "WHERE p.product_name = '{product}' AND c.country = '{country}' ORDER BY c.company_name",
          ("Which customers in {country} have bought the {product}?", "List companies in {country} that ordered {product}.",
           "Show customers from {country} who purchased {product} at least once.",
           "Who in {country} has ordered the product {product}?"),
          lambda p, r: {"product": r.choice(p.products), "country": r.choice(p.countries)}),
    Shape("join.supplier_of_product", "join",
          "SELECT s.supplier_name, s.country, s.lead_time_days FROM products p "
          "JOIN suppliers s ON s.supplier_id = p.supplier_id WHERE p.product_name = '{product}'",
          ("Who supplies the {product}?", "Which supplier do we source {product} from, and what is its lead time?",
           "Show the supplier, its country and lead time for {product}.", "Where does {product} come from?"),
          lambda p, r: {"product": r.choice(p.products)}),
    Shape("join.manager_of_employee", "join",
          "SELECT m.first_name, m.last_name, m.job_title FROM employees e JOIN employees m ON m.employee_id = e.manager_id "
          "WHERE e.first_name = '{first}' AND e.last_name = '{last}'",
          ("Who is {name}'s manager?", "Who does {name} report to?", "Name the direct manager of {name} and their title.",
           "Which person manages {name}?"),
          lambda p, r: person(r.choice(p.reports)), count=7, held_out=True),
    Shape("join.customers_without_orders", "join",
          "SELECT c.company_name, c.signup_date FROM customers c LEFT JOIN orders o ON o.customer_id = c.customer_id "
          "WHERE c.segment = '{segment}' AND o.order_id IS NULL ORDER BY c.company_name",
          ("Which {segment} customers have never placed an order?", "List {segment} accounts with no orders at all.",
           "Show {segment} customers that have not ordered anything yet, with their signup date.",
           "What {segment} companies signed up but never bought from us?"),
          lambda p, r: {"segment": r.choice(p.segments)}, count=5, held_out=True),
]

AGGREGATE = [
    Shape("aggregate.orders_status_channel", "aggregate",
          "SELECT COUNT(*) AS order_count FROM orders WHERE status = '{status}' AND channel = '{channel}'",
          ("How many {channel} orders have the status {status}?", "Count the orders placed via {channel} that are {status}.",
           "What is the number of {status} orders that came in through {channel}?",
           "How many orders from the {channel} channel ended up {status}?"),
          lambda p, r: {"status": r.choice(("delivered", "cancelled", "returned")),
                        "channel": r.choice(p.values("orders", "channel"))}),
    Shape("aggregate.category_revenue", "aggregate",
          f"SELECT ROUND(SUM({_REVENUE}), 2) AS revenue FROM order_items oi "
          "JOIN products p ON p.product_id = oi.product_id JOIN categories c ON c.category_id = p.category_id "
          "WHERE c.category_name = '{category}'",
          ("What is the total revenue from {category}?", "How much have we sold in {category}, net of discounts?",
           "Total net sales of the {category} category?", "Sum up all order line revenue for {category} products."),
          lambda p, r: {"category": r.choice(p.categories)}),
    Shape("aggregate.category_avg_price", "aggregate",
          "SELECT ROUND(AVG(p.unit_price), 2) AS avg_price, COUNT(*) AS product_count FROM products p "
          "JOIN categories c ON c.category_id = p.category_id WHERE c.category_name = '{category}'",
          ("What is the average price of {category} products?", "How many {category} products are there, and what do they cost on average?",
           "Give the product count and mean unit price for {category}.", "On average, how expensive is an item in {category}?"),
          lambda p, r: {"category": r.choice(p.categories)}),
    Shape("aggregate.customers_region_segment", "aggregate",
          "SELECT COUNT(*) AS customer_count FROM customers c JOIN regions r ON r.region_id = c.region_id "
          "WHERE r.region_name = '{region}' AND c.segment = '{segment}'",
          ("How many {segment} customers are in {region}?", "Count the {segment} accounts in the {region} region.",
           "What is the number of {region} customers in the {segment} segment?",
           "How many customers does {region} have in {segment}?"),
          lambda p, r: {"region": r.choice(p.regions), "segment": r.choice(p.segments)}),
    Shape("aggregate.supplier_price_range", "aggregate",
          "SELECT MIN(p.unit_price) AS cheapest, MAX(p.unit_price) AS most_expensive FROM products p "
          "JOIN suppliers s ON s.supplier_id = p.supplier_id WHERE s.supplier_name = '{supplier}'",
          ("What is the price range of products from {supplier}?", "What are the cheapest and most expensive prices among {supplier}'s products?",
           "Give the minimum and maximum unit price of items supplied by {supplier}.",
           "How cheap and how expensive do {supplier} products get?"),
          lambda p, r: {"supplier": r.choice(p.suppliers)}),
    Shape("aggregate.total_paid_by_company", "aggregate",
          "SELECT ROUND(SUM(p.amount), 2) AS total_paid FROM payments p JOIN orders o ON o.order_id = p.order_id "
          "JOIN customers c ON c.customer_id = o.customer_id WHERE c.company_name = '{company}'",
          ("How much has {company} paid us in total?", "What is the sum of all payments received from {company}?",
           "Total amount paid by {company} so far?", "Add up every payment {company} has made."),
          lambda p, r: {"company": r.choice(p.companies)}),
    Shape("aggregate.units_sold_product", "aggregate",
          "SELECT SUM(oi.quantity) AS units_sold FROM order_items oi JOIN products p ON p.product_id = oi.product_id "
          "WHERE p.product_name = '{product}'",
          ("How many units of {product} have we sold?", "What is the total quantity ordered of {product}?",
           "Count the units sold of the {product}.", "How many {product} have customers bought in total?"),
          lambda p, r: {"product": r.choice(p.products)}),
    Shape("aggregate.buyers_of_category", "aggregate",
          "SELECT COUNT(DISTINCT o.customer_id) AS customer_count FROM orders o JOIN order_items oi ON oi.order_id = o.order_id "
          "JOIN products p ON p.product_id = oi.product_id JOIN categories c ON c.category_id = p.category_id "
          "WHERE c.category_name = '{category}'",
          ("How many different customers have bought {category} products?", "Count the distinct customers who ordered from {category}.",
           "What number of unique accounts has purchased anything in {category}?",
           "How many customers buy {category} from us?"),
          lambda p, r: {"category": r.choice(p.categories)}),
    Shape("aggregate.carrier_avg_cost_year", "aggregate",
          "SELECT COUNT(*) AS shipment_count, ROUND(AVG(shipping_cost), 2) AS avg_cost FROM shipments "
          "WHERE carrier = '{carrier}' AND shipped_date >= '{y0}' AND shipped_date < '{y1}'",
          ("How many shipments went out with {carrier} in {year}, and what did they cost on average?",
           "What was the average shipping cost of {carrier} shipments in {year}?",
           "Give the number of {carrier} shipments in {year} and their mean cost.",
           "In {year}, how often did we ship with {carrier} and at what average cost?"),
          lambda p, r: {"carrier": r.choice(p.values("shipments", "carrier")), **year(r)}),
    Shape("aggregate.category_stock_value", "aggregate",
          "SELECT ROUND(SUM(p.units_in_stock * p.unit_cost), 2) AS stock_value FROM products p "
          "JOIN categories c ON c.category_id = p.category_id WHERE c.category_name = '{category}'",
          ("What is the value of our {category} inventory at cost?", "How much is the {category} stock worth at unit cost?",
           "Total cost value of units in stock for {category}?", "What would the {category} stock on hand cost us to buy?"),
          lambda p, r: {"category": r.choice(p.categories)}, count=7, held_out=True),
]

GROUP_BY = [
    Shape("group_by_having.channel_mix_segment_year", "group_by_having",
          "SELECT o.channel, COUNT(*) AS order_count FROM orders o JOIN customers c ON c.customer_id = o.customer_id "
          "WHERE c.segment = '{segment}' AND o.order_date >= '{y0}' AND o.order_date < '{y1}' "
          "GROUP BY o.channel ORDER BY order_count DESC, o.channel",
          ("How many orders did {segment} customers place per channel in {year}?",
           "Break down {year} orders from {segment} accounts by sales channel.",
           "Count {segment} orders by channel for {year}, busiest channel first.",
           "Which channels did {segment} customers use in {year}, and how often?"),
          lambda p, r: {"segment": r.choice(p.segments), **year(r)}),
    Shape("group_by_having.segments_in_country", "group_by_having",
          "SELECT segment, COUNT(*) AS customer_count FROM customers WHERE country = '{country}' "
          "GROUP BY segment ORDER BY segment",
          ("How many customers do we have in {country} per segment?", "Break down our customers in {country} by segment.",
           "Count customers in {country} for each market segment.", "What is the segment mix of customers in {country}?"),
          lambda p, r: {"country": r.choice(p.countries)}),
    Shape("group_by_having.frequent_customers", "group_by_having",
          "SELECT c.company_name, COUNT(*) AS order_count FROM customers c JOIN orders o ON o.customer_id = c.customer_id "
          "WHERE c.segment = '{segment}' GROUP BY c.customer_id, c.company_name HAVING COUNT(*) > {n} "
          "ORDER BY order_count DESC, c.company_name",
          ("Which {segment} customers have placed more than {n} orders?", "List {segment} accounts with over {n} orders, most orders first.",
           "Show {segment} companies whose order count exceeds {n}.", "Who in the {segment} segment has ordered more than {n} times?"),
          lambda p, r: {"segment": r.choice(p.segments), "n": r.choice((5, 10, 20, 30, 50))}),
    Shape("group_by_having.categories_avg_price_over", "group_by_having",
          "SELECT c.category_name, ROUND(AVG(p.unit_price), 2) AS avg_price FROM products p "
          "JOIN categories c ON c.category_id = p.category_id GROUP BY c.category_name "
          "HAVING AVG(p.unit_price) > {x} ORDER BY avg_price DESC, c.category_name",
          ("Which categories have an average product price above ${x}?", "List categories whose mean unit price exceeds {x}, priciest first.",
           "Show each category with an average price over ${x} and that average.",
           "In which product categories does an item cost more than ${x} on average?"),
          lambda p, r: {"x": r.choice((10, 15, 20, 30, 50, 75, 100, 150))}),
    Shape("group_by_having.suppliers_many_products", "group_by_having",
          "SELECT s.supplier_name, COUNT(*) AS product_count FROM products p JOIN suppliers s ON s.supplier_id = p.supplier_id "
          "GROUP BY s.supplier_name HAVING COUNT(*) >= {n} ORDER BY product_count DESC, s.supplier_name",
          ("Which suppliers provide at least {n} of our products?", "List suppliers with {n} or more products in the catalogue.",
           "Show suppliers and their product counts, only those with at least {n}.",
           "Who supplies {n} products or more?"),
          lambda p, r: {"n": r.choice((3, 5, 8, 10, 12, 15))}, count=6),
    Shape("group_by_having.rep_orders_region_year", "group_by_having",
          "SELECT e.first_name, e.last_name, COUNT(*) AS order_count FROM employees e "
          "JOIN orders o ON o.employee_id = e.employee_id JOIN regions r ON r.region_id = e.region_id "
          "WHERE r.region_name = '{region}' AND o.order_date >= '{y0}' AND o.order_date < '{y1}' "
          "GROUP BY e.employee_id, e.first_name, e.last_name ORDER BY order_count DESC, e.last_name, e.first_name",
          ("How many orders did each {region} employee handle in {year}?", "Orders per salesperson in {region} for {year}?",
           "Rank the {region} staff by number of orders taken in {year}.",
           "Count {year} orders by employee for the {region} region."),
          lambda p, r: {"region": r.choice(p.regions), **year(r)}),
    Shape("group_by_having.payment_methods_country", "group_by_having",
          "SELECT p.method, COUNT(*) AS payment_count, ROUND(SUM(p.amount), 2) AS total FROM payments p "
          "JOIN orders o ON o.order_id = p.order_id JOIN customers c ON c.customer_id = o.customer_id "
          "WHERE c.country = '{country}' GROUP BY p.method ORDER BY p.method",
          ("How do customers in {country} pay? Count and total per payment method.",
           "Break down payments from {country} by method.", "For {country}, show the number and sum of payments per method.",
           "What payment methods do customers in {country} use, and how much came in through each?"),
          lambda p, r: {"country": r.choice(p.countries)}),
    Shape("group_by_having.busy_carriers_year", "group_by_having",
          "SELECT s.carrier, COUNT(*) AS shipment_count, ROUND(AVG(s.shipping_cost), 2) AS avg_cost FROM shipments s "
          "WHERE s.shipped_date >= '{y0}' AND s.shipped_date < '{y1}' GROUP BY s.carrier HAVING COUNT(*) >= {n} "
          "ORDER BY shipment_count DESC, s.carrier",
          ("Which carriers handled at least {n} shipments in {year}, and at what average cost?",
           "List carriers with {n} or more shipments in {year}.",
           "Show shipment counts and average cost per carrier for {year}, keeping carriers with at least {n}.",
           "In {year}, which carriers did we use {n} times or more?"),
          lambda p, r: {"n": r.choice((50, 100, 200, 300, 400)), **year(r)}),
    Shape("group_by_having.category_revenue_region", "group_by_having",
          f"SELECT cat.category_name, ROUND(SUM({_REVENUE}), 2) AS revenue FROM order_items oi "
          "JOIN orders o ON o.order_id = oi.order_id JOIN customers c ON c.customer_id = o.customer_id "
          "JOIN regions r ON r.region_id = c.region_id JOIN products p ON p.product_id = oi.product_id "
          "JOIN categories cat ON cat.category_id = p.category_id WHERE r.region_name = '{region}' "
          "GROUP BY cat.category_name ORDER BY revenue DESC, cat.category_name",
          ("What is the revenue per product category in {region}?", "Break down {region} sales by category, biggest first.",
           "Show net revenue by category for customers in the {region} region.",
           "Which categories sell best in {region}? Give revenue for each."),
          lambda p, r: {"region": r.choice(p.regions)}),
    Shape("group_by_having.cities_with_many_customers", "group_by_having",
          "SELECT city, COUNT(*) AS customer_count FROM customers WHERE country = '{country}' GROUP BY city "
          "HAVING COUNT(*) >= {n} ORDER BY customer_count DESC, city",
          ("Which cities in {country} have at least {n} customers?", "List the cities in {country} with {n} or more customers.",
           "Show customer counts for cities in {country} that have at least {n} accounts.",
           "Where in {country} do we have {n}+ customers in one city?"),
          lambda p, r: {"country": r.choice(p.countries), "n": r.choice((2, 3, 5, 10))}, count=7, held_out=True),
]

SHAPES = SELECT + JOIN + AGGREGATE + GROUP_BY
