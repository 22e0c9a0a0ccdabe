"""Ordering candidates by the model's likelihood (server/sql/choice.py), pure."""

from __future__ import annotations

import pytest

from server.sql.choice import Executed, ScoredCandidate, by_execution, by_likelihood, result_key


@pytest.mark.parametrize(("scores", "order"), [
    ([-3.0, -1.0, -2.0], [1, 2, 0]),
    ([-1.0, -1.0, -5.0], [0, 1, 2]),          # a tie keeps retrieval order
    ([None, -9.0, -1.0], [2, 1, 0]),          # unscored goes last
    ([None, None, None], [0, 1, 2]),          # nothing scored: the baseline's order
])
def test_by_likelihood(scores, order):
    cands = [ScoredCandidate(sql=f"q{i}", rank=i, logprob=s, tokens=3) for i, s in enumerate(scores)]
    assert [c.rank for c in by_likelihood(cands)] == order



@pytest.mark.parametrize(("penalty", "order"), [
    (0.0, ["edit", "template", "other"]),      # scores alone: the edit is likeliest
    (1.5, ["template", "edit", "other"]),      # a prior against edits: the template must lose by more
    (9.0, ["template", "other", "edit"]),
])
def test_by_likelihood_weighs_edits_by_their_prior(penalty, order):
    cands = [ScoredCandidate(sql="template", rank=0, logprob=-10.0), ScoredCandidate(sql="other", rank=1, logprob=-12.0),
             ScoredCandidate(sql="edit", rank=0, logprob=-9.0, edit="swap_set_operation")]
    ranked = by_likelihood(cands, edit_penalty=penalty)
    assert [c.sql for c in ranked] == order
    assert ranked[[c.sql for c in ranked].index("edit")].logprob == -9.0  # the model's own score is reported


def _ran(sql: str, rows, *, logprob: float | None = -1.0, index: int = 0, ordered: bool = False) -> Executed:
    return Executed(sql=sql, rows=rows, ordered=ordered, logprob=logprob, index=index)


def test_the_largest_group_of_equal_results_is_chosen():
    greedy = _ran("SELECT a", [[1]], logprob=-0.5, index=0)
    others = [_ran("SELECT b", [[2]], logprob=-3.0, index=1), _ran("SELECT c", [[2.0]], logprob=-4.0, index=2)]
    groups = by_execution([greedy, *others])
    assert [e.sql for e in groups[0]] == ["SELECT b", "SELECT c"]  # 2 == 2.0: one answer, two votes
    assert [e.sql for e in groups[1]] == ["SELECT a"]


def test_a_tie_goes_to_the_likeliest_query_then_to_the_greedy_one():
    assert by_execution([_ran("SELECT a", [[1]], logprob=-2.0, index=0),
                         _ran("SELECT b", [[2]], logprob=-1.0, index=1)])[0][0].sql == "SELECT b"
    assert by_execution([_ran("SELECT a", [[1]], logprob=None, index=0),
                         _ran("SELECT b", [[2]], logprob=None, index=1)])[0][0].sql == "SELECT a"


def test_row_order_counts_only_when_the_query_orders():
    a, b = [[1], [2]], [[2], [1]]
    assert len(by_execution([_ran("x", a), _ran("y", b, index=1)])) == 1
    assert len(by_execution([_ran("x", a, ordered=True), _ran("y", b, ordered=True, index=1)])) == 2
    assert result_key([[0.1 + 0.2]], True) == result_key([[0.3]], True)  # two spellings of one sum


def test_queries_not_run_are_grouped_by_their_sql():
    groups = by_execution([_ran("SELECT a", None), _ran("SELECT b", None, index=1), _ran("SELECT b", None, index=2)])
    assert [e.sql for e in groups[0]] == ["SELECT b", "SELECT b"]
