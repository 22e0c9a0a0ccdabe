"""Read-only access to one configured database: a lazy SQLAlchemy engine and read-only sessions.

Everything that touches a customer database goes through `ReadOnlyDatabase.readonly()`: a pooled
connection inside a read-only transaction, with a time limit, that is always rolled back. The
executor and the introspector both use it, so neither can write even if a validator let a write
through. What each engine does:

  sqlite    the file is opened with mode=ro (never created), PRAGMA query_only=ON, and a
            progress handler aborts the statement once the deadline has passed.
  postgres  every transaction is READ ONLY twice over (default_transaction_read_only=on in the
            startup packet, SET TRANSACTION READ ONLY per session); SET LOCAL statement_timeout.
  mysql     SET SESSION TRANSACTION READ ONLY then START TRANSACTION READ ONLY; the limit is
            MariaDB's max_statement_time (seconds) or MySQL's max_execution_time (ms, SELECT
            only), with a client socket read timeout as backstop. Multi-statements stay off.

Driver errors become the typed errors of server.errors in `ReadOnlyDatabase.translate()`; messages name
the database and never contain its password.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Engine

from server.errors import DatabaseUnavailable, HearthError, InvalidRequest, QueryTimeout
from server.sql.settings import DatabaseConfig, parse_url

CONNECT_TIMEOUT_S = 5  # TCP connect + handshake + auth (libpq rounds below 2 s up to 2)
POOL_SIZE = 2  # the appliance has 2 cores; SQL requests are few and short
MAX_OVERFLOW = 3
POOL_TIMEOUT_S = 5  # wait for a free pooled connection before reporting the database busy
POOL_RECYCLE_S = 1800  # below MySQL's wait_timeout and common firewall idle limits
SQLITE_CHECK_EVERY = 1000  # SQLite VM instructions between deadline checks (microseconds apart)
MYSQL_READ_GRACE_S = 2.0  # socket read timeout beyond the server-side limit, in case it misses

# Hearth runs exactly these drivers; the executor uses driver-level cursors of each.
_DRIVERS = {"sqlite": "sqlite+pysqlite", "postgresql": "postgresql+psycopg", "mysql": "mysql+pymysql", "mariadb": "mariadb+pymysql"}
# PostgreSQL SQLSTATE classes meaning "cannot talk to the database", not "bad query":
# 08 connection, 28 auth, 3D unknown database, 53 resources (too many connections), 57 operator
# intervention (shutdown; 57014 query_canceled is handled first), 58 system error.
_PG_UNAVAILABLE_CLASSES = {"08", "28", "3D", "53", "57", "58"}
_MYSQL_TIMEOUT_CODES = {1969, 3024, 1317}  # MariaDB max_statement_time, MySQL max_execution_time, KILL QUERY
# Too many connections, access denied (db / user), unknown database, shutdown, host blocked or
# not allowed, per-user connection limit, connection killed. Codes >= 2000 are client/network errors.
_MYSQL_UNAVAILABLE_CODES = {1040, 1044, 1045, 1049, 1053, 1129, 1130, 1203, 1927}


class ReadOnlySession:
    """A pooled connection inside a read-only transaction; made only by `ReadOnlyDatabase.readonly()`.

    `conn` is the SQLAlchemy connection (for the inspector and Core queries), `driver` the DBAPI
    connection under it (sqlite3, psycopg or PyMySQL), `flavour` one of sqlite, postgres,
    mariadb, mysql.
    """

    def __init__(self, database: ReadOnlyDatabase, conn: Connection):
        self.database = database
        self.conn = conn
        self.driver = conn.connection.driver_connection
        dialect = database.config.dialect
        if dialect == "mysql":
            dialect = "mariadb" if conn.dialect.is_mariadb else "mysql"
        self.flavour: str = dialect
        self.timed_out = False  # set when SQLite's progress handler aborts a statement
        self._deadline = 0.0  # time.monotonic() seconds; SQLite only
        self._discard = False
        self._reset = False
        self._saved_read_timeout = getattr(self.driver, "_read_timeout", None)  # PyMySQL only

    def _begin(self, timeout_s: float) -> None:
        if self.flavour == "sqlite":
            self.driver.execute("PRAGMA query_only = ON")
            self.driver.set_progress_handler(self._sqlite_tick, SQLITE_CHECK_EVERY)
            self.set_timeout(timeout_s)
        elif self.flavour == "postgres":
            # psycopg opens the transaction itself (autocommit is off); this is its first statement.
            self.conn.exec_driver_sql("SET TRANSACTION READ ONLY")
            self.set_timeout(timeout_s)
        else:
            # SESSION: also covers the next transaction should the query end this one.
            self.conn.exec_driver_sql("SET SESSION TRANSACTION READ ONLY")
            self.set_timeout(timeout_s)
            self.conn.exec_driver_sql("START TRANSACTION READ ONLY")

    def set_timeout(self, timeout_s: float) -> None:
        """Limit each following statement to `timeout_s` seconds.

        SQLite has no server-side limit: there the clock starts now and runs for whatever is
        executed or fetched until the next call.
        """
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        if self.flavour == "sqlite":
            self._deadline = time.monotonic() + timeout_s
        elif self.flavour == "postgres":
            ms = max(1, round(timeout_s * 1000))  # 0 would mean "no limit"
            self.conn.exec_driver_sql(f"SET LOCAL statement_timeout = {ms}")
        else:
            if self.flavour == "mariadb":
                self.conn.exec_driver_sql(f"SET SESSION max_statement_time = {max(timeout_s, 0.001):.3f}")
            else:
                ms = max(1, round(timeout_s * 1000))
                self.conn.exec_driver_sql(f"SET SESSION max_execution_time = {ms}")
            # Backstop if the server never answers: PyMySQL re-applies _read_timeout (seconds)
            # to the socket before each packet read. Private, hence the guard.
            if hasattr(self.driver, "_read_timeout"):
                self.driver._read_timeout = timeout_s + MYSQL_READ_GRACE_S

    def discard(self) -> None:
        """Close the connection at the end instead of pooling it (e.g. unread rows remain)."""
        self._discard = True

    def reset_on_return(self) -> None:
        """Untrusted SQL ran: clear session state before anyone reuses the connection.

        Read-only still leaves session state a later request would inherit: advisory locks
        (pg_advisory_lock, GET_LOCK), MySQL SET SESSION variables, SQLite pragmas. PostgreSQL
        gets DISCARD ALL; SQLite and MySQL connections are cheap to reopen, so they are closed.
        """
        self._reset = True

    def _sqlite_tick(self) -> int:
        # Called by SQLite every SQLITE_CHECK_EVERY instructions; non-zero aborts ("interrupted").
        if time.monotonic() > self._deadline:
            self.timed_out = True
            return 1
        return 0

    def _end(self) -> None:
        try:
            if self.flavour == "sqlite":
                self.driver.set_progress_handler(None, 0)
            elif hasattr(self.driver, "_read_timeout"):
                self.driver._read_timeout = self._saved_read_timeout
            if self._discard or (self._reset and self.flavour != "postgres"):
                self.conn.invalidate()
                return
            self.conn.rollback()
            if self._reset:
                # DISCARD ALL refuses to run in a transaction block; startup options survive it.
                self.driver.autocommit = True
                try:
                    self.driver.execute("DISCARD ALL")
                finally:
                    self.driver.autocommit = False
        except Exception:
            # A connection we cannot roll back must never go back into the pool.
            self.conn.invalidate()


class ReadOnlyDatabase:
    """One configured database: a lazily created engine and read-only sessions."""

    def __init__(self, config: DatabaseConfig):
        self.config = config
        self._engine: Engine | None = None
        self._engine_lock = threading.Lock()
        url = parse_url(config.url)
        self._password = url.password or ""
        self.sqlite_path = Path(url.database).expanduser().resolve() if config.dialect == "sqlite" else None

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def dialect(self) -> str:
        """sqlglot dialect name: sqlite, postgres or mysql."""
        return self.config.dialect  # type: ignore[return-value]  # always derived by the validator

    @property
    def engine(self) -> Engine:
        with self._engine_lock:
            if self._engine is None:
                self._engine = self._create_engine()
            return self._engine

    def _create_engine(self) -> Engine:
        url = parse_url(self.config.url)
        backend = url.get_backend_name()
        url = url.set(drivername=_DRIVERS[backend])
        kwargs: dict = dict(pool_pre_ping=True, pool_size=POOL_SIZE, max_overflow=MAX_OVERFLOW)
        kwargs.update(pool_timeout=POOL_TIMEOUT_S, pool_recycle=POOL_RECYCLE_S)
        if backend == "sqlite":
            uri = self.sqlite_path.as_uri() + "?mode=ro"  # as_uri() percent-escapes the path
            busy_s = min(self.config.statement_timeout_s, CONNECT_TIMEOUT_S)  # wait on a writer's lock

            def connect() -> sqlite3.Connection:
                # check_same_thread=False: pooled connections move between request threads.
                conn = sqlite3.connect(uri, uri=True, timeout=busy_s, check_same_thread=False)
                conn.set_authorizer(_sqlite_authorizer)
                return conn

            kwargs["creator"] = connect
        elif backend == "postgresql":
            options = " ".join(filter(None, [url.query.get("options"), "-c default_transaction_read_only=on"]))
            kwargs["connect_args"] = dict(connect_timeout=CONNECT_TIMEOUT_S, options=options, application_name="hearth-sql")
            # TCP keepalives (seconds): notice a dead server within ~1 min instead of the kernel's 2 h.
            kwargs["connect_args"].update(keepalives=1, keepalives_idle=30, keepalives_interval=10, keepalives_count=3)
        else:
            # client_flag could switch on MULTI_STATEMENTS; one statement per call, always.
            url = url.set(query={k: v for k, v in url.query.items() if k != "client_flag"})
            kwargs["connect_args"] = dict(
                connect_timeout=CONNECT_TIMEOUT_S,
                read_timeout=CONNECT_TIMEOUT_S,  # the handshake; set_timeout() sets it per session
                write_timeout=CONNECT_TIMEOUT_S * 2,
                init_command="SET SESSION TRANSACTION READ ONLY",
            )
        try:
            return create_engine(url, **kwargs)
        except (ImportError, sa_exc.ArgumentError) as exc:
            raise HearthError(f"database '{self.name}': cannot create an engine ({type(exc).__name__})") from None

    @contextmanager
    def readonly(self, timeout_s: float) -> Iterator[ReadOnlySession]:
        """A connection in a read-only transaction, statements limited to `timeout_s` seconds.

        Rolled back (or closed) on exit. Driver errors raised inside are translated.
        """
        if self.sqlite_path is not None and not self.sqlite_path.is_file():
            raise DatabaseUnavailable(f"database '{self.name}' is unavailable: no file {self.sqlite_path}")
        try:
            conn = self.engine.connect()
        except Exception as exc:
            if self.is_db_error(exc):
                raise self.translate(exc, connecting=True) from exc
            raise
        session = ReadOnlySession(self, conn)
        try:
            session._begin(timeout_s)
            yield session
        except Exception as exc:
            if self.is_db_error(exc):
                raise self.translate(exc, timed_out=session.timed_out) from exc
            raise
        finally:
            session._end()
            conn.close()

    def is_db_error(self, exc: BaseException) -> bool:
        """Whether `exc` came from the driver or the pool (and so needs `translate()`)."""
        return isinstance(exc, (sa_exc.DBAPIError, sa_exc.TimeoutError, self.engine.dialect.loaded_dbapi.Error))

    def translate(self, exc: BaseException, *, connecting: bool = False, timed_out: bool = False) -> HearthError:
        """The typed error for a driver (or SQLAlchemy) exception from this database."""
        if isinstance(exc, sa_exc.TimeoutError):  # pool checkout, not a query
            return DatabaseUnavailable(f"database '{self.name}' is busy: no free connection in {POOL_TIMEOUT_S} s")
        orig = getattr(exc, "orig", None) or exc
        args = getattr(orig, "args", ())
        if len(args) == 2 and isinstance(args[0], int):  # PyMySQL: (code, message)
            detail = f"{args[1]} (error {args[0]})"
        else:
            detail = (str(orig).strip().splitlines() or [type(orig).__name__])[0]
        if self._password:
            detail = detail.replace(self._password, "***")
        # Whatever goes wrong while connecting (a handshake read timing out included) is unavailability.
        kind = DatabaseUnavailable if connecting else _classify(orig, timed_out)
        message = {
            DatabaseUnavailable: f"database '{self.name}' ({self.config.redacted_url()}) is unavailable: {detail}",
            QueryTimeout: f"query on database '{self.name}' ran past its time limit and was cancelled",
            InvalidRequest: f"database '{self.name}' rejected the query: {detail}",
        }.get(kind, f"database '{self.name}' failed: {detail}")
        return kind(message)

    def dispose(self) -> None:
        """Close pooled connections; the engine is recreated on next use."""
        with self._engine_lock:
            if self._engine is not None:
                self._engine.dispose()
                self._engine = None


def _sqlite_authorizer(action: int, arg1: str | None, arg2: str | None, _db: str | None, _src: str | None) -> int:
    # ATTACH opens its file read-write-create whatever mode=ro says of the main file, and
    # query_only does not stop it (SQLite counts ATTACH as read-only). Nor may a statement
    # switch query_only off again.
    if action in (sqlite3.SQLITE_ATTACH, sqlite3.SQLITE_DETACH):
        return sqlite3.SQLITE_DENY
    if action == sqlite3.SQLITE_PRAGMA and (arg1 or "").lower() == "query_only" and arg2 is not None:
        return sqlite3.SQLITE_OK if arg2.lower() in ("on", "1", "true", "yes") else sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK


def _classify(orig: BaseException, sqlite_timed_out: bool) -> type[HearthError]:
    """Which HearthError a driver exception is. Codes, not message text, except for sqlite3."""
    module = type(orig).__module__.split(".")[0]
    names = {cls.__name__ for cls in type(orig).__mro__}
    lost = bool(names & {"OperationalError", "InterfaceError"})
    if isinstance(orig, sqlite3.Error):  # sqlite3 exposes no error codes before Python 3.11
        text = str(orig).lower()
        if sqlite_timed_out and "interrupted" in text:
            return QueryTimeout
        if any(s in text for s in ("database file", "locked", "busy", "not a database", "disk i/o", "malformed")):
            return DatabaseUnavailable
        return InvalidRequest
    if module == "psycopg":
        state = getattr(orig, "sqlstate", None) or ""
        if state == "57014":  # query_canceled: statement_timeout
            return QueryTimeout
        if state[:2] in _PG_UNAVAILABLE_CLASSES or (not state and lost):
            return DatabaseUnavailable
        return InvalidRequest
    if module == "pymysql":
        code = orig.args[0] if orig.args and isinstance(orig.args[0], int) else 0
        if code in _MYSQL_TIMEOUT_CODES or (code == 2013 and "timed out" in str(orig)):
            return QueryTimeout
        if code >= 2000 or code in _MYSQL_UNAVAILABLE_CODES or (code == 0 and lost):
            return DatabaseUnavailable
        return InvalidRequest
    return HearthError
