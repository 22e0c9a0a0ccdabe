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
  * table aliases are uniform, SELECT by SELECT: none where a SELECT reads one table (unless a
    nested query refers to it), the table's initials in a join; a derived table is `d` (`d2`,
    ...), so that every alias fits the serving grammar's short aliases (server/sql/grammar.py).
    The two branches of a UNION both say `c`, however the pair numbered them (`CUSTOMERSalias0`,
    `CUSTOMERSalias1`);
  * output aliases (`AS Total`) are lower case, and so are the references to them;
  * with the live `schema`: table and column names are spelled as the database spells them
    (`city.city_name` → `CITY.CITY_NAME` when the tables are upper case), and a double-quoted
    name that is no column (`= "texas"` in SQLite or MySQL) becomes the string it means there;
  * joins are written one way: `FROM a, b WHERE b.x = a.y AND ...` (the classic datasets'
    comma joins) becomes `FROM a JOIN b ON b.x = a.y WHERE ...` when every table of the comma
    list is linked to the ones before it by column equalities; a comma join that remains (a
    real cross product) stays a comma, never SQLite's `CROSS JOIN` (which sqlglot writes for
    it, and which pins SQLite's join order);
  * in `JOIN t ON ...` an equality between t and a table before it names t's column first
    (`JOIN customers AS c ON c.customer_id = o.customer_id`);
  * parentheses that change nothing in a condition are dropped (`WHERE (a = 1) AND ((b = 2 AND
    c = 3))` → `WHERE a = 1 AND b = 2 AND c = 3`);
  * SQL that does not parse is returned as given (one line), since refusing a pair here would
    hide it from the validator that reports it properly.

Why: training teaches this spelling and serving constrains decoding with a grammar built from
the live schema. Any spelling the grammar cannot produce (a long alias, an upper-case output
alias, a double-quoted string, `city` for `CITY`) pushed the model off its trained path at the
first such token; on an upper-case database 221 of 277 answers ran into unclosed parentheses.
tests/server/sql/test_canonical_grammar.py holds canonical SQL to the grammar, and bench/style_shift.py
checks that the sample's pairs rewritten in the classic datasets' style canonicalise to the form of
the originals (all 773 do).
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
    _explicit_joins(tree, dialect)
    _joined_table_first(tree)
    _plain_conditions(tree)
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


def _source_name(node: exp.Expression) -> str | None:
    """The name a FROM/JOIN source is referred to by (lower case), or None."""
    if isinstance(node, exp.Table):
        return (node.alias or node.name).lower() or None
    if isinstance(node, exp.Subquery) and node.alias:
        return node.alias.lower()
    return None


def _conjuncts(node: exp.Expression) -> list[exp.Expression]:
    """`a AND (b AND c)` → [a, b, c]: the terms of a conjunction, through parentheses."""
    if isinstance(node, exp.Paren) and isinstance(node.this, (exp.And, exp.Paren)):
        return _conjuncts(node.this)
    if isinstance(node, exp.And):
        return _conjuncts(node.this) + _conjuncts(node.expression)
    return [node]


def _is_comma(join: exp.Join, dialect: str) -> bool:
    """A join with no condition and no side: `, t` (SQLite's parser reads it as CROSS)."""
    kind = (join.kind or "").upper()
    return (not join.side and not join.args.get("on") and not join.args.get("using")
            and not join.args.get("method") and kind in ("", "CROSS" if dialect == "sqlite" else ""))


