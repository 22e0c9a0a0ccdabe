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

from .compare import normalise_rows, row_sort_key
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


@dataclass
class Executed:
    """A generated query that passed validation and ran: its rows, and log P(SQL | question)."""
    sql: str
    rows: Sequence[Sequence] | None  # None: not run (the request said execute: false); grouped by SQL then
    ordered: bool  # the outer query has an ORDER BY: row order is part of its answer
    logprob: float | None = None
    index: int = 0  # generation order; 0 = the greedy answer
    payload: object = None  # what the caller needs back with the choice (its validation report and rows)


def result_key(rows: Sequence[Sequence], ordered: bool) -> tuple:
    """What two queries that ran must share to give the same answer: their rows (normalised: 3 == 3.0, dates
    as text), in order only when the query orders them. Floats are rounded to 6 places so that two
    spellings of one average (AVG(x), SUM(x) / COUNT(x)) agree."""
    norm = [tuple(round(v, 6) if isinstance(v, float) else v for v in row) for row in normalise_rows(rows)]
    return tuple(norm) if ordered else tuple(sorted(norm, key=row_sort_key))


def by_execution(executed: Sequence[Executed]) -> list[list[Executed]]:
    """The queries grouped by their result, the chosen group first: the most queries (samples that
    agree on the answer: execution-based self-consistency), then the likeliest member, then the
    earliest generated (the greedy answer wins a tie). Members keep generation order."""
    groups: dict[tuple, list[Executed]] = {}
    for e in executed:
        key = ("sql", e.sql) if e.rows is None else result_key(e.rows, e.ordered)
        groups.setdefault(key, []).append(e)

    def key(group: list[Executed]):
        best = max((e.logprob for e in group if e.logprob is not None), default=float("-inf"))
        return -len(group), -best, min(e.index for e in group)
    return sorted(groups.values(), key=key)
