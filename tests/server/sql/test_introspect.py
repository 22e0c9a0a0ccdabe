"""Live introspection of the fixture shop schema on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

from server.sql.introspect import SAMPLE_MAX_CHARS, introspect
from server.sql.schema import DatabaseSchema, ForeignKey
from tests.server.sql.test_connections import (  # noqa: F401  (pytest fixtures)
    FixtureDb,
    fixture_db,
    mariadb_fixture,
    postgres_fixture,
    sqlite_fixture,
)


def test_tables_columns_and_keys(fixture_db: FixtureDb) -> None:
    schema = introspect(fixture_db.database)
    expected_dialect = "mysql" if fixture_db.kind == "mariadb" else fixture_db.kind
    assert (schema.name, schema.dialect) == (fixture_db.database.name, expected_dialect)
    # PostgreSQL: only `public`, so audit.hidden is absent.
    assert [t.name for t in schema.tables] == ["customers", "orders"]

    customers, orders = schema.tables
    assert [c.name for c in customers.columns] == ["id", "name", "country"]
    assert [c.name for c in orders.columns] == ["id", "customer_id", "total", "placed_on", "note"]
    assert customers.primary_key == ("id",) and orders.primary_key == ("id",)
    assert orders.foreign_keys == (ForeignKey(("customer_id",), "customers", ("id",)),)
    assert customers.foreign_keys == ()
    assert not customers.column("name").nullable and customers.column("country").nullable
    assert not orders.column("total").nullable and orders.column("note").nullable
    # Types are the database's own names, rendered as DDL.
    assert "CHAR" in customers.column("name").type.upper()
    assert orders.column("total").type.upper().startswith(("NUMERIC", "DECIMAL"))
    assert orders.column("placed_on").type.upper() == "DATE"
    assert schema.to_sqlglot_mapping()["orders"]["customer_id"].upper().startswith("INT")
    assert DatabaseSchema.from_dict(schema.to_dict()) == schema


def test_sample_values_are_distinct_sorted_and_short(fixture_db: FixtureDb) -> None:
    schema = introspect(fixture_db.database)
    customers, orders = schema.table("customers"), schema.table("orders")
    assert customers.sample_values == {"name": ("Ada", "Grace", "Linus"), "country": ("FI", "GB", "US")}
    # Text columns only (no id/total/date), NULLs left out, long values cut to the limit.
    assert set(orders.sample_values) == {"note"}
    first, gift, long = orders.sample_values["note"]
    assert (first, gift) == ("first :name order 100%", "gift")
    assert len(long) == SAMPLE_MAX_CHARS and long.startswith("xxx") and long.endswith("…")


def test_sample_count_follows_config(fixture_db: FixtureDb) -> None:
    database = fixture_db.database
    original = database.config
    try:
        database.config = original.model_copy(update={"sample_values": 2})
        assert introspect(database).table("customers").sample_values["name"] == ("Ada", "Grace")
        database.config = original.model_copy(update={"sample_values": 0})
        assert introspect(database).table("customers").sample_values == {}
    finally:
        database.config = original


def test_schema_is_cached_until_refresh(fixture_db: FixtureDb) -> None:
    database = fixture_db.database
    first = database.schema()
    assert database.schema() is first
    fixture_db.admin("CREATE TABLE late_arrival (id INTEGER PRIMARY KEY, label VARCHAR(10))")
    try:
        assert database.schema() is first and first.table("late_arrival") is None
        refreshed = database.refresh()
        assert refreshed.table("late_arrival") is not None and database.schema() is refreshed
    finally:
        fixture_db.admin("DROP TABLE late_arrival")
        database.refresh()


def test_text_values_are_every_whole_value_of_every_text_column(fixture_db: FixtureDb) -> None:
    from server.sql.introspect import text_values
    from server.sql.mentions import ValueIndex

    database = fixture_db.database
    original = database.config
    try:
        # Samples of 1 value a column: the value index must still see every value.
        database.config = original.model_copy(update={"sample_values": 1})
        values = text_values(database, 100)
        assert {(t, c, v) for t, c, v in values if t == "customers"} == {
            ("customers", "name", n) for n in ("Ada", "Grace", "Linus")} | {
            ("customers", "country", c) for c in ("FI", "GB", "US")}
        notes = [v for t, c, v in values if (t, c) == ("orders", "note")]
        assert len(notes) == 3 and max(map(len, notes)) > SAMPLE_MAX_CHARS  # whole, not cut
        assert text_values(database, 2).count(("customers", "name", "Linus")) == 0  # per-column cap
        index = ValueIndex.for_database(database)
        assert index.values["linus"] == [("Linus", "customers", "name")]
    finally:
        database.config = original
