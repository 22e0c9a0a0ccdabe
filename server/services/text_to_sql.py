"""Text-to-SQL: question → prompt → (constrained) generation → validation → read-only execution.

    SqlService.generate()   POST /v1/sql: the request through the stages of
                            server/services/sql_stages.py (a fitting template answers first
                            with sql.template_first, then the model writes, up to
                            `max_attempts` tries, seeing its rejected SQL and the error)
    SqlService.validate()   POST /v1/sql/validate: the same validator (and executor) on SQL
                            a caller wrote
    SqlService.databases()  GET /v1/sql/databases: the configured databases and their schemas

No SQL reaches a database unless `validate_sql` passed it, and what runs is the validator's
regenerated SQL, never the model's text. The connection is read-only as well (see
server/sql/readonly.py). The database registry lives here, not with the models, so that
validation and the schema listing work while the model is still loading.
"""

from __future__ import annotations

import asyncio
import logging
import time

from ..engine.base import GenerationRequest, SamplingParams
from ..errors import ContextLengthExceeded, HearthError, InvalidRequest, QueryTimeout, QueryTooCostly
from ..metrics import Metrics
from ..protocol.sql import (
    Attempt,
    DatabaseInfo,
    DatabaseList,
    QueryRows,
    SqlRequest,
    SqlResponse,
    SqlUsage,
    TableInfo,
    Timings,
    ValidateRequest,
    ValidateResponse,
    ValidationResult,
)
from ..settings import ServerSettings
from ..sql.settings import SqlSettings
from ..sql.baseline import TemplateBaseline
from ..sql.connections import Database, DatabaseRegistry
from ..sql.cost import limit_for
from ..sql.execute import execute_readonly
from ..sql.grammar import sql_grammar
from ..sql.grounding import Grounding
from ..sql.mentions import ValueIndex
from ..sql.prompt import TEMPLATE_KWARGS, sql_messages
from ..sql.retrieval import load_examples, prune_tables
from ..sql.sample.paths import ensure_sample_database
from ..sql.schema import DatabaseSchema
from ..sql.synth import with_schema_templates
from ..sql.validate import ValidationReport, validate_sql
from .generation import PROMPT_SENTINEL, new_id, prefix_boundary, rendered_before, run_to_end
from .models import ModelPool
from .sql_stages import STAGES, SqlRun, Usage

log = logging.getLogger("hearth.sql")


