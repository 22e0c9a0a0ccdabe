"""The result comparison the cross-engine test relies on: lenient on representation, strict on content."""

from __future__ import annotations

from server.sql.compare import is_ordered, same_result


def test_representations_of_one_answer_compare_equal() -> None:
    sqlite = [["Acme", 19.99, "2024-01-05", "2024-01-05 10:00:00", 3]]
    server = [["Acme", 19.99, "2024-01-05", "2024-01-05T10:00:00", 3.0]]
    assert same_result(sqlite, server, ordered=True)
    assert same_result([[1234.56]], [[1234.57]], ordered=True)  # one cent: float vs decimal rounding


def test_different_answers_do_not() -> None:
    assert not same_result([["a", 1]], [["b", 1]], ordered=False)
    assert not same_result([[10.0]], [[10.05]], ordered=False)
    assert not same_result([[1], [2]], [[1]], ordered=False)
    assert not same_result([[1, None]], [[1, 0]], ordered=False)
    assert not same_result([[1], [2]], [[2], [1]], ordered=True)
    assert same_result([[1], [2]], [[2], [1]], ordered=False)


def test_only_a_top_level_order_by_makes_order_matter() -> None:
    assert is_ordered("SELECT a FROM t ORDER BY a")
    assert is_ordered("SELECT a FROM t UNION SELECT a FROM u ORDER BY a")
    assert not is_ordered("SELECT a FROM t UNION SELECT a FROM u")
    assert not is_ordered("SELECT COUNT(*) FROM (SELECT a FROM t ORDER BY a LIMIT 3) AS x")