def _explicit_joins(tree: exp.Expression, dialect: str) -> None:
    """Comma joins whose condition is in WHERE → JOIN ... ON (the tables in the order they link)."""
    for select in reversed(list(tree.find_all(exp.Select))):  # innermost first: outer ones copy them
        joins = select.args.get("joins") or []
        if not joins or not all(_is_comma(j, dialect) for j in joins):
            continue
        if dialect == "sqlite":  # a comma stays a comma, even if nothing below applies
            for j in joins:
                j.set("kind", None)
        where = select.args.get("where")
        source = select.args.get("from_") or select.args.get("from")
        first = source.this if source is not None else None
        sources = [first] + [j.this for j in joins]
        names = [_source_name(s) if s is not None else None for s in sources]
        if where is None or None in names or len(set(names)) != len(names):
            continue
        terms = _conjuncts(where.this)
        links: list[tuple[exp.Expression, set[str]] | None] = []
        for term in terms:
            pair = None
            if isinstance(term, exp.EQ) and isinstance(term.this, exp.Column) \
                    and isinstance(term.expression, exp.Column):
                ends = {term.this.table.lower(), term.expression.table.lower()}
                if len(ends) == 2 and ends <= set(names):
                    pair = (term, ends)
            links.append(pair)
        chosen, remaining, plan, used = [names[0]], names[1:], [], set()
        while remaining:
            step = None
            for name in remaining:
                conds = [i for i, link in enumerate(links) if link and i not in used and name in link[1]
                         and link[1] - {name} <= set(chosen)]
                if conds:
                    step = (name, conds)
                    break
            if step is None:
                break
            plan.append(step)
            chosen.append(step[0])
            remaining.remove(step[0])
            used.update(step[1])
        if remaining:
            continue  # a table no equality links: a real cross product, left as written
        reordered = [n for n, _ in plan] != names[1:]
        if reordered and any(isinstance(e, exp.Star) or (isinstance(e, exp.Column) and isinstance(e.this, exp.Star))
                             for e in select.expressions):
            continue  # `SELECT *` lists the columns in FROM order
        by_name = dict(zip(names, sources))
        new_joins = []
        for name, conds in plan:
            node = by_name[name]
            node.pop()
            new_joins.append(exp.Join(this=node, on=exp.and_(*[terms[i].copy() for i in conds])))
        select.set("joins", new_joins)
        rest = [terms[i].copy() for i in range(len(terms)) if i not in used]
        select.set("where", exp.Where(this=exp.and_(*rest)) if rest else None)


def _joined_table_first(tree: exp.Expression) -> None:
    """`JOIN t ON a.x = t.y` → `JOIN t ON t.y = a.x`: one orientation for join equalities."""
    for join in tree.find_all(exp.Join):
        on, name = join.args.get("on"), _source_name(join.this)
        if on is None or name is None:
            continue
        for term in _conjuncts(on):
            if (isinstance(term, exp.EQ) and isinstance(term.this, exp.Column)
                    and isinstance(term.expression, exp.Column) and term.expression.table.lower() == name
                    and term.this.table.lower() not in ("", name)):
                left, right = term.this, term.expression
                term.set("this", right.copy())
                term.set("expression", left.copy())


_PREDICATES = (exp.Predicate, exp.Column, exp.Literal, exp.Boolean, exp.Not, exp.Exists)


def _plain_conditions(tree: exp.Expression) -> None:
    """Drop parentheses that change nothing in a condition: around a term of an AND (an AND or a
    predicate), a term of an OR (an OR or a predicate), a whole WHERE/HAVING/ON, and doubled ones."""
    for paren in reversed(list(tree.find_all(exp.Paren))):  # innermost first
        inner, parent = paren.this, paren.parent
        if parent is None or paren.args.get("alias") is not None:
            continue
        whole = isinstance(parent, (exp.Where, exp.Having)) or (isinstance(parent, exp.Join)
                                                               and parent.args.get("on") is paren)
        if isinstance(parent, exp.Paren):
            ok = True
        elif isinstance(parent, exp.And):
            ok = isinstance(inner, (exp.And, *_PREDICATES))
        elif isinstance(parent, exp.Or):
            ok = isinstance(inner, (exp.Or, *_PREDICATES))  # `a OR (b AND c)` keeps its parentheses
        else:
            ok = whole and isinstance(inner, (exp.Connector, *_PREDICATES))
        if ok:
            paren.replace(inner)


def _sources(select: exp.Select) -> list[exp.Expression]:
    """A SELECT's own FROM and JOIN sources: tables and derived tables."""
    source = select.args.get("from_") or select.args.get("from")
    out = ([source.this] if source is not None else []) + [j.this for j in select.args.get("joins") or []]
    return [s for s in out if isinstance(s, (exp.Table, exp.Subquery))]


