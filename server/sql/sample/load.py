"""Load the sample database onto PostgreSQL and MariaDB/MySQL, plus a read-only login for Hearth.

URLs are SQLAlchemy-style (what the server's settings hold), but loading talks to the drivers
directly: psycopg 3's executemany pipelines the INSERTs and pymysql's rewrites them into
multi-row INSERTs, which loads the ~26k rows in a few seconds without COPY / LOAD DATA.

Both databases are created with binary collations (PostgreSQL `C`, MySQL `utf8mb4_bin`) so
string equality is case-sensitive and ORDER BY on text sorts by code point exactly as SQLite
does: the same gold SQL then returns the same rows, in the same order, on all three engines.
"""

from __future__ import annotations

import logging
import re
import time

from sqlalchemy.engine import make_url

from server.sql.sample.ddl import TABLES, create_statements
from server.sql.sample.generate import DEFAULT_SEED, SampleData, generate

log = logging.getLogger(__name__)

DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/hearth_sample"
DEFAULT_MYSQL_URL = "mysql+pymysql://root@127.0.0.1:3306/hearth_sample"
READONLY_USER = "hearth_ro"

_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def _checked(name: str) -> str:
    # Database and role names are spliced into DDL (they cannot be bound parameters).
    if not _IDENT.match(name):
        raise ValueError(f"refusing unusual identifier {name!r}: use lowercase letters, digits and _")
    return name


def _result(db: str, data: SampleData, started: float, readonly: str | None) -> dict:
    return {"database": db, "rows": {t.name: len(data[t.name]) for t in TABLES},
            "readonly_user": readonly, "seconds": round(time.monotonic() - started, 2)}


def load_postgres(url: str = DEFAULT_POSTGRES_URL, *, seed: int = DEFAULT_SEED,
                  data: SampleData | None = None, admin_db: str = "test",
                  readonly_user: str | None = READONLY_USER, readonly_password: str | None = None) -> dict:
    """DROP/CREATE the URL's database (via `admin_db`), load every table, grant SELECT to a role.

    Returns {"database", "rows": {table: count}, "readonly_user" (None if it could not be
    created), "seconds"}.
    """
    import psycopg
    from psycopg import sql

    started = time.monotonic()
    u = make_url(url)
    db = _checked(u.database or "hearth_sample")
    params = {"host": u.host or "127.0.0.1", "port": u.port or 5432, "user": u.username or "postgres"}
    if u.password:
        params["password"] = u.password
    data = data if data is not None else generate(seed)

    with psycopg.connect(dbname=admin_db, autocommit=True, **params) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db)))
        admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0 ENCODING 'UTF8' "
                              "LC_COLLATE 'C' LC_CTYPE 'C'").format(sql.Identifier(db)))
    with psycopg.connect(dbname=db, **params) as conn:
        with conn.cursor() as cur:
            for statement in create_statements("postgres"):
                cur.execute(statement)
            for table in TABLES:
                marks = ", ".join(["%s"] * len(table.columns))
                cur.executemany(f"INSERT INTO {table.name} VALUES ({marks})", data[table.name])
        conn.commit()
        readonly = _postgres_readonly(conn, db, readonly_user, readonly_password) if readonly_user else None
    return _result(db, data, started, readonly)


def _postgres_readonly(conn, db: str, user: str, password: str | None) -> str | None:
    import psycopg
    from psycopg import sql

    role = sql.Identifier(_checked(user))
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (user,))
            if cur.fetchone() is None:
                cur.execute(sql.SQL("CREATE ROLE {} LOGIN").format(role))
            if password is not None:
                cur.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(role, sql.Literal(password)))
            # Read-only by default even if a later grant is too broad.
            cur.execute(sql.SQL("ALTER ROLE {} SET default_transaction_read_only = on").format(role))
            cur.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(db), role))
            cur.execute(sql.SQL("REVOKE CREATE ON SCHEMA public FROM PUBLIC"))
            cur.execute(sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(role))
            cur.execute(sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA public TO {}").format(role))
        conn.commit()
        return user
    except psycopg.errors.InsufficientPrivilege as exc:
        conn.rollback()
        log.warning("could not create read-only role %s on PostgreSQL: %s", user, exc)
        return None


def load_mysql(url: str = DEFAULT_MYSQL_URL, *, seed: int = DEFAULT_SEED, data: SampleData | None = None,
               readonly_user: str | None = READONLY_USER, readonly_password: str | None = None) -> dict:
    """DROP/CREATE the URL's database on MariaDB/MySQL, load every table, grant SELECT to a user.

    Same return value as `load_postgres`.
    """
    import pymysql

    started = time.monotonic()
    u = make_url(url)
    db = _checked(u.database or "hearth_sample")
    data = data if data is not None else generate(seed)
    conn = pymysql.connect(host=u.host or "127.0.0.1", port=u.port or 3306, user=u.username or "root",
                           password=u.password or "", charset="utf8mb4", autocommit=False)
    try:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{db}`")
            cur.execute(f"CREATE DATABASE `{db}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
            cur.execute(f"USE `{db}`")
            for statement in create_statements("mysql"):
                cur.execute(statement)
            for table in TABLES:
                marks = ", ".join(["%s"] * len(table.columns))
                cur.executemany(f"INSERT INTO {table.name} VALUES ({marks})", data[table.name])
        conn.commit()
        readonly = _mysql_readonly(conn, db, readonly_user, readonly_password) if readonly_user else None
    finally:
        conn.close()
    return _result(db, data, started, readonly)


def _mysql_readonly(conn, db: str, user: str, password: str | None) -> str | None:
    import pymysql

    _checked(user)
    # TCP connections to 127.0.0.1 may match either host entry, so create both.
    try:
        with conn.cursor() as cur:
            for host in ("%", "localhost"):
                if password is None:
                    cur.execute(f"CREATE USER IF NOT EXISTS '{user}'@'{host}'")
                else:
                    cur.execute(f"CREATE USER IF NOT EXISTS '{user}'@'{host}' IDENTIFIED BY %s", (password,))
                    cur.execute(f"ALTER USER '{user}'@'{host}' IDENTIFIED BY %s", (password,))
                cur.execute(f"GRANT SELECT ON `{db}`.* TO '{user}'@'{host}'")
        conn.commit()
        return user
    except pymysql.err.OperationalError as exc:  # 1227 / 1044: access denied for the admin user
        log.warning("could not create read-only user %s on MySQL: %s", user, exc)
        return None
