"""Run one already-validated SQL statement on a customer database, read-only, bounded in time and rows.

The validator (server/sql/validate.py) decides what may run; this layer assumes it can be wrong.
The statement runs inside `Database.readonly()` (see server/sql/readonly.py for what each
engine does), is sent to the driver verbatim, never parsed and never bound (so `:name`, `?` and
`%` in literals stay literal), and at most `max_rows + 1` rows are read so that `truncated` can be
set without reading an unbounded result:

  postgres  a psycopg server-side cursor: DECLARE ... CURSOR FOR <sql> over the extended
            protocol, so only one statement and only a row-returning query (SELECT, VALUES,
            TABLE, WITH) can run; FETCH reads max_rows + 1 rows.
  mysql     an unbuffered PyMySQL cursor (SSCursor); if rows remain unread the connection is
            closed rather than drained. Multi-statements are off, so one statement only.
  sqlite    sqlite3 steps lazily and refuses more than one statement per execute().

Values are made JSON-serialisable (`to_jsonable`): Decimal becomes a float when the float prints
back as the same number (19.99, 1e3), otherwise a string so no digits are lost; NaN and infinities
become strings; date, time and datetime ISO 8601 strings; timedelta "[-]H:MM:SS[.ffffff]" (the
way MySQL prints TIME); bytes lowercase hex; UUIDs, IP addresses and other objects str().
"""

from __future__ import annotations

import datetime as dt
import math
import time
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any

from server.errors import QueryTimeout, QueryTooCostly
from server.sql.connections import Database
from server.sql.cost import estimate_cost
from server.sql.readonly import ReadOnlySession


@dataclass
class QueryResult:
    columns: list[str]
    rows: list[list]  # JSON-serialisable values, see to_jsonable()
    row_count: int  # len(rows)
    truncated: bool  # the query had more than max_rows rows; the rest were not read
    elapsed_ms: float  # executing and fetching, without connecting

    def to_dict(self) -> dict:
        return asdict(self)


def execute_readonly(database: Database, sql: str, *, max_rows: int, timeout_s: float,
                     max_cost: float | None = None) -> QueryResult:
    """Run `sql` read-only; raises QueryTimeout, DatabaseUnavailable, InvalidRequest or HearthError.

    With `max_cost`, the engine's plan is asked first (server/sql/cost.py) and a query estimated
    above it raises QueryTooCostly without running."""
    if max_rows < 0:
        raise ValueError("max_rows must be >= 0")
    limit = max_rows + 1  # one extra row tells whether there were more
    with database.readonly(timeout_s) as session:
        session.reset_on_return()
        if max_cost is not None:
            cost = estimate_cost(session, sql)
            if cost > max_cost:
                raise QueryTooCostly(f"the database estimates this query's cost at {cost:.3g}, above the limit of "
                                     f"{max_cost:.3g} (max_query_cost of database '{database.name}'): a join "
                                     "condition is probably missing or always true", cost=cost)
        started = time.perf_counter()
        if session.flavour == "postgres":
            columns, raw = _run_postgres(session, sql, limit)
        elif session.flavour == "sqlite":
            columns, raw = _run_sqlite(session, sql, limit)
        else:
            columns, raw = _run_mysql(session, sql, limit)
        elapsed_s = time.perf_counter() - started
        if session.flavour in ("mysql", "mariadb") and elapsed_s >= timeout_s:
            # SLEEP() and a few other functions return normally when the statement timer fires
            # (documented for MySQL's max_execution_time): past the limit is a timeout either way.
            raise QueryTimeout(f"query on database '{database.name}' ran past its time limit and was cancelled")
    rows = [[to_jsonable(value) for value in row] for row in raw[:max_rows]]
    return QueryResult(
        columns=columns,
        rows=rows,
        row_count=len(rows),
        truncated=len(raw) > max_rows,
        elapsed_ms=round(elapsed_s * 1000, 3),
    )


def _columns(description: Any) -> list[str]:
    return [str(d[0]) for d in description or ()]


def _run_postgres(session: ReadOnlySession, sql: str, limit: int) -> tuple[list[str], list]:
    # A named (server-side) cursor; params=None so psycopg does no %-placeholder parsing.
    cursor = session.driver.cursor(name="hearth_query", scrollable=False)
    try:
        cursor.execute(sql)
        return _columns(cursor.description), cursor.fetchmany(limit)
    finally:
        cursor.close()  # CLOSE; psycopg skips it when the transaction has already failed


def _run_mysql(session: ReadOnlySession, sql: str, limit: int) -> tuple[list[str], list]:
    from pymysql.cursors import SSCursor

    cursor = session.driver.cursor(SSCursor)
    cursor.execute(sql)  # args=None: no %-interpolation
    if cursor.description is None:  # a statement without a result set (SET, DO, ...)
        cursor.close()
        return [], []
    columns = _columns(cursor.description)
    rows = list(cursor.fetchmany(limit))
    if len(rows) >= limit:
        # Rows may remain, and PyMySQL drains them when the cursor is closed or garbage
        # collected, which can take as long as the query. Mark the result finished (private
        # flag, hence the guard) and close the connection instead of pooling it.
        result = getattr(cursor, "_result", None)
        if result is not None and hasattr(result, "unbuffered_active"):
            result.unbuffered_active = False
        session.discard()
    else:
        cursor.close()
    return columns, rows


def _run_sqlite(session: ReadOnlySession, sql: str, limit: int) -> tuple[list[str], list]:
    cursor = session.driver.cursor()
    try:
        cursor.execute(sql)
        if cursor.description is None:
            return [], []
        return _columns(cursor.description), cursor.fetchmany(limit)
    finally:
        cursor.close()


def to_jsonable(value: Any) -> Any:
    """One database value as something json.dumps accepts and JSON parsers agree on."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Decimal):
        if not value.is_finite():
            return str(value)
        as_float = float(value)
        return as_float if Decimal(repr(as_float)) == value else str(value)
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return _format_timedelta(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, dict):  # json / jsonb
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):  # PostgreSQL arrays
        return [to_jsonable(v) for v in value]
    if isinstance(value, (set, frozenset)):  # MySQL SET columns
        return sorted(str(v) for v in value)
    return str(value)


def _format_timedelta(value: dt.timedelta) -> str:
    sign = "-" if value < dt.timedelta(0) else ""
    value = abs(value)
    total = value.days * 86400 + value.seconds
    hours, rest = divmod(total, 3600)
    minutes, seconds = divmod(rest, 60)
    text = f"{sign}{hours}:{minutes:02d}:{seconds:02d}"
    return f"{text}.{value.microseconds:06d}" if value.microseconds else text
