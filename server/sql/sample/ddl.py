"""Schema of the sample database, rendered as DDL for SQLite, PostgreSQL and MariaDB/MySQL.

One table spec drives all three dialects so the databases cannot drift apart. The types are the
portable subset (INTEGER, SMALLINT, VARCHAR(n), NUMERIC(p,s), DATE, TIMESTAMP); the only
per-dialect change is TIMESTAMP -> DATETIME on MySQL, because a MySQL TIMESTAMP column converts
through the session time zone and (on older servers) auto-updates, which would make the loaded
values differ from SQLite's. Flags use SMALLINT 0/1 instead of BOOLEAN for the same reason:
`discontinued = 1` means the same thing on every engine.
"""

from __future__ import annotations

from dataclasses import dataclass

from server.sql.schema import Column, DatabaseSchema, ForeignKey, Table

DIALECTS = ("sqlite", "postgres", "mysql")


@dataclass(frozen=True)
class Col:
    name: str
    type: str
    nullable: bool = False
    references: str | None = None  # "table.column"


@dataclass(frozen=True)
class TableSpec:
    name: str
    columns: tuple[Col, ...]
    indexes: tuple[str, ...] = ()  # single-column indexes on FK / date columns used by joins

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)


def _pk(name: str) -> Col:
    return Col(name, "INTEGER")


# Parents before children: the loaders insert in this order and drop in reverse.
TABLES: tuple[TableSpec, ...] = (
    TableSpec("regions", (_pk("region_id"), Col("region_name", "VARCHAR(40)"))),
    TableSpec("employees", (
        _pk("employee_id"), Col("first_name", "VARCHAR(40)"), Col("last_name", "VARCHAR(40)"),
        Col("email", "VARCHAR(120)"), Col("job_title", "VARCHAR(40)"), Col("hire_date", "DATE"),
        Col("region_id", "INTEGER", True, "regions.region_id"),
        Col("manager_id", "INTEGER", True, "employees.employee_id"),
    ), ("region_id", "manager_id")),
    TableSpec("customers", (
        _pk("customer_id"), Col("company_name", "VARCHAR(120)"), Col("segment", "VARCHAR(20)"),
        Col("industry", "VARCHAR(30)"), Col("contact_name", "VARCHAR(80)"),
        Col("contact_email", "VARCHAR(120)"), Col("city", "VARCHAR(40)"), Col("country", "VARCHAR(40)"),
        Col("region_id", "INTEGER", False, "regions.region_id"),
        Col("account_manager_id", "INTEGER", False, "employees.employee_id"),
        Col("credit_limit", "NUMERIC(10,2)"), Col("signup_date", "DATE"),
        Col("account_status", "VARCHAR(12)"),
    ), ("region_id", "account_manager_id")),
    TableSpec("suppliers", (
        _pk("supplier_id"), Col("supplier_name", "VARCHAR(80)"), Col("country", "VARCHAR(40)"),
        Col("city", "VARCHAR(40)"), Col("contact_email", "VARCHAR(120)"),
        Col("lead_time_days", "INTEGER"), Col("rating", "INTEGER"),
    )),
    TableSpec("categories", (
        _pk("category_id"), Col("category_name", "VARCHAR(40)"), Col("description", "VARCHAR(120)"),
    )),
    TableSpec("products", (
        _pk("product_id"), Col("sku", "VARCHAR(12)"), Col("product_name", "VARCHAR(120)"),
        Col("category_id", "INTEGER", False, "categories.category_id"),
        Col("supplier_id", "INTEGER", False, "suppliers.supplier_id"),
        Col("unit_price", "NUMERIC(10,2)"), Col("unit_cost", "NUMERIC(10,2)"),
        Col("units_in_stock", "INTEGER"), Col("reorder_level", "INTEGER"),
        Col("discontinued", "SMALLINT"),
    ), ("category_id", "supplier_id")),
    TableSpec("orders", (
        _pk("order_id"), Col("customer_id", "INTEGER", False, "customers.customer_id"),
        Col("employee_id", "INTEGER", False, "employees.employee_id"),
        Col("order_date", "DATE"), Col("required_date", "DATE"), Col("status", "VARCHAR(12)"),
        Col("channel", "VARCHAR(12)"),
    ), ("customer_id", "employee_id", "order_date")),
    TableSpec("order_items", (
        _pk("order_item_id"), Col("order_id", "INTEGER", False, "orders.order_id"),
        Col("product_id", "INTEGER", False, "products.product_id"), Col("quantity", "INTEGER"),
        Col("unit_price", "NUMERIC(10,2)"), Col("discount", "NUMERIC(4,2)"),
    ), ("order_id", "product_id")),
    TableSpec("payments", (
        _pk("payment_id"), Col("order_id", "INTEGER", False, "orders.order_id"),
        Col("paid_at", "TIMESTAMP"), Col("amount", "NUMERIC(10,2)"), Col("method", "VARCHAR(16)"),
    ), ("order_id",)),
    TableSpec("shipments", (
        _pk("shipment_id"), Col("order_id", "INTEGER", False, "orders.order_id"),
        Col("carrier", "VARCHAR(20)"), Col("tracking_number", "VARCHAR(24)"),
        Col("shipped_date", "DATE"), Col("delivered_date", "DATE", True),
        Col("shipping_cost", "NUMERIC(10,2)"),
    ), ("order_id",)),
)

