"""The validator's rules: small pure functions applied in order by `validate.validate_sql`.

Each rule has the shape `rule(tree, ctx) -> tree` (the style of sqlglot's optimizer rules): it
returns the tree, possibly transformed into a new object, or raises `RuleViolation`. No rule
mutates its input. The value flowing through the pipeline changes type at the start only:

    parses            str                -> list[exp.Expression]   (every statement in the text)
    single_statement  list[Expression]   -> exp.Expression         (the one statement)
    every later rule  exp.Expression     -> exp.Expression

Design decisions (reasons inline below):
* Allow-list at the top (SELECT / set operation only), deny-list of node types everywhere below,
  because the parser accepts DML inside CTEs and SELECT ... INTO hides a write in a SELECT node.
* Columns are checked on a *qualified copy*; the tree that goes on is the original one, so the
  regenerated SQL keeps the user's (model's) own spelling instead of `"t"."c" AS "c"` noise.
* The SQL that runs is `render_sql(tree)`: regenerated from the AST without comments, never the
  raw text. `regenerates` re-parses that exact text and re-checks it, so what runs was checked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any, Callable

from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import ErrorLevel, ParseError, SqlglotError, UnsupportedError
from sqlglot.optimizer.qualify import qualify
from sqlglot.optimizer.scope import Scope, traverse_scope
from sqlglot.tokens import TokenType

from server.sql.grounding import Grounding, compared_literals
from server.sql.schema import DatabaseSchema

MAX_SQL_CHARS = 20_000  # a generated query is far shorter; huge input only burns CPU in the parser
# sqlglot backtracks at each nested call of a name that is also a type (DATE(DATE(...)): CAST or
# call?), doubling the parse time per level: measured here, 20 nested DATE( took 66 s and 54 (what
# a confused model wrote) would never end. Real queries stay well under 10 levels of parentheses.
MAX_PAREN_DEPTH = 10
MAX_SIZE_ARG = 1_000_000  # randomblob(1e9) and friends allocate memory proportional to the arg


class RuleViolation(Exception):
    """A rule rejected the statement. `code` is stable and machine-readable; `message` is prose."""

    def __init__(self, rule: str, code: str, message: str, line: int | None = None, col: int | None = None):
        super().__init__(message)
        self.rule, self.code, self.message, self.line, self.col = rule, code, message, line, col


@dataclass(frozen=True)
class RuleContext:
    sql: str  # the raw input text, for reference; `parses` receives it as its `tree` argument
    schema: DatabaseSchema
    read_dialect: str  # dialect the input is written in
    dialect: str  # dialect of the database that runs it (schema.dialect); output is in this one
    max_rows: int
    mapping: dict[str, dict[str, str]] = field(default_factory=dict)  # schema.to_sqlglot_mapping()
    grounding: Grounding | None = None  # the question's values (generated SQL only; see grounded_literals)


Rule = Callable[[Any, RuleContext], Any]


def _where(node: exp.Expression | None) -> tuple[int | None, int | None]:
    """(line, col) of the earliest token under `node`. sqlglot stores each token's *end* column,
    so back up by its length. Read `_meta` directly: the `meta` property would create a dict."""
    metas = [n._meta for n in (node.walk() if node is not None else ()) if n._meta and "line" in n._meta]
    if not metas:
        return None, None
    m = min(metas, key=lambda m: m.get("start", 0))
    return m["line"], max(1, m["col"] - (m.get("end", 0) - m.get("start", 0)))


def _fail(rule: str, code: str, message: str, node: exp.Expression | None = None):
    raise RuleViolation(rule, code, message, *_where(node))


# ---------------------------------------------------------------------------------------- 1
def _check_parentheses(tokens, ctx: RuleContext) -> None:
    """Unbalanced or too deeply nested parentheses fail before the parser sees them (see
    MAX_PAREN_DEPTH): the parser's time grows exponentially with nesting."""
    depth = 0
    for tok in tokens:
        if tok.token_type == TokenType.L_PAREN:
            depth += 1
            if depth > MAX_PAREN_DEPTH:
                raise RuleViolation("parses", "too_complex",
                                    f"parentheses nested more than {MAX_PAREN_DEPTH} deep", tok.line, tok.col)
        elif tok.token_type == TokenType.R_PAREN:
            depth -= 1
            if depth < 0:
                raise RuleViolation("parses", "parse_error", f"not valid {ctx.read_dialect} SQL: "
                                    "')' without a matching '('", tok.line, tok.col)
    if depth:
        _fail("parses", "parse_error", f"not valid {ctx.read_dialect} SQL: {depth} unclosed '('")


