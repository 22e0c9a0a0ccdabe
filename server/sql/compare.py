"""Execution accuracy: does a predicted query's result set equal the gold query's?

Two users:

* the evaluation (bench/sql.py, `hearth eval`): `compare_to_gold(pred_rows, golds)` scores one
  prediction against one or more gold variants (defog lists several acceptable queries per
  question; any one that matches counts);
* the sample's cross-engine test: `same_result(a, b, ordered=...)`, the same answer from SQLite,
  PostgreSQL and MariaDB.

What counts as "the same":

* values are normalised first (`normalise`): bool → int, int/float/Decimal → float, date and
  datetime objects → ISO strings with a space before the time ('2024-01-05T10:00:00' and
  '2024-01-05 10:00:00' are one value), so engines and drivers that dress one answer differently
  agree;
* numbers compare with a tolerance: relative 1e-6 for execution accuracy (float sums depend on
  summation order), and an absolute 0.0101 across engines (ROUND(SUM(x), 2) of a float sum and of
  an exact decimal sum can differ by one cent);
* row order matters only when the gold query has a top-level ORDER BY (`is_ordered`): an ORDER
  BY inside a subquery orders nothing the caller sees;
* column order does not matter for execution accuracy (Spider's test-suite metric also permutes
  columns): `SELECT name, total` answers what `SELECT total, name` does. Optionally, as defog's
  sql-eval does, extra predicted columns are allowed (`allow_extra_columns`), since a question
  rarely says which columns to return.

A gold result that is empty (or only NULLs, e.g. AVG over no rows) is flagged: any query that
selects nothing matches it, so such items are reported apart from the others.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import sqlglot
from sqlglot import exp

_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?$")
CROSS_ENGINE_ABS_TOL = 0.0101  # one cent, see the module docstring
EXEC_REL_TOL = 1e-6
EXEC_ABS_TOL = 1e-9
MAX_PERMUTATIONS = 64  # column alignments tried before giving up (wide results with look-alike columns)
MAX_GREEDY_ROWS = 3000  # above this the tolerant row matching (quadratic) is skipped


def normalise(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float, Decimal)):
        return float(value)
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, str) and _DATETIME.match(value):
        return value.replace("T", " ")
    return value


def normalise_rows(rows: Sequence[Sequence[Any]]) -> list[tuple]:
    return [tuple(normalise(v) for v in row) for row in rows]


def is_ordered(sql: str, dialect: str = "sqlite") -> bool:
    """True when the outermost query has an ORDER BY (row order is then part of the answer)."""
    tree = sqlglot.parse_one(sql, read=dialect)
    while isinstance(tree, exp.Subquery):  # "(SELECT ... ORDER BY x)" written in parentheses
        tree = tree.this
    return tree.args.get("order") is not None


def _sort_key(row: tuple) -> tuple:
    # None first, numbers rounded (so a tolerance-sized difference rarely reorders), then text.
    return tuple((0, "") if v is None else (1, round(v, 4)) if isinstance(v, float) else (2, str(v)) for v in row)


def _values_equal(a: Any, b: Any, rel_tol: float, abs_tol: float) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return math.isclose(a, b, rel_tol=rel_tol, abs_tol=abs_tol)
    return a == b


def _rows_equal(x: tuple, y: tuple, rel_tol: float, abs_tol: float) -> bool:
    return len(x) == len(y) and all(_values_equal(u, v, rel_tol, abs_tol) for u, v in zip(x, y))


def _same_normalised(a: list[tuple], b: list[tuple], ordered: bool, rel_tol: float, abs_tol: float) -> bool:
    if len(a) != len(b):
        return False
    if ordered:
        return all(_rows_equal(x, y, rel_tol, abs_tol) for x, y in zip(a, b))
    sa, sb = sorted(a, key=_sort_key), sorted(b, key=_sort_key)
    if all(_rows_equal(x, y, rel_tol, abs_tol) for x, y in zip(sa, sb)):
        return True
    # Sorting can pair rows wrongly when floats within tolerance straddle a rounding boundary;
    # then match each row to any equal unused row (quadratic, so only for modest results).
    if len(a) > MAX_GREEDY_ROWS or not any(isinstance(v, float) for row in a for v in row):
        return False
    unused = list(sb)
    for row in sa:
        hit = next((i for i, other in enumerate(unused) if _rows_equal(row, other, rel_tol, abs_tol)), None)
        if hit is None:
            return False
        unused.pop(hit)
    return True


def same_result(rows_a: Sequence[Sequence], rows_b: Sequence[Sequence], *, ordered: bool,
                rel_tol: float = 1e-9, abs_tol: float = CROSS_ENGINE_ABS_TOL) -> bool:
    """Same rows, columns in the same order; row order compared only when `ordered`."""
    return _same_normalised(normalise_rows(rows_a), normalise_rows(rows_b), ordered, rel_tol, abs_tol)


def _column_key(rows: list[tuple], j: int) -> Counter:
    # A column's multiset of values, floats coarsely rounded: used only to prune alignments.
    return Counter(round(r[j], 4) if isinstance(r[j], float) else r[j] for r in rows)


def _alignments(pred: list[tuple], gold: list[tuple], allow_extra: bool):
    """Projections of the predicted columns onto the gold's, most plausible first.

    Pred column j is a candidate for gold column i when their value multisets agree; the exact
    (identity) alignment is always tried first.
    """
    n_gold = len(gold[0]) if gold else 0
    n_pred = len(pred[0]) if pred else 0
    if n_pred == n_gold:
        yield tuple(range(n_gold))
    if n_gold == 0 or n_pred < n_gold or (n_pred > n_gold and not allow_extra):
        return
    pred_keys = [_column_key(pred, j) for j in range(n_pred)]
    candidates = []
    for i in range(n_gold):
        key = _column_key(gold, i)
        options = [j for j in range(n_pred) if pred_keys[j] == key]
        if not options:
            return
        candidates.append(options)
    tried = 0
    for combo in itertools.product(*candidates):
        if len(set(combo)) < n_gold or (n_pred == n_gold and combo == tuple(range(n_gold))):
            continue  # (the identity was yielded above only when the widths are equal)
        yield combo
        tried += 1
        if tried >= MAX_PERMUTATIONS:
            return


@dataclass(frozen=True)
class Gold:
    """One acceptable answer: its rows and whether row order is part of it."""

    rows: Sequence[Sequence[Any]]
    ordered: bool = False
    sql: str | None = None


@dataclass(frozen=True)
class Verdict:
    correct: bool
    variant: int | None  # index of the gold variant that matched
    gold_empty: bool  # some gold variant is empty or all-NULL: a query selecting nothing matches it


def is_empty_result(rows: Sequence[Sequence[Any]]) -> bool:
    """No rows, or nothing but NULLs (an aggregate over no rows)."""
    return all(v is None for row in rows for v in row)


def compare_to_gold(pred_rows: Sequence[Sequence[Any]] | None, golds: Sequence[Gold], *,
                    allow_extra_columns: bool = False, rel_tol: float = EXEC_REL_TOL,
                    abs_tol: float = EXEC_ABS_TOL) -> Verdict:
    """Score a prediction (None: it produced no rows at all, e.g. rejected) against gold variants."""
    gold_empty = any(is_empty_result(g.rows) for g in golds)
    if pred_rows is None:
        return Verdict(False, None, gold_empty)
    pred = normalise_rows(pred_rows)
    for index, gold in enumerate(golds):
        g = normalise_rows(gold.rows)
        if len(g) != len(pred):
            continue
        if not g:  # both empty: column count is unknowable from rows, and does not matter
            return Verdict(True, index, gold_empty)
        for cols in _alignments(pred, g, allow_extra_columns):
            projected = [tuple(row[j] for j in cols) for row in pred]
            if _same_normalised(projected, g, gold.ordered, rel_tol, abs_tol):
                return Verdict(True, index, gold_empty)
    return Verdict(False, None, gold_empty)


def split_statements(sql: str) -> list[str]:
    """Split `a; b; c` on the semicolons outside quotes (defog separates gold variants so)."""
    out, start, quote = [], 0, None
    for i, ch in enumerate(sql):
        if quote:
            if ch == quote:
                quote = None  # a doubled quote ('') closes and reopens: still right
        elif ch in ("'", '"', "`"):
            quote = ch
        elif ch == ";":
            out.append(sql[start:i])
            start = i + 1
    out.append(sql[start:])
    return [s.strip() for s in out if s.strip()]
