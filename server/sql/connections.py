"""Named customer databases: `Database` is read-only access (server/sql/readonly.py) plus the
database's introspected schema (server/sql/introspect.py), cached; `DatabaseRegistry` holds them
by name.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator

from server.errors import DatabaseNotFound
from server.sql.introspect import introspect
from server.sql.readonly import ReadOnlyDatabase
from server.sql.schema import DatabaseSchema
from server.sql.settings import DatabaseConfig


class Database(ReadOnlyDatabase):
    """One configured database: a lazily created engine, read-only sessions, a cached schema."""

    def __init__(self, config: DatabaseConfig):
        super().__init__(config)
        self._schema: DatabaseSchema | None = None
        self._schema_lock = threading.Lock()  # one introspection at a time per database

    def schema(self) -> DatabaseSchema:
        """The introspected schema, cached after the first call."""
        with self._schema_lock:
            if self._schema is None:
                self._schema = introspect(self)
            return self._schema

    def refresh(self) -> DatabaseSchema:
        """Introspect again (after a migration) and replace the cached schema."""
        with self._schema_lock:
            self._schema = introspect(self)
            return self._schema


class DatabaseRegistry:
    """The configured databases by name. Building it connects to nothing."""

    def __init__(self, configs: Iterable[DatabaseConfig] = ()):
        self._databases: dict[str, Database] = {}
        for config in configs:
            self.add(config)

    def add(self, config: DatabaseConfig) -> Database:
        if config.name in self._databases:
            raise ValueError(f"database {config.name!r} is configured twice")
        self._databases[config.name] = Database(config)
        return self._databases[config.name]

    def get(self, name: str) -> Database:
        try:
            return self._databases[name]
        except KeyError:
            known = ", ".join(sorted(self._databases)) or "none"
            raise DatabaseNotFound(f"no database named {name!r} (configured: {known})", param="database") from None

    def names(self) -> list[str]:
        return sorted(self._databases)

    def __contains__(self, name: object) -> bool:
        return name in self._databases

    def __iter__(self) -> Iterator[Database]:
        return iter(self._databases.values())

    def __len__(self) -> int:
        return len(self._databases)

    def close(self) -> None:
        for database in self._databases.values():
            database.dispose()
