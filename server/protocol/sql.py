"""Schemas of the Text-to-SQL API: POST /v1/sql, POST /v1/sql/validate, GET /v1/sql/databases.

Rejections are answers, not errors: a statement the validator refuses comes back as 200 with
`valid: false` (validate) or `status: "rejected"` (generate), naming the failing rule, so that a
client handles "the model could not write safe SQL" like any other outcome. Non-2xx replies are
reserved for requests that cannot be served at all: unknown database (404), database down (503),
query timeout (504), malformed request (400), each in OpenAI's error shape.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Dialect = Literal["sqlite", "postgres", "mysql"]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SqlRequest(_Request):
    question: str = Field(min_length=1, max_length=4000, description="The question, in natural language.")
    database: str | None = Field(None, description="A configured database name; default: the first one.")
    dialect: Dialect | None = Field(
        None, description="Dialect the model writes in; the SQL that runs is always in the database's own."
    )
    execute: bool = Field(True, description="Run the validated SQL and return its rows.")
    max_rows: int | None = Field(None, ge=1, le=1_000_000, description="Row cap (LIMIT added or lowered).")
    model: str | None = Field(None, description="Model to generate with; default: the first configured.")
    constrained: bool | None = Field(
        None, description="Schema-constrained decoding (GBNF from the live schema); default from settings."
    )
    max_attempts: int | None = Field(None, ge=1, le=10, description="Attempts, counting self-corrections.")
    max_tokens: int | None = Field(None, ge=8, le=2048, description="Token budget of each attempt's SQL.")


class ValidateRequest(_Request):
    sql: str = Field(min_length=1, max_length=100_000, description="SQL to check, written by a person or a program.")
    database: str | None = Field(None, description="A configured database name; default: the first one.")
    dialect: Dialect | None = Field(None, description="Dialect the SQL is written in; default: the database's.")
    execute: bool = Field(False, description="Also run it (read-only, capped) when it passes.")
    max_rows: int | None = Field(None, ge=1, le=1_000_000, description="Row cap (LIMIT added or lowered).")


class RuleCheck(BaseModel):
    rule: str
    passed: bool | None = Field(description="None: not run, because an earlier rule failed.")
    message: str | None = None
    line: int | None = None
    col: int | None = None


class ValidationResult(BaseModel):
    valid: bool
    sql: str | None = Field(description="The statement that runs: regenerated from the AST, in `dialect`.")
    dialect: str
    checks: list[RuleCheck]
    failed_rule: str | None = None
    code: str | None = None
    message: str | None = None


class QueryRows(BaseModel):
    columns: list[str]
    rows: list[list]
    row_count: int
    truncated: bool = Field(description="More rows existed than max_rows; they were not read.")
    elapsed_ms: float


class Attempt(BaseModel):
    number: int
    raw: str = Field(description="What the model wrote.")
    sql: str | None = Field(description="The SQL parsed from it; None when the model declined to answer.")
    valid: bool | None = None
    failed_rule: str | None = None
    error: str | None = Field(None, description="Why the attempt failed (validation or execution).")
    stage: Literal["generation", "validation", "execution", "timeout", "ok"] = "ok"
    source: Literal["model", "template"] = Field(
        "model", description="model: the model wrote it; template: the template baseline's filled query, every "
        "slot filled from the question (sql.template_first), the nearest fitting one first.")
    rank: int | None = Field(None, description="A candidate's or template's retrieval rank among SQL shapes: 0 is "
                             "the nearest pair's shape, the template baseline's own answer.")


class Timings(BaseModel):
    generation_ms: float = 0.0
    validation_ms: float = 0.0
    execution_ms: float = 0.0
    total_ms: float = 0.0


class SqlUsage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cached_tokens: int = Field(0, description="Prompt tokens served from the prefix cache (the schema).")
    time_to_first_token_ms: float | None = None


class SqlResponse(BaseModel):
    id: str
    object: Literal["sql.result"] = "sql.result"
    created: int
    model: str
    database: str
    dialect: str
    question: str
    status: Literal["ok", "unanswerable", "rejected", "execution_error", "too_costly", "query_timeout",
                    "timeout"] = Field(
        description="ok: valid SQL (and rows when executed); unanswerable: the model said the schema "
        "cannot answer; rejected: no attempt passed validation; execution_error: no valid attempt ran; "
        "too_costly: the last attempt passed validation but the database's planner costs it above its "
        "max_query_cost, so it did not run; query_timeout: the last attempt passed validation but ran past the "
        "database's statement_timeout_s; "
        "timeout: sql.generation_timeout_s ran out before an attempt passed."
    )
    sql: str | None = Field(description="Final SQL, regenerated from the validated AST.")
    validation: ValidationResult | None
    attempts: list[Attempt]
    result: QueryRows | None = None
    constrained: bool
    timings: Timings
    usage: SqlUsage


class ValidateResponse(BaseModel):
    database: str
    validation: ValidationResult
    result: QueryRows | None = None
    timings: Timings


class ColumnInfo(BaseModel):
    name: str
    type: str
    nullable: bool
    primary_key: bool


class ForeignKeyInfo(BaseModel):
    columns: list[str]
    ref_table: str
    ref_columns: list[str]


class TableInfo(BaseModel):
    name: str
    columns: list[ColumnInfo]
    foreign_keys: list[ForeignKeyInfo]
    sample_values: dict[str, list[str]]


class DatabaseInfo(BaseModel):
    """A configured database. Never carries its URL or credentials."""

    name: str
    dialect: str
    description: str
    available: bool
    error: str | None = Field(None, description="Why the schema could not be read, when unavailable.")
    tables: list[TableInfo]


class DatabaseList(BaseModel):
    object: Literal["list"] = "list"
    data: list[DatabaseInfo]
