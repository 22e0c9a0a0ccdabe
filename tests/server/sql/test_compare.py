"""Table-driven edge cases of the execution-accuracy comparator (server/sql/compare.py)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from server.sql.compare import Gold, compare_to_gold, is_empty_result, is_ordered, normalise, split_statements

# (case id, predicted rows, gold rows, gold ordered, allow_extra_columns, expected correct)
CASES = [
    ("identical", [[1, "a"]], [[1, "a"]], False, False, True),
    ("int equals float", [[3]], [[3.0]], False, False, True),
    ("decimal equals float", [[Decimal("19.99")]], [[19.99]], False, False, True),
    ("bool is int", [[True]], [[1]], False, False, True),
    ("float sum order noise", [[0.1 + 0.2]], [[0.3]], False, False, True),
    ("relative tolerance is tight", [[0.0031]], [[0.0032]], False, False, False),
    ("large numbers, relative tol", [[1_000_000.0001]], [[1_000_000.0]], False, False, True),
    ("one cent is wrong for accuracy", [[1234.56]], [[1234.57]], False, False, False),
    ("date object vs ISO string", [[dt.date(2024, 1, 5)]], [["2024-01-05"]], False, False, True),
    ("datetime vs T-separated", [[dt.datetime(2024, 1, 5, 10)]], [["2024-01-05T10:00:00"]], False, False, True),
    ("date is not datetime", [["2024-01-05"]], [["2024-01-05 00:00:00"]], False, False, False),
    ("text is case-sensitive", [["acme"]], [["Acme"]], False, False, False),
    ("number is not numeric text", [[2024]], [["2024"]], False, False, False),
    ("NULL is not zero", [[1, None]], [[1, 0]], False, False, False),
    ("NULL equals NULL", [[None]], [[None]], False, False, True),
    ("unordered rows", [[2], [1]], [[1], [2]], False, False, True),
    ("ordered gold, wrong order", [[2], [1]], [[1], [2]], True, False, False),
    ("ordered gold, right order", [[1], [2]], [[1], [2]], True, False, True),
    ("duplicates count", [[1], [1], [2]], [[1], [2], [2]], False, False, False),
    ("missing row", [[1]], [[1], [2]], False, False, False),
    ("extra row", [[1], [2], [3]], [[1], [2]], False, False, False),
    ("columns permuted", [["a", 1], ["b", 2]], [[1, "a"], [2, "b"]], False, False, True),
    ("columns permuted, ordered", [["a", 1], ["b", 2]], [[1, "a"], [2, "b"]], True, False, True),
    ("permuted columns must keep rows together", [["a", 2], ["b", 1]], [[1, "a"], [2, "b"]], False, False, False),
    ("extra column refused by default", [["a", 1, 9]], [["a", 1]], False, False, False),
    ("extra column allowed (defog)", [["a", 9, 1]], [["a", 1]], False, True, True),
    ("extra columns after the gold's, allowed", [["a", 1, 9], ["b", 2, 8]], [["a", 1], ["b", 2]], False, True, True),
    ("one gold column, extras after it", [["x", "Hamburg", 3]], [["x"]], False, True, True),
    ("fewer columns never match", [["a"]], [["a", 1]], False, True, False),
    ("same-valued columns swap", [[1, 1], [2, 2]], [[1, 1], [2, 2]], False, False, True),
    ("both empty", [], [], False, False, True),
    ("empty prediction, non-empty gold", [], [[1]], False, False, False),
    ("non-empty prediction, empty gold", [[1]], [], False, False, False),
    ("equal floats straddling a rounding edge", [[0.12344999999, "z"], [0.1235, "a"]],
     [[0.12345000001, "z"], [0.1235, "a"]], False, False, True),
    ("tolerant unordered match", [[1.00000000001], [2.0]], [[2.0], [1.0]], False, False, True),
]


@pytest.mark.parametrize("pred, gold, ordered, extra, expected",
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_compare_to_gold(pred, gold, ordered, extra, expected) -> None:
    verdict = compare_to_gold(pred, [Gold(gold, ordered)], allow_extra_columns=extra)
    assert verdict.correct is expected
    assert verdict.variant == (0 if expected else None)


def test_any_gold_variant_counts() -> None:
    golds = [Gold([["Ann"]]), Gold([[7]]), Gold([["Ann", 7]])]
    assert compare_to_gold([[7]], golds).variant == 1
    assert compare_to_gold([[7, "Ann"]], golds).variant == 2
    assert not compare_to_gold([["Bob"]], golds).correct
    assert not compare_to_gold(None, golds).correct  # no prediction (rejected, refused)


@pytest.mark.parametrize("rows, empty", [([], True), ([[None]], True), ([[None, None], [None, None]], True),
                                         ([[0]], False), ([[None, 1]], False)])
def test_empty_gold_is_flagged(rows, empty) -> None:
    assert is_empty_result(rows) is empty
    assert compare_to_gold([], [Gold(rows)]).gold_empty is empty
    assert compare_to_gold([], [Gold([[1]]), Gold(rows)]).gold_empty is empty  # any variant


@pytest.mark.parametrize("sql, ordered", [
    ("SELECT a FROM t ORDER BY a", True),
    ("SELECT a FROM t ORDER BY a DESC LIMIT 5", True),
    ("SELECT a FROM t UNION SELECT a FROM u ORDER BY a", True),
    ("WITH x AS (SELECT a FROM t ORDER BY a) SELECT a FROM x", False),
    ("WITH x AS (SELECT a FROM t) SELECT a FROM x ORDER BY a", True),
    ("SELECT COUNT(*) FROM (SELECT a FROM t ORDER BY a LIMIT 3) AS x", False),
    ("SELECT a FROM t WHERE a IN (SELECT a FROM u ORDER BY a)", False),
    ("SELECT a, ROW_NUMBER() OVER (ORDER BY a) FROM t", False),
])
def test_only_a_top_level_order_by_makes_order_matter(sql, ordered) -> None:
    assert is_ordered(sql) is ordered


@pytest.mark.parametrize("value, expected", [
    (Decimal("1.50"), 1.5), (True, 1), (7, 7.0), (dt.date(2024, 2, 29), "2024-02-29"),
    (dt.datetime(2024, 2, 29, 8, 30), "2024-02-29 08:30:00"), ("2024-02-29T08:30", "2024-02-29 08:30"),
    (b"\x01\xff", "01ff"), ("text", "text"), (None, None),
])
def test_normalise(value, expected) -> None:
    assert normalise(value) == expected


@pytest.mark.parametrize("text, parts", [
    ("SELECT 1;SELECT 2;", ["SELECT 1", "SELECT 2"]),
    ("SELECT 'a;b' AS x; SELECT \"c;d\" FROM t", ["SELECT 'a;b' AS x", 'SELECT "c;d" FROM t']),
    ("SELECT 'it''s; fine'", ["SELECT 'it''s; fine'"]),
    ("  ;; ", []),
])
def test_split_statements(text, parts) -> None:
    assert split_statements(text) == parts