def parses(sql: str, ctx: RuleContext) -> list[exp.Expression]:
    """Tokenize + parse with ErrorLevel.RAISE; reject sqlglot's `Command` fallback (unparsed text)."""
    if len(sql) > MAX_SQL_CHARS:
        _fail("parses", "too_long", f"statement is longer than {MAX_SQL_CHARS} characters")
    dialect = Dialect.get_or_raise(ctx.read_dialect)
    try:
        tokens = dialect.tokenize(sql)
        _check_parentheses(tokens, ctx)
        statements = dialect.parser(error_level=ErrorLevel.RAISE).parse(tokens, sql)
    except ParseError as e:
        first = e.errors[0] if e.errors else {}
        col = first.get("col")  # the end of the offending token; report its start
        col = max(1, col - len(first.get("highlight") or " ") + 1) if col else None
        raise RuleViolation("parses", "parse_error", f"not valid {ctx.read_dialect} SQL: "
                            f"{first.get('description', e)}", first.get("line"), col)
    except SqlglotError as e:  # TokenError: unterminated string / identifier / comment
        _fail("parses", "parse_error", f"not valid {ctx.read_dialect} SQL: {e}")
    except RecursionError:
        _fail("parses", "too_complex", "statement is nested too deeply to parse")
    # MySQL/MariaDB execute `/*! ... */` and `/*M! ... */` bodies; nothing legitimate needs them.
    # (Output never carries comments, but a query that tries this is hostile: say so.)
    for tok in tokens:
        if any(c.startswith(("!", "M!")) for c in tok.comments):
            raise RuleViolation("parses", "executable_comment",
                                "MySQL executable comments (/*! ... */) are not allowed", tok.line, tok.col)
    statements = [s for s in statements if s is not None]  # `;;` and comment-only pieces
    for s in statements:
        if (cmd := s.find(exp.Command)) is not None:
            _fail("parses", "unsupported_statement",
                  f"unsupported statement '{cmd.name.upper()}' (sqlglot could not parse it)", cmd)
    return statements


# ---------------------------------------------------------------------------------------- 2
def single_statement(statements: list[exp.Expression], ctx: RuleContext) -> exp.Expression:
    if not statements:
        _fail("single_statement", "empty", "no SQL statement found")
    if len(statements) > 1:
        _fail("single_statement", "multiple_statements",
              f"expected exactly one statement, found {len(statements)}", statements[1])
    return statements[0]


# ---------------------------------------------------------------------------------------- 3
# (code, sqlglot class names). Names, not classes, so a sqlglot upgrade that drops one still loads.
_DENIED_NODES = (
    ("data_modification", ("Insert", "Update", "Delete", "Merge", "Copy", "LoadData", "Returning")),
    ("schema_change", ("Create", "Drop", "Alter", "AlterSession", "TruncateTable", "Comment", "Analyze",
                       "Refresh", "Cache", "Uncache", "Undrop", "UserDefinedFunction")),
    ("select_into", ("Into",)),  # SELECT ... INTO new_table / @var / OUTFILE
    ("row_lock", ("Lock", "LockingStatement")),  # FOR UPDATE / FOR SHARE / LOCK IN SHARE MODE
    ("privilege_change", ("Grant", "Revoke")),
    ("transaction_control", ("Transaction", "Commit", "Rollback")),
    ("session_command", ("Set", "SetItem", "Pragma", "Attach", "Detach", "Use", "Show", "Describe",
                         "Kill", "Execute", "ExecuteSql", "Command")),
    # @var / @@sysvar / $1 / ?: reads server settings, assigns session state, or needs binds we never send
    ("session_variable", ("Parameter", "SessionParameter", "Placeholder")),
)
_DENIED = tuple((code, tuple(getattr(exp, n) for n in names if hasattr(exp, n)))
                for code, names in _DENIED_NODES)
_LABELS = {
    "data_modification": "data modification", "schema_change": "schema change",
    "select_into": "SELECT ... INTO", "row_lock": "row locking (FOR UPDATE / FOR SHARE)",
    "privilege_change": "privilege change", "transaction_control": "transaction control",
    "session_command": "session command", "session_variable": "session variable or parameter",
}


