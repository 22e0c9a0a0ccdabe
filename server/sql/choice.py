"""Choosing among candidate queries by the model's likelihood (`sql.rerank`, `sql.template_choice`).

The template baseline's nearest pair has the right SQL shape for 117 of the 140 seen-shape test
questions on the sample, but some pair among the nearest 3 shapes is right for 133
(server/sql/baseline.py `answers`). Retrieval by words ranks them; a model trained on the domain
can rank them by meaning and notices a candidate that kept a stale value ('Detroit' where the
question says Ireland). Generating freely, the same small model mostly copies the draft it is
shown. Reading its likelihood instead asks a question it answers better: which of these queries
would you have written?

Each candidate is scored after a prompt (`sql.rerank_context`): the one free generation gets
(`served`), the question with that candidate as its draft (`own_draft`), or the question alone
(`question`, for a model trained with `draft: false`): its tokens are teacher-forced (SamplingParams.forced_tokens) and
the log-probabilities of the raw logits summed (server/engine/sampling.py `logprobs_at`). Pure
helpers here; server/services/sql_candidates.py scores.

Measured with the default recipe's SmolLM2-135M adapter (training/README.md): it does not beat
retrieval's order (served context: always the draft; own draft: EX 21% against 55%), so
`sql.rerank` is off by default. It is kept for larger models and as a measured negative result.

The reverse question (`sql.template_choice = "model"`) works where that one did not. When several
templates fit the question (every slot re-filled from it), the model reads each query in
`question_messages` and the asked question is scored as the reply: log P(question | query). Every
candidate is scored on the same tokens (the question), so sums compare fairly whatever each
query's length, and a query that asks something else (a count per segment where the question
wants suppliers) makes the question unlikely. With `sql.template_edits` the candidates also
include each fitting template's structural edits (server/sql/edits.py), which enter the ranking
`sql.edit_penalty` nats down: a prior against queries no example pair has. The figures are in
training/README.md.
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
