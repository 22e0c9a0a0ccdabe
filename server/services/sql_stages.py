"""The stages of one /v1/sql request, in order (SqlService.generate runs them until one answers).

    STAGES = (answer_with_template, write_with_model)

Each stage is a small async function of (service, run) that appends its attempts to `run` and sets
`run.final` when a candidate passed validation (and execution); the next stage runs only while
nothing has. What a stage considers is computed by pure functions over the retrieved templates
(template_candidates), as server/sql/rules.py is a tuple of small pure functions.

    answer_with_template  sql.template_first: a template whose values all fit and that uses the
                          question's values (server/sql/baseline.py `complete`), those whose
                          structure agrees best with the question's words (server/sql/cues.py);
                          tried nearest first
    write_with_model      the model writes the SQL (grammar-constrained by default), up to
                          sql.max_attempts, seeing its rejected SQL and the reason each time
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..protocol.sql import Attempt, QueryRows, SqlRequest, Timings
from ..sql.baseline import BaselineAnswer
from ..sql.connections import Database
from ..sql.cues import best_agreeing, most_named
from ..sql.grounding import Grounding
from ..sql.prompt import correction_messages, parse_answer
from ..sql.repairs import repaired
from ..sql.schema import DatabaseSchema
from ..sql.settings import SqlSettings
from ..sql.validate import ValidationReport


class StageHost(Protocol):
    """What the stages use of the service (server/services/text_to_sql.py SqlService)."""
    options: SqlSettings
    log: logging.Logger

    async def try_candidate(self, run: "SqlRun", attempt: Attempt) -> str | None: ...

    async def complete_sql(self, engine, messages: list[dict], grammar: str | None, max_tokens: int | None,
                           usage: "Usage", is_disconnected, timeout_s: float, shared: str = "") -> tuple[str, bool]: ...


@dataclass
class Usage:
    """Tokens one request used, over every generation."""
    prompt: int = 0
    completion: int = 0
    cached: int = 0
    ttft_ms: float | None = None

    def add(self, finish) -> None:
        """Counts one generation's tokens (a FinishEvent)."""
        self.prompt += finish.prompt_tokens
        self.completion += finish.completion_tokens
        self.cached += finish.cached_tokens


@dataclass
class SqlRun:
    """One request's state as it passes the stages."""
    req: SqlRequest
    engine: Any
    database: Database
    schema: DatabaseSchema
    dialect: str
    max_rows: int
    started: float  # time.perf_counter() at arrival
    templates: list[BaselineAnswer]  # the nearest sql.template_shapes shapes, filled (empty: template_first off)
    messages: list[dict]  # the model's prompt: schema, question, draft
    shared: str  # the prompt text every question on this schema starts with (the prefix cache's boundary)
    grammar: str | None  # None: unconstrained decoding
    grounding: Grounding | None
    max_new_tokens: int  # a generated query's token budget (SqlService.answer_budget)
    is_disconnected: Callable[[], Awaitable[bool]] | None = None
    timings: Timings = field(default_factory=Timings)
    usage: Usage = field(default_factory=Usage)
    attempts: list[Attempt] = field(default_factory=list)
    status: str = "rejected"
    final: ValidationReport | None = None
    result: QueryRows | None = None
    stopped: bool = False  # a stage ended the request (timeout, client gone, the model declined)


@dataclass(frozen=True)
class TemplateCandidate:
    sql: str
    rank: int  # retrieval rank among the searched shapes, 0 = the nearest pair's (the template baseline's answer)
    template: str | None = None  # the template `sql` repairs (server/sql/repairs.py), None when it is the template


def template_candidates(templates: list[BaselineAnswer], question: str, dialect: str) -> list[TemplateCandidate]:
    """The templates that may answer, in retrieval order (nearest first): the complete ones, each
    followed by its mirror when it goes the other way from the question (server/sql/repairs.py:
    "the least" answered by "the most"'s template), narrowed to those whose structure agrees best
    with the question's words, less the plain words each leaves out, those that name most of the
    question's words first (server/sql/cues.py)."""
    complete = [(rank, a) for rank, a in enumerate(templates) if a.complete]
    left_out = {rank: a.unused_words for rank, a in complete}
    candidates = []
    for rank, a in complete:
        candidates.append(TemplateCandidate(sql=a.sql, rank=rank))
        candidates += [TemplateCandidate(sql=fixed, rank=rank, template=a.sql) for fixed in repaired(question, a.sql, dialect)]
    best = best_agreeing(candidates, question, dialect, [left_out[c.rank] for c in candidates])
    return most_named(best, question, dialect)


async def answer_with_template(service: StageHost, run: SqlRun) -> None:
    for cand in template_candidates(run.templates, run.req.question, run.schema.dialect):
        await service.try_candidate(run, Attempt(
            number=len(run.attempts) + 1, raw=cand.template or cand.sql, sql=cand.sql, rank=cand.rank,
            source="template"))
        if run.final is not None:
            return


async def write_with_model(service: StageHost, run: SqlRun) -> None:
    options = service.options
    messages = run.messages
    for _ in range(run.req.max_attempts or options.max_attempts):
        number = len(run.attempts) + 1
        if number > 1 and run.is_disconnected is not None and await run.is_disconnected():
            service.log.info("client went away; no further attempts")
            run.stopped = True
            return
        t0 = time.perf_counter()
        budget_s = options.generation_timeout_s - (t0 - run.started)
        if budget_s <= 0:
            run.status, run.stopped = "timeout", True
            return
        raw, timed_out = await service.complete_sql(run.engine, messages, run.grammar,
                                                    run.req.max_tokens or run.max_new_tokens, run.usage,
                                                    run.is_disconnected, budget_s, run.shared)
        run.timings.generation_ms += _ms(t0)
        if timed_out:
            run.attempts.append(Attempt(number=number, raw=raw, sql=None, stage="timeout",
                                        error=f"generation ran past sql.generation_timeout_s "
                                              f"({options.generation_timeout_s:g} s)"))
            run.status, run.stopped = "timeout", True
            return
        sql = parse_answer(raw)
        if sql is None:  # the model said the schema cannot answer it
            run.attempts.append(Attempt(number=number, raw=raw, sql=None, stage="generation"))
            run.status, run.stopped = "unanswerable", True
            return
        feedback = await service.try_candidate(run, Attempt(number=number, raw=raw, sql=sql))
        if run.final is not None:
            return
        messages = messages + correction_messages(sql, feedback)


STAGES: tuple[Callable[[StageHost, SqlRun], Awaitable[None]], ...] = (answer_with_template, write_with_model)


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 3)
