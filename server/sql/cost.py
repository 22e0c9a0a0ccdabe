"""What a query would cost, from the engine's own planner, before it runs.

A validated query can still be one that cannot finish: a join on a condition that is true for
every pair of rows builds a cross product (77 million rows for orders x order_items on the sample)
and runs into the statement timeout. Where the engine can say so beforehand, `estimate_cost` asks
it, in the same read-only session the query would run in:

  postgres  EXPLAIN (FORMAT JSON): the top plan node's Total Cost, in the planner's units (about
            1 a page read, 0.01 a row handled). A LIMIT the query can stop at early lowers it.
  mysql     EXPLAIN: the product of `rows` over the tables of each SELECT (a nested-loop join
            reads the inner table once per outer row; a join on a key reads about 1), summed
            over the SELECTs. MariaDB and MySQL alike.
  sqlite    EXPLAIN QUERY PLAN: the product of the row counts of the tables each loop SCANs in
            full (a SEARCH through an index counts 1), summed over subqueries and compound
            branches; a correlated subquery counts once per row of the loops around it.

The estimates are the engines' and rough: the limit (`DatabaseConfig.max_query_cost`, default
DEFAULT_MAX_COST by engine) sits orders of magnitude above what a sane query on the data costs
and below a cross product of two large tables. Only generated SQL is checked (server/services/
text_to_sql.py): SQL a client wrote runs as written, bounded by the statement timeout.
"""

from __future__ import annotations

import os
import re
import threading

import sqlglot
from sqlglot import exp

from server.sql.readonly import ReadOnlySession

# Per engine, in that engine's units (see the module docstring). Measured on the sample database
# (10,000 orders, 7,700 order lines; tests/server/test_sql_runaway.py): the costliest of its 773 gold
# queries is 343 on PostgreSQL, 1.2e5 on SQLite, 1.0e4 on MariaDB; a join true for nearly every pair
# of orders and order lines, grouped, is 6.8e5, 7.7e7 and 7.7e7. PostgreSQL's 1.5e5 is about a full
# scan of 10 million rows: raise max_query_cost for larger databases.
DEFAULT_MAX_COST = {"postgres": 1.5e5, "mysql": 1e7, "sqlite": 1e7}

_SQLITE_SCAN = re.compile(r"^SCAN (?:TABLE )?(\S+)(?: AS (\S+))?")
_SQLITE_SEARCH = re.compile(r"^SEARCH (?:TABLE )?(\S+)")
_LEADING_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_row_counts: dict[tuple, int] = {}  # (sqlite file, mtime_ns, size, table) -> rows
_row_counts_lock = threading.Lock()


def limit_for(dialect: str, configured: float | None) -> float | None:
    """The limit in force: the configured one, else the engine's default; None when it is off (0)."""
    limit = DEFAULT_MAX_COST[dialect] if configured is None else configured
    return limit or None


def estimate_cost(session: ReadOnlySession, sql: str) -> float:
    """The engine's estimate of the work `sql` takes (units by engine, see the module docstring)."""
    if session.flavour == "postgres":
        return _postgres(session, sql)
    if session.flavour == "sqlite":
        return _sqlite(session, sql)
    return _mysql(session, sql)


def _postgres(session: ReadOnlySession, sql: str) -> float:
    cursor = session.driver.cursor()
    try:
        cursor.execute("EXPLAIN (FORMAT JSON) " + sql)  # params=None: no %-placeholder parsing
        plan = cursor.fetchone()[0]
    finally:
        cursor.close()
    return float(plan[0]["Plan"]["Total Cost"])


def _mysql(session: ReadOnlySession, sql: str) -> float:
    from pymysql.cursors import DictCursor

    cursor = session.driver.cursor(DictCursor)
    try:
        cursor.execute("EXPLAIN " + sql)
        rows = cursor.fetchall()
    finally:
        cursor.close()
    per_select: dict = {}
    for row in rows:
        # MariaDB writes "1 (41%)" when a rowid filter applies: the rows read, then the share kept.
        found = _LEADING_NUMBER.match(str(row.get("rows") or "1"))
        rows_read = max(1.0, float(found.group(0))) if found else 1.0
        per_select[row.get("id")] = per_select.get(row.get("id"), 1.0) * rows_read
    return sum(per_select.values())


def _sqlite(session: ReadOnlySession, sql: str) -> float:
    cursor = session.driver.cursor()
    try:
        plan = cursor.execute("EXPLAIN QUERY PLAN " + sql).fetchall()
    finally:
        cursor.close()
    children: dict[int, list[tuple[int, str]]] = {}
    for node_id, parent, _unused, detail in plan:
        children.setdefault(parent, []).append((node_id, detail))
    aliases = _sqlite_aliases(sql)

    def rows_of(name: str) -> float:
        table = aliases.get(name.lower(), name)
        return float(_sqlite_rows(session, table)) if table else 1.0

    def cost(parent: int, outer: float) -> float:
        """Work of the loops under `parent`, run `outer` times."""
        total, loops = 0.0, outer
        for node_id, detail in children.get(parent, []):
            scan, search = _SQLITE_SCAN.match(detail), _SQLITE_SEARCH.match(detail)
            if scan and scan.group(1) != "CONSTANT":
                loops *= max(1.0, rows_of(scan.group(2) or scan.group(1)))
                total += loops
            elif search:
                total += loops
            elif detail.startswith("CORRELATED"):
                total += cost(node_id, loops)  # once per row of the loops around it
            else:  # a subquery, CTE, compound branch or temp b-tree: its own loops, run once
                total += cost(node_id, 1.0)
        return total

    return cost(0, 1.0)


def _sqlite_aliases(sql: str) -> dict[str, str | None]:
    """alias or name -> table, for every table the query names; CTE and subquery names map to None."""
    tree = sqlglot.parse_one(sql, read="sqlite")
    out: dict[str, str | None] = {}
    for table in tree.find_all(exp.Table):
        out[table.alias_or_name.lower()] = table.name
    for node in tree.find_all(exp.CTE, exp.Subquery):
        if node.alias and node.alias.lower() not in out:
            out[node.alias.lower()] = None
    return out


def _sqlite_rows(session: ReadOnlySession, table: str | None) -> int:
    """A table's row count, cached until the file changes (a COUNT(*) reads the smallest index)."""
    path = session.database.sqlite_path
    stat = os.stat(path)
    key = (str(path), stat.st_mtime_ns, stat.st_size, table.lower())
    with _row_counts_lock:
        if key in _row_counts:
            return _row_counts[key]
    cursor = session.driver.cursor()
    try:
        quoted = '"' + table.replace('"', '""') + '"'
        count = cursor.execute(f"SELECT COUNT(*) FROM {quoted}").fetchone()[0]
    except Exception:  # a view or a name the plan shows that is not a table: no estimate
        count = 1
    finally:
        cursor.close()
    with _row_counts_lock:
        _row_counts[key] = count
    return count
