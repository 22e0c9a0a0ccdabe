"""Question/SQL templates ("shapes") over the sample database, and their instantiation.

A `Shape` is one SQL skeleton with slots plus several English paraphrases of the question it
answers. `instantiate` fills the slots with values drawn from the *generated data* (real cities,
companies, products, months that have orders), runs each candidate on SQLite and keeps it only
if its answer is non-trivial (not empty, not a lone 0 / NULL), so gold answers say something.

Gold SQL is written in the subset that means the same on SQLite, PostgreSQL and MariaDB:
* dates are compared with ISO string literals (`order_date >= '2024-01-01'`), never through
  date functions, which differ on every engine; ranges are half-open so timestamps work too;
* money aggregates are wrapped in ROUND(x, 2) (SQLite sums binary floats, the servers decimals),
  and averages of integers too (MariaDB keeps 4 decimals, SQLite a float);
* no integer division, no `||` (MariaDB's OR), no LIMIT inside IN (...), no alias in HAVING;
* every ORDER BY ends in a unique tiebreaker, so ordered answers are identical everywhere.

Determinism: each shape draws from its own `Random(f"{seed}/{shape.id}")`, so adding or editing
one shape never changes the pairs of another.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import cached_property
from random import Random
from typing import Any, Callable

CATEGORIES = ("select", "join", "aggregate", "group_by_having", "order_limit", "date_range", "nested",
              "set_operation")

Slots = dict[str, Any]


@dataclass(frozen=True)
class Shape:
    id: str  # stable template id, e.g. "join.orders_of_company"; it is the pair's `shape`
    category: str
    sql: str  # str.format template; string slots are SQL-escaped before formatting
    questions: tuple[str, ...]  # paraphrases; pairs.py holds the last one out of train
    draw: Callable[["Pools", Random], Slots]
    count: int = 8  # distinct instances (different SQL) to produce
    allow_zero: bool = False  # a 0 / NULL answer is still informative (e.g. "how many ... left?")
    held_out: bool = False  # test-only shape: no pair of it is in train (seen_shape false)

    def __post_init__(self) -> None:
        if self.category not in CATEGORIES:
            raise ValueError(f"{self.id}: unknown category {self.category!r}")
        if len(self.questions) < 3:
            raise ValueError(f"{self.id}: needs at least 3 paraphrases (one is held out for test)")


@dataclass(frozen=True)
class Instance:
    shape: Shape
    index: int  # 0-based instance number within the shape
    slots: Slots
    sql: str

    def question(self, paraphrase: int) -> str:
        text = self.shape.questions[paraphrase].format(**display_slots(self.slots))
        return text[:-1] if text.endswith("..") else text  # "... Inc.." -> "... Inc."


_ARTICLE = {"United States", "United Kingdom", "Netherlands"}  # "customers in the Netherlands"


def display_slots(slots: Slots) -> Slots:
    """Slot values as a person would write them: 'direct_debit' -> 'direct debit', 'the Netherlands'.

    The SQL keeps the stored value; mapping the wording back to it is part of the task.
    """
    out = {}
    for key, value in slots.items():
        if isinstance(value, str) and "_" in value and " " not in value:
            value = value.replace("_", " ")
        if key == "country" and value in _ARTICLE:
            value = f"the {value}"
        if isinstance(value, int) and value >= 10_000:  # amounts: 25,000 (years and ids stay plain)
            value = f"{value:,}"
        out[key] = value
    return out


def sql_literal_safe(slots: Slots) -> Slots:
    """String slot values with single quotes doubled (O'Brien -> O''Brien) for the SQL template."""
    return {k: v.replace("'", "''") if isinstance(v, str) else v for k, v in slots.items()}


def render_sql(shape: Shape, slots: Slots) -> str:
    return " ".join(shape.sql.format(**sql_literal_safe(slots)).split())


def _trivial(rows: list[tuple]) -> bool:
    return not rows or all(all(v is None or v == 0 for v in row) for row in rows)


def instantiate(shape: Shape, pools: "Pools", seed: int, *, attempts_per_instance: int = 40) -> list[Instance]:
    """Up to `shape.count` instances with distinct SQL and a non-trivial SQLite answer."""
    rng = Random(f"{seed}/{shape.id}")
    out: list[Instance] = []
    seen: set[str] = set()
    for _ in range(shape.count * attempts_per_instance):
        if len(out) == shape.count:
            break
        slots = shape.draw(pools, rng)
        sql = render_sql(shape, slots)
        if sql in seen:
            continue
        seen.add(sql)
        rows = pools.conn.execute(sql).fetchall()
        if _trivial(rows) and not shape.allow_zero:
            continue
        out.append(Instance(shape, len(out), slots, sql))
    return out


# ------------------------------------------------------------------------------- slot pools
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December")
YEARS = (2023, 2024, 2025)


@dataclass
class Pools:
    """Values questions may mention, read from the generated database itself."""

    conn: sqlite3.Connection
    _cache: dict[str, list] = field(default_factory=dict)

    def _col(self, sql: str) -> list:
        rows = self.conn.execute(sql).fetchall()
        return [r[0] if len(r) == 1 else r for r in rows]

    @cached_property
    def cities(self) -> list[str]:  # customer cities with at least 3 customers
        return self._col("SELECT city FROM customers GROUP BY city HAVING COUNT(*) >= 3 ORDER BY city")

    @cached_property
    def countries(self) -> list[str]:  # customer countries with at least 4 customers
        return self._col("SELECT country FROM customers GROUP BY country HAVING COUNT(*) >= 4 ORDER BY country")

    @cached_property
    def supplier_countries(self) -> list[str]:
        return self._col("SELECT DISTINCT country FROM suppliers ORDER BY country")

    @cached_property
    def regions(self) -> list[str]:
        return self._col("SELECT region_name FROM regions ORDER BY region_id")

    @cached_property
    def categories(self) -> list[str]:
        return self._col("SELECT category_name FROM categories ORDER BY category_id")

    @cached_property
    def segments(self) -> list[str]:
        return self._col("SELECT DISTINCT segment FROM customers ORDER BY segment")

    @cached_property
    def industries(self) -> list[tuple[str, str]]:  # (segment, industry) pairs that exist
        return self._col("SELECT DISTINCT segment, industry FROM customers ORDER BY segment, industry")

    @cached_property
    def suppliers(self) -> list[str]:
        return self._col("SELECT supplier_name FROM suppliers ORDER BY supplier_id")

    @cached_property
    def companies(self) -> list[str]:  # customers with 3..25 orders: short, non-empty lists
        return self._col("SELECT c.company_name FROM customers c JOIN orders o ON o.customer_id = c.customer_id "
                         "GROUP BY c.customer_id, c.company_name HAVING COUNT(*) BETWEEN 3 AND 25 "
                         "ORDER BY c.customer_id")

    @cached_property
    def big_companies(self) -> list[str]:  # customers with 30+ orders (ordered in every year)
        return self._col("SELECT c.company_name FROM customers c JOIN orders o ON o.customer_id = c.customer_id "
                         "GROUP BY c.customer_id, c.company_name HAVING COUNT(*) >= 30 ORDER BY c.customer_id")

    @cached_property
    def products(self) -> list[str]:  # products that sold at least 5 times
        return self._col("SELECT p.product_name FROM products p JOIN order_items oi ON oi.product_id = p.product_id "
                         "GROUP BY p.product_id, p.product_name HAVING COUNT(*) >= 5 ORDER BY p.product_id")

    @cached_property
    def account_managers(self) -> list[tuple[str, str]]:  # (first, last) of employees with accounts
        return self._col("SELECT DISTINCT e.first_name, e.last_name, e.employee_id FROM employees e "
                         "JOIN customers c ON c.account_manager_id = e.employee_id ORDER BY e.employee_id")

    @cached_property
    def reports(self) -> list[tuple[str, str]]:  # (first, last) of employees who have a manager
        return self._col("SELECT first_name, last_name FROM employees WHERE manager_id IS NOT NULL "
                         "ORDER BY employee_id")

    @cached_property
    def job_titles(self) -> list[str]:
        return self._col("SELECT DISTINCT job_title FROM employees WHERE manager_id IS NOT NULL ORDER BY job_title")

    @cached_property
    def order_ids(self) -> list[int]:
        return self._col("SELECT order_id FROM orders ORDER BY order_id")

    def values(self, table: str, column: str) -> list:
        key = f"{table}.{column}"
        if key not in self._cache:
            self._cache[key] = self._col(f"SELECT DISTINCT {column} FROM {table} ORDER BY {column}")
        return self._cache[key]


# ------------------------------------------------------------------------------- slot helpers
def year(r: Random, years: tuple[int, ...] = YEARS) -> Slots:
    y = r.choice(years)
    return {"year": y, "y0": f"{y}-01-01", "y1": f"{y + 1}-01-01", "ylast": f"{y}-12-31"}


def month(r: Random) -> Slots:
    y, m = r.choice(YEARS), r.randint(1, 12)
    end = f"{y + 1}-01-01" if m == 12 else f"{y}-{m + 1:02d}-01"
    return {"month": f"{MONTHS[m - 1]} {y}", "m0": f"{y}-{m:02d}-01", "m1": end}


def quarter(r: Random) -> Slots:
    y, q = r.choice(YEARS), r.randint(1, 4)
    end = f"{y + 1}-01-01" if q == 4 else f"{y}-{3 * q + 1:02d}-01"
    return {"quarter": f"Q{q} {y}", "q0": f"{y}-{3 * q - 2:02d}-01", "q1": end}


def day(r: Random, start: str = "2023-01-09", end: str = "2025-12-15") -> str:
    a, b = date.fromisoformat(start), date.fromisoformat(end)
    return (a + timedelta(days=r.randint(0, (b - a).days))).isoformat()


def week(r: Random) -> Slots:
    d0 = date.fromisoformat(day(r))
    d0 -= timedelta(days=d0.weekday())  # a Monday
    return {"d0": d0.isoformat(), "d6": (d0 + timedelta(days=6)).isoformat(),
            "week": f"the week of {MONTHS[d0.month - 1]} {d0.day}, {d0.year}"}


def person(pair: tuple) -> Slots:
    return {"first": pair[0], "last": pair[1], "name": f"{pair[0]} {pair[1]}"}