def read_only(tree: exp.Expression, ctx: RuleContext) -> exp.Expression:
    # Deny-list everywhere first, so `DELETE ...` reports data_modification, not just "not a query".
    for node in tree.walk():
        for code, classes in _DENIED:
            if isinstance(node, classes):
                _fail("read_only", code, f"{_LABELS[code]} ({node.key.upper()}) is not allowed: "
                      "only read-only queries may run", node)
    # Then allow-list the statement itself: many non-queries parse into odd nodes (`SAVEPOINT a`
    # is an Alias, `CHECKPOINT` a Column, `VALUES (1)` a Values), so "no denied node" isn't enough.
    if not isinstance(tree, (exp.Select, exp.SetOperation)):
        _fail("read_only", "not_a_query", f"only SELECT queries are allowed, got {tree.key.upper()}", tree)
    return tree


# ---------------------------------------------------------------------------------------- 4
# Exact names per dialect: filesystem, sleeping/DoS, locks, server/session state, remote
# connections, writes hidden in functions. current_setting is denied: it leaks server
# configuration and no analytics question needs it.
_DENIED_FUNCTIONS = {
    "postgres": {
        "pg_read_file", "pg_read_binary_file", "pg_stat_file", "pg_ls_dir", "pg_ls_logdir", "pg_ls_waldir",
        "pg_ls_tmpdir", "pg_ls_archive_statusdir", "pg_current_logfile", "pg_sleep", "pg_sleep_for",
        "pg_sleep_until", "lo_import", "lo_export", "lo_get", "lo_put", "lo_create", "lo_unlink",
        "lo_from_bytea", "dblink", "dblink_exec", "dblink_connect", "dblink_send_query",
        "pg_terminate_backend", "pg_cancel_backend", "set_config", "current_setting", "pg_reload_conf",
        "pg_rotate_logfile", "pg_promote", "pg_switch_wal", "pg_create_restore_point",
        "pg_logical_emit_message", "pg_notify", "nextval", "setval", "txid_current", "pg_current_xact_id",
        "query_to_xml", "query_to_xmlschema", "query_to_xml_and_xmlschema", "cursor_to_xml",
        "table_to_xml", "schema_to_xml", "database_to_xml", "pg_file_write", "pg_file_unlink",
        "pg_file_rename", "pg_backup_start", "pg_backup_stop", "pg_start_backup", "pg_stop_backup",
        "pg_drop_replication_slot", "pg_create_logical_replication_slot", "pg_import_system_collations",
    },
    "sqlite": {
        "load_extension", "readfile", "writefile", "edit", "fts3_tokenizer", "fsdir", "zipfile",
        "sqlar_compress", "sqlar_uncompress", "lsmode", "sqlite_dbpage",
    },
    "mysql": {
        "load_file", "sleep", "benchmark", "get_lock", "release_lock", "release_all_locks", "is_free_lock",
        "is_used_lock", "sys_exec", "sys_eval", "sys_get", "sys_set", "master_pos_wait", "source_pos_wait",
        "wait_for_executed_gtid_set", "wait_until_sql_thread_after_gtids", "set_var",
    },
}
# In every dialect: anything that sleeps, reads/writes files, loads code or takes advisory locks.
_DENIED_PATTERN = re.compile(r"sleep|benchmark|(load|read|write)_?(binary_)?file|load_extension"
                             r"|^pg_ls_|^lo_|^dblink|advisory|^sys_(exec|eval)$")
_SIZE_FUNCTIONS = {"randomblob", "zeroblob", "repeat", "lpad", "rpad", "space", "replicate"}


def _function_names(node: exp.Func) -> set[str]:
    if isinstance(node, exp.Anonymous):  # unknown to sqlglot: the name as written (quotes dropped)
        return {node.name.lower()}
    return {n.lower() for n in node.sql_names()} | {node.key}


