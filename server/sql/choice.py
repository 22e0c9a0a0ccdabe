"""Choosing among candidate queries by the model's likelihood (`sql.template_choice = "model"`).

When several templates fit the question (every slot re-filled from it), retrieval by words ranks
them; a model trained on the domain can rank them by meaning. The model reads each query in
`question_messages` and the asked question is scored as the reply: log P(question | query). Every
candidate is scored on the same tokens (the question), so sums compare fairly whatever each
query's length, and a query that asks something else (a count per segment where the question
wants suppliers) makes the question unlikely. With `sql.template_edits` the candidates also
include each fitting template's structural edits (server/sql/edits.py), which enter the ranking
`sql.edit_penalty` nats down: a prior against queries no example pair has. The figures, and those of
scoring the SQL itself after the question (`sql.rerank`, removed: it never beat retrieval's order),
are in training/README.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .prompt import sql_answer

def answer_text(sql: str) -> str:
    """The assistant reply a candidate is scored as: the SQL on one line, as training targets are."""
    return sql_answer(sql)


@dataclass
class ScoredCandidate:
    sql: str
    rank: int  # retrieval rank, 0 = the nearest pair's shape (the template baseline's answer)
    logprob: float | None = None  # sum over the answer's tokens; None: scoring failed or was cut
    tokens: int = 0
    token_ids: tuple[int, ...] = ()  # the tokens scored
    edit: str | None = None  # the edit rule that made it from a template (server/sql/edits.py); None: as retrieved


def by_likelihood(candidates: Sequence[ScoredCandidate], edit_penalty: float = 0.0) -> list[ScoredCandidate]:
    """Most likely first (the sum of token log-probabilities: the probability of the whole query).
    Unscored candidates go last; ties keep retrieval order, so with no scores this is the
    baseline's order. An edit of a template (server/sql/edits.py) ranks as if `edit_penalty` nats
    less likely: a prior, log P(query) lower for a query no example pair has."""
    def key(c: ScoredCandidate):
        score = (c.logprob or 0.0) - (edit_penalty if c.edit else 0.0)
        return c.logprob is None, -score, c.rank
    return sorted(candidates, key=key)
