"""One spelling per query: the SQL that example pairs show and that training teaches.

Customers' pairs come from many hands: `select`, `SELECT`, `c.name` under `customers AS c` in one
pair and `customers.name` in the next, trailing semicolons, line breaks. A small model learns the
query faster when every pair says the same thing the same way, and what it writes then looks
like what the validator regenerates anyway (sqlglot's own rendering, server/sql/validate.py).

    canonical_sql("select c.name from customers c where c.city='Lyon';")
    → "SELECT name FROM customers WHERE city = 'Lyon'"
    canonical_sql("select x.id from orders x join order_items y on y.order_id = x.id")
    → "SELECT o.id FROM orders AS o JOIN order_items AS oi ON oi.order_id = o.id"

Rules, each small, and each keeps the query's meaning:
  * parse with sqlglot in the database's dialect and render back on one line (keywords upper
    case, uniform spacing and quoting);
  * table aliases are uniform: none in a one-table query, the table's initials in a join;
    a derived table is `d` (`d2`, ...), so that every alias fits the serving grammar's short
    aliases (server/sql/grammar.py);
  * output aliases (`AS Total`) are lower case, and so are the references to them;
  * with the live `schema`: table and column names are spelled as the database spells them
    (`city.city_name` → `CITY.CITY_NAME` when the tables are upper case), and a double-quoted
    name that is no column (`= "texas"` in SQLite or MySQL) becomes the string it means there;
  * SQL that does not parse is returned as given (one line), since refusing a pair here would
    hide it from the validator that reports it properly.

Why: training teaches this spelling and serving constrains decoding with a grammar built from
the live schema. Any spelling the grammar cannot produce (a long alias, an upper-case output
alias, a double-quoted string, `city` for `CITY`) pushed the model off its trained path at the
first such token; on an upper-case database 221 of 277 answers ran into unclosed parentheses.
tests/server/sql/test_canonical_grammar.py holds canonical SQL to the grammar.
"""

from __future__ import annotations

import re

import sqlglot
from sqlglot import exp

from .schema import DatabaseSchema

# Dialects where a double-quoted name that is no column is a string (SQLite's fallback, MySQL's
# default quotes); in PostgreSQL it is always an identifier.
_DOUBLE_QUOTED_STRINGS = {"sqlite", "mysql"}


def canonical_sql(sql: str, dialect: str = "sqlite", schema: DatabaseSchema | None = None) -> str:
    text = re.sub(r"\s+", " ", sql.strip()).rstrip(";").strip()
    try:
        trees = sqlglot.parse(text, read=dialect)
    except sqlglot.errors.SqlglotError:
        return text
    if len(trees) != 1 or trees[0] is None:
        return text
    tree = trees[0]
    if schema is not None:
        _schema_spelling(tree, schema, dialect)
    _uniform_aliases(tree)
    _lower_output_aliases(tree)
    try:
        return tree.sql(dialect=dialect)
    except sqlglot.errors.SqlglotError:
        return text


def sql_skeleton(sql: str, dialect: str = "sqlite") -> str:
    """The query's shape: its canonical form with every literal replaced by `?`. Pairs that differ
    only in their values ("orders in May 2024" / "orders in June 2023") share a skeleton: the
    template search counts shapes with it (server/sql/baseline.py)."""
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
    # Derived tables: `(SELECT ...) AS anything` → d, d2, ... (a short alias the grammar has).
    for sub in tree.find_all(exp.Subquery):
        alias = sub.args.get("alias")
        if alias is None or not alias.name or alias.args.get("columns") or defined.get(alias.name.lower()) != 1:
            continue
        own = alias.name.lower()
        taken = set(names) | {n for n in defined if n != own} | {v for v in renames.values() if v}
        new = _free("d", taken)
        renames[own] = new
        defined.pop(own)
        defined[new] = 1
        alias.set("this", exp.to_identifier(new))
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


def _alias_name(name: str) -> str:
    """An output alias the grammar can write: lower case, [a-z][a-z0-9_]*, at most 31 characters."""
    text = re.sub(r"[^a-z0-9_]", "_", name.lower())
    if not text or not text[0].isalpha():
        text = "a_" + text
    return text[:31]


def _lower_output_aliases(tree: exp.Expression) -> None:
    """`COUNT(*) AS Total ... ORDER BY Total` → `AS total ... ORDER BY total`, and a derived
    table's `d.DERIVED_FIELD` → `d.derived_field`. Names the query also uses as real column names
    are left alone (renaming could change what a reference means)."""
    aliases = [a for a in tree.find_all(exp.Alias) if a.alias]
    if not aliases:
        return
    defined = {a.alias.lower() for a in aliases}
    derived = {sub.alias for sub in tree.find_all(exp.Subquery) if sub.alias}
    columns = list(tree.find_all(exp.Column))
    # Names used as real columns somewhere: qualified by a table, or bare and no output alias.
    real = {c.name.lower() for c in columns
            if (c.table and c.table not in derived) or (not c.table and c.name.lower() not in defined)}
    renames: dict[str, str] = {}
    for alias in aliases:
        old = alias.alias
        if not old or old.lower() in real:
            continue
        new = _alias_name(old)
        if new != old:
            renames[old] = new
            alias.set("alias", exp.to_identifier(new))
    if not renames:
        return
    for column in columns:
        if column.name in renames and (not column.table or column.table in derived):
            column.set("this", exp.to_identifier(renames[column.name]))


def _schema_spelling(tree: exp.Expression, schema: DatabaseSchema, dialect: str) -> None:
    """Table and column names as the database spells them; a double-quoted non-column a string."""
    tables = {t.name.lower(): t for t in schema.tables}
    columns = {c.name.lower(): c.name for t in schema.tables for c in t.columns}
    aliases = {a.alias.lower() for a in tree.find_all(exp.Alias) if a.alias}
    for table in tree.find_all(exp.Table):
        known = tables.get(table.name.lower())
        if known is not None and table.name != known.name:
            table.set("this", exp.to_identifier(known.name, quoted=table.this.quoted))
    for column in list(tree.find_all(exp.Column)):
        name = column.name
        ident = column.this
        if not isinstance(ident, exp.Identifier):
            continue
        if (ident.quoted and not column.table and dialect in _DOUBLE_QUOTED_STRINGS
                and name.lower() not in columns and name.lower() not in aliases):
            column.replace(exp.Literal.string(name))
            continue
        known = columns.get(name.lower())
        if known is not None and known != name:
            column.set("this", exp.to_identifier(known, quoted=ident.quoted))
