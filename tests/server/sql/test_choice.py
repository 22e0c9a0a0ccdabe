"""Ordering candidates by the model's likelihood (server/sql/choice.py), pure."""

from __future__ import annotations

import pytest

from server.sql.choice import ScoredCandidate, by_likelihood


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
