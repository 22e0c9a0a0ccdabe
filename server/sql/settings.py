"""Configuration of one named customer database that `POST /v1/sql` may query.

A `DatabaseConfig` is plain data: `server.sql.connections` turns it into a lazily connected
`Database`. The URL carries credentials, so it is kept out of `repr()` and every place that shows
it to a person goes through `redacted_url()`.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

Dialect = Literal["sqlite", "postgres", "mysql"]

# SQLAlchemy backend name -> sqlglot dialect name. MariaDB speaks sqlglot's "mysql".
_BACKEND_TO_DIALECT: dict[str, Dialect] = {
    "sqlite": "sqlite",
    "postgresql": "postgres",
    "mysql": "mysql",
    "mariadb": "mysql",
}

# Query-string keys that may hold a secret (libpq and PyMySQL both accept `password=` there).
_SECRET_KEY_PARTS = ("pass", "pwd", "secret", "token")


def parse_url(url: str) -> URL:
    try:
        return make_url(url)
    except ArgumentError:
        # ArgumentError's message repeats the URL, password included: do not chain it.
        raise ValueError("not a valid SQLAlchemy URL") from None


def redact_url(url: str | URL) -> str:
    """The URL without its password, and with secret-looking query values masked."""
    parsed = parse_url(url) if isinstance(url, str) else url
    query = {
        key: ("REDACTED" if any(part in key.lower() for part in _SECRET_KEY_PARTS) else value)
        for key, value in parsed.query.items()
    }
    # URL.set() reads password=None as "leave unchanged"; the namedtuple _replace() drops it.
    return parsed._replace(password=None).set(query=query).render_as_string(hide_password=False)


class DatabaseConfig(BaseModel):
    """One database that Text-to-SQL may read. Use an account that can only SELECT."""

    # hide_input_in_errors: a ValidationError would otherwise print the URL, password and all.
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    name: str = Field(
        description="Name clients pass as `database` in POST /v1/sql (letters, digits, _ . -).",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        max_length=64,
    )
    url: str = Field(
        description=(
            "SQLAlchemy URL, e.g. postgresql://reader:secret@db:5432/sales, "
            "mariadb://reader:secret@db/shop or sqlite:////srv/data/app.db. The driver part is "
            "replaced by Hearth's own (psycopg 3, PyMySQL, sqlite3). Give a least-privilege, "
            "SELECT-only account: Hearth also forces read-only transactions."
        ),
        repr=False,  # holds the password: keep it out of logs and tracebacks
    )
    dialect: Dialect | None = Field(
        default=None,
        description=(
            "sqlglot dialect of the database (sqlite, postgres or mysql). Derived from the URL "
            "when left out; MariaDB is mysql."
        ),
        validate_default=True,
    )
    statement_timeout_s: float = Field(
        default=10.0,
        gt=0,
        le=3600,
        description="Longest time in seconds one query may run before it is cancelled.",
    )
    max_rows: int = Field(
        default=1000,
        ge=1,
        le=1_000_000,
        description="Most rows one query returns; more are cut off and flagged as truncated.",
    )
    max_query_cost: float | None = Field(
        default=None,
        ge=0,
        description=(
            "Generated SQL whose cost the database's planner estimates above this is not run and is fed "
            "back to the model as a failed attempt (server/sql/cost.py): PostgreSQL EXPLAIN's total cost, "
            "MariaDB/MySQL EXPLAIN's rows multiplied over a join, SQLite's fully scanned rows multiplied over "
            "nested loops. Unset: 1.5e5 on PostgreSQL (about a full scan of 10 million rows), 1e7 on the "
            "others; 0: no check."
        ),
    )
    sample_values: int = Field(
        default=5,
        ge=0,
        le=100,
        description="Distinct values per text column read at introspection to ground the prompt.",
    )
    examples_path: str | None = Field(
        default=None,
        description="JSONL file of {question, sql} example pairs for few-shot retrieval.",
    )
    description: str = Field(
        default="",
        description="What the database holds, in a sentence; shown to the model and to users.",
    )

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        parsed = parse_url(value)
        backend = parsed.get_backend_name()
        if backend not in _BACKEND_TO_DIALECT:
            raise ValueError(f"unsupported database backend {backend!r} (sqlite, postgresql, mysql, mariadb)")
        if backend == "sqlite" and parsed.database in (None, "", ":memory:"):
            raise ValueError("a sqlite URL must name a database file, e.g. sqlite:////srv/app.db")
        return value

    @field_validator("dialect")
    @classmethod
    def _derive_dialect(cls, value: Dialect | None, info: ValidationInfo) -> Dialect | None:
        url = info.data.get("url")
        if url is None:  # the URL itself failed validation; that error is reported already
            return value
        derived = _BACKEND_TO_DIALECT[parse_url(url).get_backend_name()]
        if value is not None and value != derived:
            raise ValueError(f"dialect {value!r} does not match the URL, which is {derived!r}")
        return derived

    def redacted_url(self) -> str:
        """The URL for display: password removed, secret query values masked."""
        return redact_url(self.url)

log = logging.getLogger("hearth.settings")

# Options removed from `sql:` (lost experiments), accepted with a warning for one release (2026-12).
REMOVED_KEYS = {
    "drafts": "several candidate drafts after the question lost to one (training/EXPERIMENTS.md)",
    "rerank": "the model ranking template candidates by the SQL's likelihood never beat retrieval's order",
    "rerank_context": "it only applied to sql.rerank, removed",
    "template_choice": "the model choosing among fitting templates (model) lost to the nearest agreeing one on "
                       "every split; the nearest is what the template stage does",
    "template_edits": "structural edits of the templates, chosen by the model, went with sql.template_choice: model",
    "edit_penalty": "it only applied to sql.template_edits, removed",
}


class SqlSettings(BaseModel):
    """Text-to-SQL behaviour (`sql:` in the server's settings; a recipe's serve.sql is the same)."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _removed_keys(cls, data: Any) -> Any:
        """A serve.yaml written by an older pipeline may still name a removed option: it loads, with
        a warning naming it, for one release (then it is an unknown key like any other)."""
        if isinstance(data, dict) and REMOVED_KEYS.keys() & data.keys():
            data = dict(data)
            for key in sorted(REMOVED_KEYS.keys() & data.keys()):
                value = data.pop(key)
                warnings.warn(f"sql.{key} ({value!r}) was removed: {REMOVED_KEYS[key]}; ignored. Delete it from "
                              "your settings (training/EXPERIMENTS.md has its figures).", DeprecationWarning,
                              stacklevel=2)
                log.warning("sql.%s (%r) was removed: %s; ignored", key, value, REMOVED_KEYS[key])
        return data

    max_attempts: int = Field(3, ge=1, le=10, description="Generation attempts, counting self-corrections.")
    constrained_decoding: bool = Field(
        True, description="Constrain SQL generation with a grammar built from the live schema."
    )
    max_new_tokens: int = Field(256, ge=16, description="Token budget for one generated query.")
    generation_timeout_s: float = Field(
        60.0, gt=0, description="Wall-clock budget for generating one request's SQL, all attempts together; "
        "past it the request ends with status 'timeout' (grammar-constrained decoding of a confused model "
        "can otherwise run for minutes on a CPU).",
    )
    few_shot_k: int = Field(
        0, ge=0, le=20, description="Retrieved example pairs put in the prompt, after the schema. The draft "
        "already carries the nearest pair's SQL, and each example lengthens the uncached part of the prompt "
        "(bench/concurrency.py: warm TTFT 0.22x cold with 0, 0.37x with 3). Must match the recipe the model "
        "was trained with.",
    )
    draft: bool = Field(
        True, description="Show the model a draft after the question: the nearest example pair's SQL with the "
        "question's literal values filled in (the template baseline's answer). Must match the recipe the "
        "model was trained with.",
    )
    template_first: bool = Field(
        True, description="Answer with a template itself (an example pair's or a schema template's SQL with the "
        "question's values filled in), when every value of the template was re-filled from the question and "
        "every value the question names is used (server/sql/baseline.py `complete`), and the query passes "
        "validation and execution. Among the nearest sql.template_shapes SQL shapes, those whose structure "
        "agrees best with the question's words answer (server/sql/cues.py: 'how many' wants a count, 'least' "
        "an ascending order), the nearest first; the next one answers when it fails validation. The model "
        "writes the SQL for every other question. "
        "Measured figures: training/README.md.",
    )
    template_shapes: int = Field(
        48, ge=1, le=64, description="With sql.template_first, how many of the nearest pairs' SQL shapes are "
        "searched for a template that fits, taking turns between the questions as asked and with their values "
        "masked (server/sql/mentions.py ValueIndex.masked). 48 rather than 24 since the cues and the names a "
        "query uses (server/sql/cues.py) choose among more candidates without losing answers; 64 gains nothing "
        "more and costs latency (training/README.md).",
    )
    schema_templates: bool = Field(
        True, description="Add question/SQL templates synthesized from the live schema (counts, lists, group-bys, "
        "a filter on a named value, top N, averages, one join; server/sql/synth.py) to the database's example "
        "pairs, for drafts and for sql.template_first: plain questions get a template even where the pairs "
        "have none, or there are no pairs.",
    )
    grounded_literals: bool = Field(
        True, description="Generated SQL may compare columns only with values the question names (a value it "
        "mentions, a database value it names, a number, a year it gives; server/sql/grounding.py): a query "
        "with another value, copied from a draft or an example, fails validation and the model is told why.",
    )
    max_prompt_tables: int = Field(12, ge=1, description="Prune the schema to this many tables.")
    default_database: str | None = Field(None, description="Database used when a request names none.")

    @model_validator(mode="after")
    def _no_inert_options(self) -> "SqlSettings":
        """Options that would do nothing in this combination are errors, not silent no-ops."""
        if not self.template_first and "template_shapes" in self.model_fields_set:
            raise ValueError("sql.template_shapes acts only with sql.template_first: true")
        return self