def safe_functions(tree: exp.Expression, ctx: RuleContext) -> exp.Expression:
    # Both dialects' lists: the text is written in one and runs in the other.
    denied = _DENIED_FUNCTIONS.get(ctx.read_dialect, set()) | _DENIED_FUNCTIONS.get(ctx.dialect, set())
    for node in tree.find_all(exp.Func):
        names = _function_names(node)
        bad = sorted(n for n in names if n in denied or _DENIED_PATTERN.search(n))
        if bad:
            _fail("safe_functions", "denied_function", f"function {bad[0].upper()}() is not allowed", node)
        if names & _SIZE_FUNCTIONS:
            for arg in node.iter_expressions():
                if isinstance(arg, exp.Literal) and arg.is_int and int(arg.this) > MAX_SIZE_ARG:
                    _fail("safe_functions", "oversized_argument",
                          f"{sorted(names & _SIZE_FUNCTIONS)[0].upper()}() argument {arg.this} exceeds "
                          f"{MAX_SIZE_ARG}", node)
    return tree


# ---------------------------------------------------------------------------------------- 5
def known_tables(tree: exp.Expression, ctx: RuleContext) -> exp.Expression:
    """Every table reference is a schema table or a CTE in scope (subquery aliases aren't Tables)."""
    try:
        scopes = traverse_scope(tree)
    except SqlglotError as e:
        _fail("known_tables", "unresolved_table", f"could not resolve table references: {e}")
    # A Table node is a CTE reference when its scope maps its name to another Scope.
    cte_refs = {id(t) for s in scopes for t in s.tables if isinstance(s.sources.get(t.alias_or_name), Scope)}
    for table in tree.find_all(exp.Table):
        if id(table) in cte_refs:
            continue
        if not isinstance(table.this, exp.Identifier):  # FROM pg_ls_dir('.'), json_each(...), ROWS FROM
            _fail("known_tables", "table_function", f"table-valued function {table.this.sql()[:60]} "
                  "is not allowed in FROM", table)
        if table.args.get("db") or table.args.get("catalog"):
            # The schema is one flat namespace; `other_db.t`, `pg_catalog.x`, `main.t` reach outside it.
            _fail("known_tables", "qualified_table",
                  f"schema-qualified table '{table.sql(dialect=ctx.read_dialect)}' is not allowed", table)
        if ctx.schema.table(table.name) is None:
            _fail("known_tables", "unknown_table", f"unknown table '{table.name}'", table)
    return tree


# ---------------------------------------------------------------------------------------- 6
_COLUMN_ERROR = re.compile(r"(?:Unknown column: (?P<n1>\S+)|Column '(?P<n2>[^']+)' could not be resolved"
                           r"(?: for table: '(?P<table>[^']+)')?)(?:\. Line: (?P<line>\d+), Col: (?P<col>\d+))?")


def known_columns(tree: exp.Expression, ctx: RuleContext) -> exp.Expression:
    """qualify() a copy against the schema; the qualified copy is thrown away (see module doc)."""
    try:
        qualified = qualify(tree.copy(), dialect=ctx.read_dialect, schema=ctx.mapping,
                            validate_qualify_columns=True, quote_identifiers=False)
    except SqlglotError as e:
        text = str(e).splitlines()[0]
        m = _COLUMN_ERROR.match(text)
        if not m:
            _fail("known_columns", "unresolved_column", f"could not resolve columns: {text}")
        name, table = m["n1"] or m["n2"], m["table"]
        # sqlglot says "could not be resolved" for ambiguous names too; tell the two apart, since
        # "qualify it with a table name" is the fix the model needs for the retry.
        used = {t.name.lower() for t in tree.find_all(exp.Table)}
        owners = [t.name for t in ctx.schema.tables if t.name.lower() in used and t.column(name)]
        if table is None and len(owners) > 1:
            code, message = "ambiguous_column", f"ambiguous column '{name}' (in {', '.join(owners)})"
        else:
            code, message = "unknown_column", f"unknown column '{table + '.' if table else ''}{name}'"
        if m["line"]:  # sqlglot's position is the end of the name
            raise RuleViolation("known_columns", code, message, int(m["line"]),
                                max(1, int(m["col"]) - len(name) + 1))
        where = next((c for c in tree.find_all(exp.Column) if c.name.lower() == name.lower()
                      and (c.table.lower() == (table or c.table).lower())), None)
        _fail("known_columns", code, message, where)
    # sqlglot's validation skips HAVING/QUALIFY (names there may be select aliases), so an unknown
    # name there survives qualify() unqualified: anything still bare and not an alias is unknown.
    for col in qualified.find_all(exp.Column):
        clause = col.find_ancestor(exp.Select, exp.Having, exp.Qualify)
        if not col.table and isinstance(clause, (exp.Having, exp.Qualify)) and (
            not isinstance(clause.parent, exp.Select) or col.name not in clause.parent.named_selects
        ):
            _fail("known_columns", "unknown_column", f"unknown column '{col.name}'", col)
    return tree