def _uniform_aliases(tree: exp.Expression) -> None:
    """Table aliases spelled one way, SELECT by SELECT: none where a SELECT reads one table
    (`customers.name` → `name`) unless a nested query refers to it; in a join, a table's alias
    becomes its initials (`orders AS o`, `order_items AS oi`, numbered when an enclosing query
    or a table already has the name: `c2`), a derived table's `d` (`d2`, ...); an unaliased table
    in a join stays unaliased. Each column follows the source it refers to (the nearest enclosing
    SELECT that names it), so the two branches of a UNION both say `c`, and a subquery's alias
    never hides an outer one that it refers to."""
    selects = list(tree.find_all(exp.Select))  # breadth first: enclosing queries first
    own: dict[int, dict[str, exp.Expression]] = {}
    for select in selects:
        names: dict[str, exp.Expression] = {}
        for source in _sources(select):
            name = (source.alias or (source.name if isinstance(source, exp.Table) else "")).lower()
            if not name:
                continue
            if name in names:
                return  # one name for two sources: ambiguous as written, left alone
            names[name] = source
        own[id(select)] = names
    bound: dict[int, list[exp.Column]] = {}  # id(source) → the columns that refer to it
    loose: set[str] = set()  # qualifiers that name no source here (left as written)
    for column in tree.find_all(exp.Column):
        qualifier = column.table.lower() if column.table else ""
        if not qualifier:
            continue
        select = column.find_ancestor(exp.Select)
        while select is not None and qualifier not in own.get(id(select), {}):
            select = select.find_ancestor(exp.Select)
        if select is None:
            loose.add(qualifier)
        else:
            bound.setdefault(id(own[id(select)][qualifier]), []).append(column)
    tables = {t.name.lower() for t in tree.find_all(exp.Table)}
    visible: dict[int, set[str]] = {}
    renamed: dict[int, str | None] = {}  # id(source) → its new qualifier (None: columns unqualified)
    for select in selects:
        parent = select.find_ancestor(exp.Select)
        taken = tables | loose | (visible.get(id(parent), set()) if parent is not None else set())
        sources = list(own[id(select)].items())
        mine: set[str] = set()
        if len(sources) == 1 and isinstance(sources[0][1], exp.Table) \
                and _alias_droppable(select, sources[0][1], bound.get(id(sources[0][1]), [])):
            table = sources[0][1]
            table.set("alias", None)
            renamed[id(table)] = None
            mine.add(table.name.lower())
        else:
            for name, source in sources:
                alias = source.args.get("alias")
                if alias is None or not alias.name or alias.args.get("columns"):
                    mine.add(name)  # unaliased, or `AS t(a, b)`: as written
                    continue
                new = _free(_initials(source.name) if isinstance(source, exp.Table) else "d", taken | mine)
                mine.add(new)
                renamed[id(source)] = new
                alias.set("this", exp.to_identifier(new))
        visible[id(select)] = taken | mine
    for key, columns in bound.items():
        if key in renamed:
            new = renamed[key]
            for column in columns:
                column.set("table", exp.to_identifier(new) if new else None)


def _alias_droppable(select: exp.Select, table: exp.Table, columns: list[exp.Column]) -> bool:
    """Can the only table of `select` go unaliased, its columns unqualified? Not when a nested
    query refers to it (it needs a name there), when a column in `select` names another source
    with this table's name (unqualified would now mean this one), or when ORDER BY, GROUP BY or
    HAVING names one of its columns that an output alias also names (bare, it could mean the alias)."""
    if any(c.find_ancestor(exp.Select) is not select for c in columns):
        return False
    name = table.name.lower()
    mine = {id(c) for c in columns}
    if any(c.table and c.table.lower() == name and id(c) not in mine for c in select.find_all(exp.Column)):
        return False
    outputs = {a.alias.lower(): a.this for a in select.expressions if isinstance(a, exp.Alias) and a.alias}
    for column in columns:
        target = outputs.get(column.name.lower())
        if target is not None and not (isinstance(target, exp.Column) and target.name.lower() == column.name.lower()) \
                and column.find_ancestor(exp.Order, exp.Group, exp.Having) is not None:
            return False  # (in WHERE, ON and the select list a bare name is the table's column)
    return True


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