TABLE_NAMES = tuple(t.name for t in TABLES)


def table_spec(name: str) -> TableSpec:
    return next(t for t in TABLES if t.name == name)


def _type(col: Col, dialect: str) -> str:
    if dialect == "mysql" and col.type == "TIMESTAMP":
        return "DATETIME"
    return col.type


def create_statements(dialect: str) -> list[str]:
    """CREATE TABLE / CREATE INDEX statements, in dependency order."""
    if dialect not in DIALECTS:
        raise ValueError(f"unknown dialect {dialect!r}; expected one of {DIALECTS}")
    out: list[str] = []
    for table in TABLES:
        lines = []
        for i, col in enumerate(table.columns):
            null = "NULL" if col.nullable else "NOT NULL"
            pk = " PRIMARY KEY" if i == 0 else ""
            lines.append(f"    {col.name} {_type(col, dialect)} {null}{pk}")
        for col in table.columns:
            if col.references:
                ref_table, ref_col = col.references.split(".")
                lines.append(f"    FOREIGN KEY ({col.name}) REFERENCES {ref_table} ({ref_col})")
        tail = " ENGINE=InnoDB" if dialect == "mysql" else ""
        out.append(f"CREATE TABLE {table.name} (\n" + ",\n".join(lines) + f"\n){tail}")
        for col_name in table.indexes:
            out.append(f"CREATE INDEX ix_{table.name}_{col_name} ON {table.name} ({col_name})")
    return out


def drop_statements() -> list[str]:
    """DROP TABLE IF EXISTS for every table, children first."""
    return [f"DROP TABLE IF EXISTS {t.name}" for t in reversed(TABLES)]


def ddl_script(dialect: str) -> str:
    """The whole schema as one script (for docs, prompts and `sqlite3 < file`)."""
    return ";\n\n".join(create_statements(dialect)) + ";\n"


def database_schema(dialect: str = "sqlite", name: str = "sample") -> DatabaseSchema:
    """The schema as a `server.sql.schema.DatabaseSchema`, without connecting to anything.

    What introspection of a loaded copy would return minus sample values: for validating gold
    SQL (tests, the pairs CLI) against the sample without a live database.
    """
    if dialect not in DIALECTS:
        raise ValueError(f"unknown dialect {dialect!r}; expected one of {DIALECTS}")
    tables = []
    for table in sorted(TABLES, key=lambda t: t.name):  # introspection lists tables by name
        columns = tuple(Column(c.name, _type(c, dialect), c.nullable, i == 0) for i, c in enumerate(table.columns))
        fks = []
        for c in table.columns:
            if c.references:
                ref_table, ref_col = c.references.split(".")
                fks.append(ForeignKey((c.name,), ref_table, (ref_col,)))
        tables.append(Table(table.name, columns, tuple(fks)))
    return DatabaseSchema(name=name, dialect=dialect, tables=tuple(tables))
