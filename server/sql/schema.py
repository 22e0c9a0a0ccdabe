"""The introspected shape of a customer database, shared by the validator, prompt and grammar.

Plain frozen dataclasses: the introspector builds them from a live connection, tests build them
by hand, and `to_sqlglot_mapping()` hands sqlglot's optimizer the {table: {column: type}} map it
needs to qualify and check column references.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # the database's own type name, e.g. "INTEGER", "NUMERIC(10,2)", "varchar(80)"
    nullable: bool = True
    primary_key: bool = False


@dataclass(frozen=True)
class ForeignKey:
    columns: tuple[str, ...]
    ref_table: str
    ref_columns: tuple[str, ...]


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    foreign_keys: tuple[ForeignKey, ...] = ()
    # A few distinct values per text column, to ground literals in the prompt.
    sample_values: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def column(self, name: str) -> Column | None:
        lowered = name.lower()
        return next((c for c in self.columns if c.name.lower() == lowered), None)

    @property
    def primary_key(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.primary_key)


@dataclass(frozen=True)
class DatabaseSchema:
    name: str
    dialect: str  # sqlglot dialect name: "sqlite", "postgres", "mysql"
    tables: tuple[Table, ...]

    def table(self, name: str) -> Table | None:
        lowered = name.lower()
        return next((t for t in self.tables if t.name.lower() == lowered), None)

    def to_sqlglot_mapping(self) -> dict[str, dict[str, str]]:
        """{table: {column: type}} for sqlglot.optimizer / MappingSchema."""
        return {t.name: {c.name: c.type or "TEXT" for c in t.columns} for t in self.tables}

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "DatabaseSchema":
        tables = tuple(
            Table(
                name=t["name"],
                columns=tuple(Column(**c) for c in t["columns"]),
                foreign_keys=tuple(
                    ForeignKey(tuple(fk["columns"]), fk["ref_table"], tuple(fk["ref_columns"]))
                    for fk in t.get("foreign_keys", ())
                ),
                sample_values={k: tuple(v) for k, v in t.get("sample_values", {}).items()},
            )
            for t in data["tables"]
        )
        return cls(name=data["name"], dialect=data["dialect"], tables=tables)