class SqlService:
    log = log

    def __init__(self, settings: ServerSettings, metrics: Metrics | None = None):
        self.options: SqlSettings = settings.sql
        self.metrics = metrics
        ensure_sample_database(settings.databases)
        self.registry = DatabaseRegistry(settings.databases)
        self._examples: dict[str, TemplateBaseline | None] = {}
        self._values: dict[str, ValueIndex] = {}
        self._budgets: dict[tuple[str, str], int] = {}

    # -- databases --------------------------------------------------------------------------

    def database(self, name: str | None) -> Database:
        if name is None:  # the configured default, else the first database configured
            first = next(iter(self.registry), None)
            name = self.options.default_database or (first.name if first else "")
        return self.registry.get(name)

    async def schema(self, database: Database, *, refresh: bool = False) -> DatabaseSchema:
        return await asyncio.to_thread(database.refresh if refresh else database.schema)

    async def databases(self) -> DatabaseList:
        infos = []
        for database in self.registry:
            try:
                schema = await self.schema(database)
                infos.append(_info(database, schema))
            except HearthError as exc:  # list it anyway, and say why its schema is missing
                infos.append(DatabaseInfo(name=database.name, dialect=database.dialect,
                                          description=database.config.description, available=False,
                                          error=exc.message, tables=[]))
        return DatabaseList(data=infos)

    async def refresh(self, name: str) -> DatabaseInfo:
        database = self.registry.get(name)
        self._examples.pop(database.name, None)  # the draft's value index is read again too
        self._budgets = {k: v for k, v in self._budgets.items() if k[0] != database.name}
        self._values.pop(database.name, None)
        return _info(database, await self.schema(database, refresh=True))

    def examples(self, database: Database, schema: DatabaseSchema) -> TemplateBaseline | None:
        """The database's example pairs, and with sql.schema_templates the templates synthesized
        from its schema (server/sql/synth.py): `.index` retrieves few-shot examples, `.answers()`
        drafts and templates. None when there are neither.

        Built on first use (reading every short text value of a SQLite database for the value
        lookup, so call it off the event loop)."""
        if database.name in self._examples:
            return self._examples[database.name]
        examples: list = []
        path = database.config.examples_path
        if path:
            try:
                examples = load_examples(path, schema.dialect, schema)
            except OSError as exc:  # serve without them rather than not at all
                log.warning("database %s: cannot read examples %s (%s); no example pairs", database.name, path, exc)
        values = self.values(database)
        if self.options.schema_templates:
            examples = with_schema_templates(examples, schema, values)
        pairs = TemplateBaseline(examples, values, dialect=schema.dialect) if examples else None
        if pairs is not None:
            pairs.lexicon  # learned here, off the event loop (every pair parsed once: 0.4 s for the sample's 558)
        self._examples[database.name] = pairs
        return pairs

    def values(self, database: Database) -> ValueIndex:
        """The database's text values (all of them for SQLite), read once: what a question can name."""
        if database.name not in self._values:
            self._values[database.name] = ValueIndex.for_database(database)
        return self._values[database.name]

    # -- validate ---------------------------------------------------------------------------

    async def validate(self, req: ValidateRequest) -> ValidateResponse:
        database = self.database(req.database)
        schema = await self.schema(database)
        timings = Timings()
        started = time.perf_counter()
        # Parsing is CPU work (milliseconds, more for odd input): off the event loop, like execution.
        report = await asyncio.to_thread(validate_sql, req.sql, schema, dialect=req.dialect,
                                         max_rows=self._max_rows(database, req.max_rows))
        timings.validation_ms = _ms(started)
        result = None
        if report.valid and req.execute:
            t0 = time.perf_counter()
            result = await self._execute(database, report, req.max_rows)
            timings.execution_ms = _ms(t0)
        timings.total_ms = _ms(started)
        self._count_validation(database, report)
        return ValidateResponse(database=database.name, validation=_validation(report), result=result,
                                timings=timings)

    # -- generate ---------------------------------------------------------------------------

    async def generate(self, req: SqlRequest, pool: ModelPool, is_disconnected=None) -> SqlResponse:
        """The request through STAGES in order, until one answers (server/services/sql_stages.py)."""
        run = await self._start(req, pool, is_disconnected)
        for stage in STAGES:
            if run.final is not None or run.stopped:
                break
            await stage(self, run)
        run.timings.total_ms = _ms(run.started)
        if self.metrics is not None:
            self.metrics.sql_requests.labels(run.database.name, run.status).inc()
        usage = run.usage
        return SqlResponse(
            id=new_id("sql"), created=int(time.time()), model=run.engine.name, database=run.database.name,
            dialect=run.schema.dialect, question=req.question, status=run.status,
            sql=run.final.sql if run.final is not None else None,
            validation=_validation(run.final) if run.final is not None else None,
            attempts=run.attempts, result=run.result, constrained=run.grammar is not None, timings=run.timings,
            usage=SqlUsage(prompt_tokens=usage.prompt, completion_tokens=usage.completion,
                           total_tokens=usage.prompt + usage.completion, cached_tokens=usage.cached,
                           time_to_first_token_ms=usage.ttft_ms),
        )

    async def _start(self, req: SqlRequest, pool: ModelPool, is_disconnected) -> SqlRun:
        """What every stage reads: the model, the database and its schema, the nearest templates (one
        retrieval serves the draft and the template search), the prompt, grammar and grounding."""
        started = time.perf_counter()
        engine = pool.get(req.model)
        database = self.database(req.database)
        schema = await self.schema(database)
        dialect = req.dialect or schema.dialect
        constrained = self.options.constrained_decoding if req.constrained is None else req.constrained
        tables = prune_tables(schema, req.question, self.options.max_prompt_tables)
        pairs = await asyncio.to_thread(self.examples, database, schema)
        shots = pairs.index.nearest(req.question, self.options.few_shot_k) if pairs else []
        searched = self.options.template_shapes if self.options.template_first else 0
        nearest = pairs.answers(req.question, max(1, searched)) if pairs else []
        draft = nearest[0].sql if nearest and self.options.draft else None
        # The question's own values, and those the database's pairs imply for its words (lexicon.py).
        grounding = (Grounding.of(req.question, await asyncio.to_thread(self.values, database),
                                  pairs.lexicon.implied(req.question) if pairs else frozenset())
                     if self.options.grounded_literals else None)
        return SqlRun(
            req=req, engine=engine, database=database, schema=schema, dialect=dialect,
            max_rows=self._max_rows(database, req.max_rows), started=started, is_disconnected=is_disconnected,
            templates=nearest[:searched], grounding=grounding,
            max_new_tokens=self.answer_budget(engine, database, pairs),
            messages=sql_messages(schema, req.question, dialect=dialect, tables=tables, examples=shots, draft=draft),
            shared=_schema_prefix_text(engine, schema, dialect, tables),
            grammar=sql_grammar(schema, tables, dialect=dialect) if constrained else None,
        )

    def answer_budget(self, engine, database: Database, pairs: TemplateBaseline | None) -> int:
        """sql.max_new_tokens, or more when this database's example queries are longer: 1.25x the
        longest in this model's tokens, rounded up to 32. Upper-case names and table aliases
        (`CITYalias0.CITY_NAME`) take up to twice the tokens of the same query in lower case, and a
        budget shorter than the queries the model was trained on cuts one mid-way ("unclosed '('")."""
        key = (database.name, engine.name)
        if key not in self._budgets:
            longest = max((len(engine.tokenize(ex.sql, add_special=False)) for ex in pairs.examples), default=0) \
                if pairs else 0
            self._budgets[key] = max(self.options.max_new_tokens, -(-int(longest * 1.25) // 32) * 32)
        return self._budgets[key]

    async def try_candidate(self, run: SqlRun, attempt: Attempt) -> str | None:
        """Validates (and runs) one candidate into `run`; what to tell the model when it failed."""
        run.attempts.append(attempt)
        run.status, run.final, run.result, feedback = await self._check(
            run.database, run.schema, run.dialect, run.max_rows, run.req.execute, attempt, run.timings, run.grounding)
        return feedback

    async def _check(self, database: Database, schema: DatabaseSchema, dialect: str, max_rows: int | None,
                     execute: bool, attempt: Attempt, timings: Timings, grounding: Grounding | None = None):
        """Validates (and runs) `attempt.sql`, filling in the attempt. Returns (status, the passing
        report or None, the rows or None, what to tell the model when it failed)."""
        t0 = time.perf_counter()
        report = await asyncio.to_thread(validate_sql, attempt.sql, schema, dialect=dialect, max_rows=max_rows,
                                         grounding=grounding)
        timings.validation_ms += _ms(t0)
        self._count_validation(database, report)
        attempt.valid, attempt.failed_rule = report.valid, report.failed_rule
        if not report.valid:
            attempt.stage, attempt.error = "validation", f"{report.failed_rule}: {report.message}"
            return "rejected", None, None, report.message or "rejected"
        if not execute:
            return "ok", report, None, None
        t0 = time.perf_counter()
        # Generated SQL that cannot finish is the model's error, not the server's: a query the
        # planner costs above max_query_cost, or one that runs past the statement timeout, is a
        # failed attempt fed back for correction. An outage propagates (503).
        max_cost = limit_for(database.dialect, database.config.max_query_cost)
        try:
            result = await self._execute(database, report, max_rows, max_cost=max_cost)
        except QueryTooCostly as exc:
            timings.execution_ms += _ms(t0)
            attempt.stage, attempt.failed_rule, attempt.error = "execution", "query_cost", exc.message
            return "too_costly", None, None, exc.message + "; check the join conditions"
        except QueryTimeout:
            timings.execution_ms += _ms(t0)
            limit = database.config.statement_timeout_s
            attempt.stage, attempt.failed_rule = "execution", "statement_timeout"
            attempt.error = f"the query ran past the statement timeout ({limit:g} s) and was cancelled"
            return "query_timeout", None, None, attempt.error + "; check the join conditions"
        except InvalidRequest as exc:  # the database refused it
            timings.execution_ms += _ms(t0)
            attempt.stage, attempt.error = "execution", exc.message
            return "execution_error", None, None, exc.message
        timings.execution_ms += _ms(t0)
        return "ok", report, result, None

    async def complete_sql(self, engine, messages: list[dict], grammar: str | None, max_tokens: int | None,
                           usage: Usage, is_disconnected, timeout_s: float, shared: str = "") -> tuple[str, bool]:
        """The model's reply to `messages`, and whether the deadline cut it short. `shared` is the
        prompt text every question on this schema starts with (the prefix cache's boundary)."""
        # Thinking off (Qwen3's empty think block after the prompt), as training renders it.
        prompt = engine.render_chat(messages, add_generation_prompt=True, template_kwargs=TEMPLATE_KWARGS)
        tokens = engine.tokenize(prompt, add_special=False, parse_special=True)
        room = engine.n_ctx - len(tokens)
        if room < 16:
            raise ContextLengthExceeded(
                f"the Text-to-SQL prompt takes {len(tokens)} of the model's {engine.n_ctx} context tokens; "
                "lower sql.max_prompt_tables or sql.few_shot_k, or use a longer context", param="question")
        # Greedy: a query is right or wrong, and the same question should give the same SQL.
        params = SamplingParams(max_tokens=min(max_tokens or self.options.max_new_tokens, room), temperature=0.0,
                                stop=("\n\n", ";", "```"), grammar=grammar)
        request = GenerationRequest(tuple(tokens), params, new_id("sqlgen"),
                                    prefix_boundary(engine, prompt, tokens, shared))
        out = await run_to_end(engine, request, self.metrics, engine.name, is_disconnected, timeout_s)
        if out.finish is not None:
            usage.add(out.finish)
            if usage.ttft_ms is None and out.finish.time_to_first_token_s is not None:
                usage.ttft_ms = round(out.finish.time_to_first_token_s * 1000, 3)
        return out.text, out.timed_out

    # -- shared -----------------------------------------------------------------------------

    def _max_rows(self, database: Database, requested: int | None) -> int:
        cap = database.config.max_rows
        return min(requested, cap) if requested else cap

    async def _execute(self, database: Database, report: ValidationReport, max_rows: int | None,
                       max_cost: float | None = None) -> QueryRows:
        assert report.valid and report.sql is not None  # nothing unvalidated reaches a database
        rows = self._max_rows(database, max_rows)
        result = await asyncio.to_thread(execute_readonly, database, report.sql, max_rows=rows,
                                         timeout_s=database.config.statement_timeout_s, max_cost=max_cost)
        return QueryRows(**result.to_dict())

    def _count_validation(self, database: Database, report: ValidationReport) -> None:
        if self.metrics is not None:
            self.metrics.sql_validations.labels(database.name, report.failed_rule or "passed").inc()

    def close(self) -> None:
        self.registry.close()


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 3)


def _validation(report: ValidationReport) -> ValidationResult:
    return ValidationResult(**report.to_dict())


def _info(database: Database, schema: DatabaseSchema) -> DatabaseInfo:
    return DatabaseInfo(
        name=database.name, dialect=schema.dialect, description=database.config.description, available=True,
        tables=[TableInfo(
            name=t.name,
            columns=[{"name": c.name, "type": c.type, "nullable": c.nullable, "primary_key": c.primary_key}
                     for c in t.columns],
            foreign_keys=[{"columns": list(fk.columns), "ref_table": fk.ref_table, "ref_columns": list(fk.ref_columns)}
                          for fk in t.foreign_keys],
            sample_values={k: list(v) for k, v in t.sample_values.items()},
        ) for t in schema.tables],
    )


def _schema_prefix_text(engine, schema: DatabaseSchema, dialect: str, tables) -> str:
    """The rendered prompt up to the first "Question: ": the instructions and the schema, which
    every question on this database (and table selection) shares."""
    probe = sql_messages(schema, PROMPT_SENTINEL, dialect=dialect, tables=tables)
    return rendered_before(engine, probe, "Question: " + PROMPT_SENTINEL, TEMPLATE_KWARGS)
