"""One spelling per query: the SQL that example pairs show and that training teaches.

Customers' pairs come from many hands: `select`, `SELECT`, `c.name` under `customers AS c` in one
pair and `customers.name` in the next, trailing semicolons, line breaks. A small model learns the
query faster when every pair says the same thing the same way, and what it writes then looks
like what the validator regenerates anyway (sqlglot's own rendering, server/sql/validate.py).

    canonical_sql("select c.name from customers c where c.city='Lyon';")
    → "SELECT name FROM customers WHERE city = 'Lyon'"
    canonical_sql("select x.id from orders x join order_items y on y.order_id = x.id")
    → "SELECT o.id FROM orders AS o JOIN order_items AS oi ON oi.order_id = o.id"

Rules, each small:
  * parse with sqlglot in the database's dialect and render back on one line (keywords upper
    case, uniform spacing and quoting);
  * table aliases are uniform: none in a one-table query, the table's initials in a join;
    derived tables' aliases stay;
  * SQL that does not parse is returned as given (one line), since refusing a pair here would
    hide it from the validator that reports it properly.
"""

from __future__ import annotations

import re

import sqlglot
from sqlglot import exp


def canonical_sql(sql: str, dialect: str = "sqlite") -> str:
    text = re.sub(r"\s+", " ", sql.strip()).rstrip(";").strip()
    try:
        trees = sqlglot.parse(text, read=dialect)
    except sqlglot.errors.SqlglotError:
        return text
    if len(trees) != 1 or trees[0] is None:
        return text
    tree = trees[0]
    _uniform_aliases(tree)
    try:
        return tree.sql(dialect=dialect)
    except sqlglot.errors.SqlglotError:
        return text


def sql_skeleton(sql: str, dialect: str = "sqlite") -> str:
    """The query's shape: its canonical form with every literal replaced by `?`. Pairs that differ
    only in their values ("orders in May 2024" / "orders in June 2023") share a skeleton; training
    uses it to draft some pairs from a *different* shape, as serving must for a new kind of
    question (training/sql.py, `other_shape_fraction`)."""
    text = canonical_sql(sql, dialect)
    try:
        tree = sqlglot.parse_one(text, read=dialect)
    except sqlglot.errors.SqlglotError:
        return re.sub(r"'[^']*'|\b\d+(\.\d+)?\b", "?", text)
    tree = tree.transform(lambda node: exp.Placeholder() if isinstance(node, exp.Literal) else node)
    return tree.sql(dialect=dialect)


def _uniform_aliases(tree: exp.Expression) -> None:
    """Table aliases spelled one way: none in a one-table query (`customers.name` → `name`); in a
    join, a table's alias becomes its initials (`orders AS o`, `order_items AS oi`, numbered when
    taken: `c2`), and an unaliased table stays unaliased. An alias defined twice in one query
    (in two subqueries) is left alone, since renaming could change what a column refers to."""
    tables = list(tree.find_all(exp.Table))
    if not tables:
        return
    names: dict[str, int] = {}
    defined: dict[str, int] = {}
    for t in tables:
        names[t.name.lower()] = names.get(t.name.lower(), 0) + 1
    for node in tree.find_all(exp.TableAlias):
        defined[node.name.lower()] = defined.get(node.name.lower(), 0) + 1
    renames: dict[str, str | None] = {}  # old qualifier → new alias (None: no qualifier at all)
    if len(tables) == 1:
        t = tables[0]
        if not t.alias or defined.get(t.alias.lower()) == 1:
            renames[(t.alias or t.name).lower()] = None
            renames[t.name.lower()] = None
            t.set("alias", None)
    else:
        # Only aliases are respelled: an unaliased table keeps its name as its qualifier.
        movable = [t for t in tables if t.alias and defined.get(t.alias.lower()) == 1]
        taken = {n for n in defined if n not in {t.alias.lower() for t in movable if t.alias}}
        taken |= set(names)
        for t in movable:
            new = _free(_initials(t.name), taken)
            taken.add(new)
            renames[(t.alias or t.name).lower()] = new
            t.set("alias", exp.TableAlias(this=exp.to_identifier(new)))
    for column in tree.find_all(exp.Column):
        qualifier = column.table
        if qualifier and qualifier.lower() in renames:
            new = renames[qualifier.lower()]
            column.set("table", exp.to_identifier(new) if new else None)


def _initials(name: str) -> str:
    """order_items → oi, customers → c, OrderLines → ol."""
    parts = [p for p in re.split(r"_+|(?<=[a-z])(?=[A-Z])", name) if p]
    return "".join(p[0] for p in parts).lower() or "t"


def _free(alias: str, taken: set[str]) -> str:
    if alias not in taken:
        return alias
    n = 2
    while f"{alias}{n}" in taken:
        n += 1
    return f"{alias}{n}"
