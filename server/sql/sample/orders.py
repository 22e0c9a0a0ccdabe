"""Order history for the sample database: orders, order_items, payments and shipments.

Split out of generate.py to keep each module short. Each order is simulated on a timeline
(placed -> shipped -> delivered -> paid) against a fixed cutoff date, so the statuses agree with
the other tables: a 'delivered' order has a shipment with a delivered_date, a 'shipped' one has a
shipment still in transit, 'pending'/'processing' orders have none yet, cancelled orders have
neither shipment nor payment, and invoices due after the cutoff stay unpaid.
"""

from __future__ import annotations

import bisect
import itertools
from datetime import date, datetime, timedelta
from decimal import Decimal
from random import Random

from server.sql.sample import words

# Demand shape: yearly growth, a back-to-school peak in Aug/Sep, a quiet December, and little
# weekend trade (B2B customers order on working days).
YEAR_GROWTH = {2023: 1.0, 2024: 1.18, 2025: 1.32}
MONTH_SEASON = (0.9, 0.95, 1.05, 1.0, 1.0, 0.95, 0.9, 1.3, 1.25, 1.05, 1.0, 0.7)
SEGMENT_VOLUME = {"Enterprise": 6.0, "Mid-Market": 3.0, "Small Business": 1.0,
                  "Public Sector": 2.5, "Education": 2.0}
SEGMENT_QTY = {"Enterprise": 2.5, "Mid-Market": 1.6, "Small Business": 1.0,
               "Public Sector": 1.8, "Education": 1.5}
SEGMENT_DISCOUNTS = {  # (discounts, weights)
    "Enterprise": ((Decimal("0.10"), Decimal("0.15")), (3, 2)),
    "Mid-Market": ((Decimal("0"), Decimal("0.05"), Decimal("0.10")), (3, 4, 2)),
    "Small Business": ((Decimal("0"), Decimal("0.05")), (8, 2)),
    "Public Sector": ((Decimal("0.05"), Decimal("0.10")), (1, 1)),
    "Education": ((Decimal("0.05"), Decimal("0.10")), (2, 1)),
}
# List prices rose over the years; order lines record the price charged at the time.
YEAR_PRICE = {2023: Decimal("0.92"), 2024: Decimal("0.96"), 2025: Decimal("1.00")}
ITEMS_PER_ORDER = ((1, 2, 3, 4, 5, 6, 7, 8), (22, 24, 20, 13, 9, 6, 4, 2))
CENT = Decimal("0.01")


def _tracking(rng: Random, carrier: str) -> str:
    digits = lambda n: "".join(rng.choice("0123456789") for _ in range(n))  # noqa: E731
    if carrier == "UPS":
        return "1Z" + "".join(rng.choice("0123456789ABCDEFGHJKLMNPRSTVWXYZ") for _ in range(16))
    return {"FedEx": lambda: digits(12), "USPS": lambda: "9400" + digits(18),
            "Canada Post": lambda: digits(16), "DHL": lambda: "JD" + digits(18),
            "DPD": lambda: digits(14), "GLS": lambda: digits(11)}[carrier]()


def _timestamp(rng: Random, day: date) -> str:
    # Office hours, seconds included so timestamps are realistic and rarely tie.
    moment = datetime(day.year, day.month, day.day, rng.randint(7, 18), rng.randint(0, 59), rng.randint(0, 59))
    return moment.isoformat(sep=" ")


def _payment_method(rng: Random, segment: str, country: str) -> str:
    if segment in ("Enterprise", "Public Sector"):
        weights = (8, 1, 1, 1 if country == "United States" else 0)
    elif segment == "Small Business":
        weights = (2, 6, 1, 1 if country == "United States" else 0)
    else:
        weights = (5, 3, 3 if country not in ("United States", "Canada") else 1,
                   2 if country == "United States" else 0)
    return rng.choices(words.PAYMENT_METHODS, weights)[0]


