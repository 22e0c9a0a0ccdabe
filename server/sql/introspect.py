"""Read a live database's shape into a `DatabaseSchema`, read-only like every other query.

Tables of the default schema only (PostgreSQL: `public`), in name order; columns in table order
with the database's own type names; primary and foreign keys; and, per text-like column, up to
`config.sample_values` distinct non-null values, smallest first, so the prompt can ground
literals ("country = 'GB'", not "'UK'").
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from sqlalchemy import types as satypes

from server.errors import QueryTimeout
from server.sql.readonly import ReadOnlyDatabase, ReadOnlySession
from server.sql.schema import Column, DatabaseSchema, ForeignKey, Table

log = logging.getLogger(__name__)

SAMPLE_TIMEOUT_S = 2.0  # per column: DISTINCT + ORDER BY on a big unindexed column is a full scan
SAMPLE_MAX_CHARS = 40  # longer values are cut to 39 characters + "…"


def introspect(database: ReadOnlyDatabase) -> DatabaseSchema:
    """Tables, columns, keys and sample values of `database`; raises the typed errors of readonly()."""
    config = database.config
    schema_name = "public" if config.dialect == "postgres" else None
    tables: list[Table] = []
    with database.readonly(config.statement_timeout_s) as session:
        inspector = sa.inspect(session.conn)
        for name in sorted(inspector.get_table_names(schema=schema_name)):
            raw_columns = inspector.get_columns(name, schema=schema_name)
            pk = set(inspector.get_pk_constraint(name, schema=schema_name).get("constrained_columns") or ())
            columns = tuple(
                Column(
                    name=c["name"],
                    type=_type_name(c["type"], session),
                    nullable=bool(c.get("nullable", True)),
                    primary_key=c["name"] in pk,
                )
                for c in raw_columns
            )
            foreign_keys = tuple(
                ForeignKey(
                    columns=tuple(fk["constrained_columns"]),
                    ref_table=fk["referred_table"],
                    ref_columns=tuple(fk["referred_columns"]),
                )
                for fk in inspector.get_foreign_keys(name, schema=schema_name)
            )
            samples: dict[str, tuple[str, ...]] = {}
            if config.sample_values > 0:
                for c in raw_columns:
                    if _is_text(c["type"]):
                        values = _sample(session, schema_name, name, c["name"], config.sample_values)
                        if values:
                            samples[c["name"]] = values
            tables.append(Table(name=name, columns=columns, foreign_keys=foreign_keys, sample_values=samples))
    return DatabaseSchema(name=config.name, dialect=database.dialect, tables=tuple(tables))


def _type_name(type_: satypes.TypeEngine, session: ReadOnlySession) -> str:
    """The type as the database spells it in DDL; "" for SQLite columns declared without one."""
    if isinstance(type_, satypes.NullType):
        return ""
    try:
        return type_.compile(dialect=session.conn.dialect)
    except Exception:  # a reflected type SQLAlchemy cannot render back (exotic extensions)
        return type(type_).__name__.upper()


def _is_text(type_: satypes.TypeEngine) -> bool:
    # String covers VARCHAR, CHAR, TEXT, NVARCHAR, CLOB and Enum; JSON and UUID are not samples.
    return isinstance(type_, satypes.String)


def text_values(database: ReadOnlyDatabase, per_column: int) -> list[tuple[str, str, str]]:
    """(table, column, value) for up to `per_column` distinct values of every text-like column, whole
    (not cut as samples are), read-only and each column under SAMPLE_TIMEOUT_S: what a question can
    name, for the template search's value lookup (server/sql/mentions.py ValueIndex) on a server
    database, as SQLite's are read directly."""
    config = database.config
    schema_name = "public" if config.dialect == "postgres" else None
    out: list[tuple[str, str, str]] = []
    with database.readonly(config.statement_timeout_s) as session:
        inspector = sa.inspect(session.conn)
        for name in sorted(inspector.get_table_names(schema=schema_name)):
            for c in inspector.get_columns(name, schema=schema_name):
                if _is_text(c["type"]):
                    out += [(name, c["name"], v)
                            for v in _sample(session, schema_name, name, c["name"], per_column, max_chars=None)]
    return out


def _sample(session: ReadOnlySession, schema: str | None, table: str, column: str, limit: int,
            max_chars: int | None = SAMPLE_MAX_CHARS) -> tuple[str, ...]:
    """Up to `limit` distinct values, ORDER BY the value, each cut to `max_chars` (None: whole);
    () if the query fails or is too slow."""
    tbl = sa.table(table, sa.column(column), schema=schema)
    col = tbl.c[column]
    query = sa.select(col).where(col.is_not(None)).distinct().order_by(col).limit(limit)
    session.set_timeout(SAMPLE_TIMEOUT_S)
    try:
        if session.flavour == "postgres":
            # A failed statement aborts a PostgreSQL transaction; the savepoint keeps it usable.
            with session.conn.begin_nested():
                rows = session.conn.execute(query).all()
        else:
            rows = session.conn.execute(query).all()
    except Exception as exc:  # samples are optional: skip the column, keep the schema
        if not session.database.is_db_error(exc):
            raise
        error = session.database.translate(exc, timed_out=session.timed_out)
        log.warning("skipping sample values of %s.%s: %s", table, column, error.message)
        if isinstance(error, QueryTimeout):
            session.timed_out = False
        return ()
    finally:
        session.set_timeout(session.database.config.statement_timeout_s)
    values: list[str] = []
    for (value,) in rows:
        text = str(value)
        if max_chars is not None and len(text) > max_chars:
            text = text[: max_chars - 1] + "…"
        if text not in values:  # two long values can share a prefix
            values.append(text)
    return tuple(values)
