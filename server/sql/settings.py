"""Configuration of one named customer database that `POST /v1/sql` may query.

A `DatabaseConfig` is plain data: `server.sql.connections` turns it into a lazily connected
`Database`. The URL carries credentials, so it is kept out of `repr()` and every place that shows
it to a person goes through `redacted_url()`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
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