# ---------------------------------------------------------------------------------------- 6a
def joins_connect(tree: exp.Expression, ctx: RuleContext) -> exp.Expression:
    """A join condition must connect the joined table to the rest: `ON oi.order_id = oi.order_id`
    (a column compared with itself) or an ON naming only the joined table is true for every pair of
    rows, and the cross product it builds (77 million rows for orders x order_items on the sample)
    runs into the statement timeout instead of answering. Told so, the model joins on the key."""
    for cond in tree.find_all(exp.EQ):
        left, right = cond.this, cond.expression
        if (isinstance(left, exp.Column) and isinstance(right, exp.Column) and left.table
                and left.name.lower() == right.name.lower() and left.table.lower() == right.table.lower()):
            _fail("joins_connect", "self_comparison",
                  f"{cond.sql(dialect=ctx.dialect)} compares a column with itself, which is always true: "
                  "compare it with the matching column of the other table", cond)
    for join in tree.find_all(exp.Join):
        on = join.args.get("on")
        joined = join.this.alias_or_name.lower() if isinstance(join.this, exp.Table) else None
        if on is None or joined is None:
            continue
        tables = {c.table.lower() for c in on.find_all(exp.Column)}
        if tables and "" not in tables and tables == {joined} and not on.find(exp.Subquery, exp.Exists):
            _fail("joins_connect", "unconnected_join",
                  f"the join condition of {join.this.sql(dialect=ctx.dialect)} names only that table, so "
                  "every row joins every row: join it on a column of another table", on)
    for select in tree.find_all(exp.Select):
        apart = _unconnected_source(select, ctx)
        if apart is not None:
            _fail("joins_connect", "cartesian_product",
                  f"{apart.sql(dialect=ctx.dialect)} is joined to the other tables by no condition, so every "
                  "row of one pairs with every row of the others: join it on a key (ON a.key = b.key)", apart)
    return tree


def _one_row(source: exp.Expression) -> bool:
    """A derived table that returns at most one row (an aggregate without GROUP BY, LIMIT 1): a
    product with it bounds nothing, so `CROSS JOIN (SELECT AVG(x) AS a FROM t) AS d` is fine."""
    query = source.this if isinstance(source, exp.Subquery) else None
    if not isinstance(query, exp.Select):
        return False
    limit = query.args.get("limit")
    if limit is not None and isinstance(limit.expression, exp.Literal) and limit.expression.this == "1":
        return True
    return query.args.get("group") is None and bool(query.expressions) and all(
        e.find(exp.AggFunc) is not None for e in query.expressions)


def _unconnected_source(select: exp.Select, ctx: RuleContext) -> exp.Expression | None:
    """The first FROM/JOIN source of `select` that no condition (ON, USING, WHERE) relates to the
    others, when there are several sources; None when they are all connected or the stray ones
    return one row. An unqualified column counts for the one source whose table has it."""
    from_ = select.args.get("from_") or select.args.get("from")  # "from_" since sqlglot 28
    if from_ is None:
        return None
    sources = [from_.this, *(j.this for j in select.args.get("joins") or [])]
    names = [s.alias_or_name.lower() for s in sources]
    if len(sources) < 2 or "" in names or len(set(names)) < len(names):
        return None
    parent = {n: n for n in names}

    def find(n: str) -> str:
        while parent[n] != n:
            n = parent[n]
        return n

    def owner(column: exp.Column) -> str | None:
        if column.table:
            return column.table.lower() if column.table.lower() in parent else None
        having = [n for n, s in zip(names, sources) if isinstance(s, exp.Table)
                  and column.name.lower() in {c.lower() for c in ctx.mapping.get(s.name, {})}]
        return having[0] if len(having) == 1 else None

    conditions = [j.args.get("on") for j in select.args.get("joins") or []]
    where = select.args.get("where")
    conditions.append(where.this if where is not None else None)
    for i, join in enumerate(select.args.get("joins") or [], 1):
        if join.args.get("using"):
            parent[find(names[i])] = find(names[0])
    for cond in filter(None, conditions):
        for predicate in cond.find_all(exp.Predicate):
            if predicate.find_ancestor(exp.Select) is not select:
                continue  # a subquery's own conditions relate its own tables
            owners = {o for o in map(owner, predicate.find_all(exp.Column)) if o is not None}
            roots = {find(o) for o in owners}
            for root in roots:
                parent[root] = find(next(iter(owners)))
    groups: dict[str, list[exp.Expression]] = {}
    for name, source in zip(names, sources):
        if not _one_row(source):  # a one-row derived table multiplies nothing
            groups.setdefault(find(name), []).append(source)
    if len(groups) < 2:
        return None
    return list(groups.values())[1][0]  # the first source of the second group: the one left apart