def generate_orders(rng: Random, customers: list[tuple], products: list[tuple],
                    reps: dict[int, list[int]], count: int, start: date, cutoff: date):
    """Returns (orders, order_items, payments, shipments, {customer_id: last order date})."""
    days = [start + timedelta(days=i) for i in range((cutoff - start).days + 1)]
    cum = list(itertools.accumulate(
        YEAR_GROWTH[d.year] * MONTH_SEASON[d.month - 1] * (1.0 if d.weekday() < 5 else 0.08) for d in days))

    # Per-customer activity window [first, last] day index and weight (volume x active share).
    windows, weights = [], []
    for row in customers:
        signed = date.fromisoformat(row[11])
        first = max(0, (signed - start).days)
        last = len(days) - 1
        if rng.random() < 0.09:  # churned: stopped ordering at some point
            last = rng.randint(first, len(days) - 1)
        dormant = rng.random() < 0.04  # accounts that never placed an order
        low = cum[first - 1] if first else 0.0
        share = (cum[last] - low) / cum[-1]
        windows.append((low, cum[last]))
        weights.append(0.0 if dormant else SEGMENT_VOLUME[row[2]] * rng.lognormvariate(0, 0.7) * share)

    # Popularity: lognormal, cheaper items sell more often; five products never sell (new lines).
    popularity = [rng.lognormvariate(0, 0.9) / float(p[5]) ** 0.3 for p in products]
    for index in rng.sample(range(len(products)), 5):
        popularity[index] = 0.0
    product_cum = list(itertools.accumulate(popularity))

    drafts = []
    customer_cum = list(itertools.accumulate(weights))
    for _ in range(count):
        c = bisect.bisect_left(customer_cum, rng.uniform(0, customer_cum[-1]))
        low, high = windows[c]
        day = days[min(bisect.bisect_left(cum, rng.uniform(low, high)), len(days) - 1)]
        drafts.append((day, c, rng.random()))
    drafts.sort()

    orders, items, payments, shipments, last_order = [], [], [], [], {}
    channels = [c for c, _ in words.ORDER_CHANNELS]
    channel_weights = [w for _, w in words.ORDER_CHANNELS]
    for order_id, (day, c, _) in enumerate(drafts, start=1):
        customer = customers[c]
        customer_id, segment, country, region_id = customer[0], customer[2], customer[7], customer[8]
        employee = customer[9] if rng.random() < 0.85 else rng.choice(reps[region_id])
        weights_now = channel_weights[:-1] + [0.35 if segment == "Enterprise" else 0.04]
        channel = rng.choices(channels, weights_now)[0]
        required = day + timedelta(days=rng.randint(3, 14))

        # Lines: distinct products; discontinued lines stop selling after mid-2024.
        n_lines = rng.choices(*ITEMS_PER_ORDER)[0]
        chosen: list[tuple] = []
        while len(chosen) < n_lines:
            product = products[bisect.bisect_left(product_cum, rng.uniform(0, product_cum[-1]))]
            if product in chosen or (product[9] and day > date(2024, 6, 30)):
                continue
            chosen.append(product)
        total = Decimal(0)
        discounts, discount_weights = SEGMENT_DISCOUNTS[segment]
        for product in chosen:
            price = product[5]
            top = 40 if price < 10 else 20 if price < 50 else 8 if price < 200 else 3
            quantity = max(1, int(rng.randint(1, top) * SEGMENT_QTY[segment]))
            unit_price = (price * YEAR_PRICE[day.year]).quantize(CENT)
            discount = rng.choices(discounts, discount_weights)[0]
            items.append((len(items) + 1, order_id, product[0], quantity, unit_price, discount))
            total += (quantity * unit_price * (1 - discount)).quantize(CENT)

        # Timeline: cancelled orders stop here; others ship 1-3 days later and then travel.
        carriers = words.CARRIERS_BY_COUNTRY.get(country, words.CARRIERS_EUROPE)
        carrier = rng.choice(carriers)
        base_cost, transit_low, transit_high = words.CARRIERS[carrier]
        shipped = day + timedelta(days=rng.randint(1, 3))
        delivered = shipped + timedelta(days=rng.randint(transit_low, transit_high))
        if rng.random() < 0.035:
            status = "cancelled"
        elif shipped > cutoff:
            status = "pending" if (cutoff - day).days <= 1 else "processing"
        elif delivered > cutoff:
            status = "shipped"
        else:
            status = "returned" if rng.random() < 0.025 else "delivered"
        orders.append((order_id, customer_id, employee, day.isoformat(), required.isoformat(), status, channel))
        last_order[customer_id] = day.isoformat()

        if status in ("shipped", "delivered", "returned"):
            # Split deliveries only on settled orders, so every part of a delivered order has arrived.
            parts = 2 if n_lines >= 4 and (cutoff - day).days > 30 and rng.random() < 0.06 else 1
            for part in range(parts):
                ship_day = shipped + timedelta(days=part * rng.randint(1, 4))
                transit = rng.randint(transit_low, transit_high)
                # The first part travels on the timeline that decided the status (so a delivered
                # order's shipment has arrived); a second part ships 1-4 days behind it.
                arrive = delivered if part == 0 else ship_day + timedelta(days=transit)
                arrived = arrive.isoformat() if status != "shipped" and arrive <= cutoff else None
                cost = Decimal(str(base_cost * (1 + 0.15 * n_lines / parts) * rng.uniform(0.9, 1.25))).quantize(CENT)
                shipments.append([None, order_id, carrier, _tracking(rng, carrier), ship_day.isoformat(), arrived, cost])

        if status == "cancelled":
            continue
        method = _payment_method(rng, segment, country)
        if status in ("pending", "processing") and method != "credit_card":
            continue  # invoiced on shipment: nothing paid yet
        delay = {"credit_card": (0, 0), "direct_debit": (10, 20), "bank_transfer": (14, 45),
                 "check": (20, 50)}[method]
        paid_day = day + timedelta(days=rng.randint(*delay))
        installments = 2 if segment == "Enterprise" and method == "bank_transfer" and rng.random() < 0.25 else 1
        first_part = (total / 2).quantize(CENT) if installments == 2 else total
        for part, amount in enumerate((first_part, total - first_part)[:installments]):
            when = paid_day + timedelta(days=30 * part)
            if when <= cutoff:
                payments.append([None, order_id, _timestamp(rng, when), amount, method])

    # Ids follow time, as an OLTP system would assign them.
    shipments.sort(key=lambda r: (r[4], r[1]))
    payments.sort(key=lambda r: (r[2], r[1]))
    shipments = [(i, *r[1:]) for i, r in enumerate(shipments, start=1)]
    payments = [(i, *r[1:]) for i, r in enumerate(payments, start=1)]
    return orders, items, payments, shipments, last_order
