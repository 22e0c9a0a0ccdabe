"""Normalise and compare query results across SQLite, PostgreSQL and MariaDB.

Engines return the same answer in different clothes: Decimal vs float (SQLite stores money as
binary floats), 19.99 vs 19.9900 (MariaDB keeps decimal scale), date objects vs ISO strings,
'2024-01-05T10:00:00' vs '2024-01-05 10:00:00'. Rows go through server.sql.execute.to_jsonable
first (what the endpoint returns), then through `normalise`. Numbers compare with a 0.01
tolerance: ROUND(SUM(...), 2) of a float sum and of an exact decimal sum can differ by one cent
when the exact value ends in 5 in the third decimal.
"""

from __future__ import annotations

import math
import re
from typing import Any

import sqlglot

_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$")
TOLERANCE = 0.0101


def normalise(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str) and _DATETIME.match(value):
        return value.replace("T", " ")
    return value


def _sort_key(row: tuple) -> tuple:
    # None first, numbers rounded (so a one-cent difference cannot reorder), then text.
    return tuple((0, "") if v is None else (1, round(v, 1)) if isinstance(v, float) else (2, str(v)) for v in row)


def is_ordered(sql: str) -> bool:
    """True when the outermost query has an ORDER BY (row order is then part of the answer)."""
    return sqlglot.parse_one(sql, read="sqlite").args.get("order") is not None


def _values_equal(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=TOLERANCE)
    return a == b


def same_result(rows_a: list, rows_b: list, *, ordered: bool) -> bool:
    a = [tuple(normalise(v) for v in row) for row in rows_a]
    b = [tuple(normalise(v) for v in row) for row in rows_b]
    if len(a) != len(b):
        return False
    if not ordered:
        a, b = sorted(a, key=_sort_key), sorted(b, key=_sort_key)
    return all(len(x) == len(y) and all(_values_equal(u, v) for u, v in zip(x, y)) for x, y in zip(a, b))