# ---------------------------------------------------------------------------------------- 6b
def grounded_literals(tree: exp.Expression, ctx: RuleContext) -> exp.Expression:
    """Generated SQL compares columns only with values its question vouches for
    (server/sql/grounding.py): a model that copies a draft's or a neighbour's city, year or status
    into an unrelated question is told so and tries again. SQL a caller wrote (/v1/sql/validate)
    has no question and is not checked."""
    if ctx.grounding is None:
        return tree
    for literal, column in compared_literals(tree):
        if not ctx.grounding.supports(literal):
            _fail("grounded_literals", "ungrounded_literal",
                  f"the question does not mention {literal.sql(dialect=ctx.dialect)} (compared with {column}): "
                  "leave that condition out, or use a value the question names", literal)
    return tree


# ---------------------------------------------------------------------------------------- 7
def row_limit(tree: exp.Expression, ctx: RuleContext) -> exp.Expression:
    """LIMIT the outermost query (a set operation as a whole) to at most max_rows; returns a copy."""
    current = tree.args.get("limit")  # exp.Limit, or exp.Fetch for FETCH FIRST n ROWS ONLY
    if current is None:
        return tree.limit(ctx.max_rows, copy=True)
    options = current.args.get("limit_options")  # FETCH FIRST n PERCENT / WITH TIES, LIMIT n WITH TIES
    if options is not None and (options.args.get("percent") or options.args.get("with_ties")):
        _fail("row_limit", "unsupported_limit", "PERCENT / WITH TIES limits cannot be capped", current)
    count = current.args.get("count") if isinstance(current, exp.Fetch) else current.expression
    # Only a plain non-negative integer can be capped without changing meaning; `LIMIT -1` (SQLite:
    # unlimited), `LIMIT ALL`, `LIMIT (SELECT ...)` would need evaluating, so they are refused.
    if count is None or not (isinstance(count, exp.Literal) and count.is_int):
        _fail("row_limit", "limit_not_literal", f"LIMIT must be an integer literal, got "
              f"'{count.sql() if count else current.sql()}'", current)
    return tree.limit(min(int(count.this), ctx.max_rows), copy=True)


# ---------------------------------------------------------------------------------------- 8
def render_sql(tree: exp.Expression, dialect: str) -> str:
    """The SQL that runs. comments=False: a comment can carry `/*! ... */` or confuse a reader."""
    return tree.sql(dialect=dialect, comments=False, unsupported_level=ErrorLevel.RAISE)


def regenerates(tree: exp.Expression, ctx: RuleContext) -> exp.Expression:
    """Render in the target dialect, re-parse that text and re-check it: what runs is what passed."""
    try:
        text = render_sql(tree, ctx.dialect)
    except UnsupportedError as e:
        _fail("regenerates", "unsupported_in_dialect", f"cannot be written in {ctx.dialect}: {e}", tree)
    again = replace(ctx, sql=text, read_dialect=ctx.dialect)
    try:
        out: Any = text
        for rule in (parses, single_statement, read_only, safe_functions, known_tables):
            out = rule(out, again)
        # ... and still carries its LIMIT: capping it again must change nothing.
        if row_limit(out, again).sql(dialect=ctx.dialect) != out.sql(dialect=ctx.dialect):
            _fail("regenerates", "roundtrip_failed", "regenerated SQL lost its row limit")
    except RuleViolation as v:
        if v.rule == "regenerates":
            raise
        _fail("regenerates", "roundtrip_failed", f"regenerated SQL fails {v.rule}: {v.message}")
    return tree


RULES: tuple[Rule, ...] = (
    parses, single_statement, read_only, safe_functions, known_tables, known_columns, joins_connect,
    grounded_literals, row_limit, regenerates,
)
