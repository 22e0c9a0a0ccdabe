"""Schema-constrained decoding: a llama.cpp grammar (GBNF) built from the live schema.

The grammar covers the read-only SQL a Text-to-SQL model should write (SELECT with joins,
WHERE, GROUP BY/HAVING, ORDER BY/LIMIT, subqueries, UNION/INTERSECT/EXCEPT, CASE, aggregates and
a dialect's common scalar functions), and it only lets through identifiers that exist:

  - a table after FROM/JOIN is one of the schema's tables;
  - `table.column` pairs a table with one of *its* columns;
  - a bare column or `alias.column` is a column of some shown table;
  - table aliases are short (`o`, `oi`, `cat`: at most 4 characters), so that a made-up
    column name cannot pass as `made_up_alias.column`; output aliases (`AS total`) are free,
    and ORDER BY may name one.

A column that only a subquery defines is reachable through the derived table's canonical alias
(`d.n` after `(SELECT COUNT(*) AS n ...) AS d`), or by its bare name in ORDER BY. bench/sql.py measures what the grammar does
to accuracy and latency, with and without it.

It can still produce SQL the validator rejects (a column of a table not in FROM, say): the
grammar narrows the search, the validator decides. The refusal line is also allowed, so
constraining never forces an answer to an unanswerable question.

Keywords and function names are upper case and aliases start with a lower-case letter, so an
alias can never be a keyword (`SELECT.name`). Whitespace is a single space, never
optional-and-repeated, because ambiguous whitespace multiplies the parser's stacks.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from server.sql.prompt import CANNOT_ANSWER
from server.sql.schema import DatabaseSchema

# Scalar functions per dialect that gold queries commonly need (dates above all).
_FUNCTIONS = {
    "common": ("ROUND", "ABS", "LOWER", "UPPER", "LENGTH", "COALESCE", "NULLIF", "CAST", "SUBSTR", "SUBSTRING", "TRIM",
               "REPLACE"),
    "sqlite": ("STRFTIME", "DATE", "DATETIME", "TIME", "JULIANDAY", "IFNULL", "INSTR"),
    "postgres": ("DATE_TRUNC", "DATE_PART", "TO_CHAR", "EXTRACT", "NOW", "AGE"),
    "mysql": ("YEAR", "MONTH", "DAY", "DATE_FORMAT", "DATEDIFF", "DATE", "IFNULL", "EXTRACT", "NOW"),
}

_STATIC = r"""
query ::= select-stmt (sp setop sp select-stmt)* order-by? limit?
setop ::= (k-union (sp k-all)?) | k-intersect | k-except
select-stmt ::= k-select sp (k-distinct sp)? select-list (sp k-from sp from-list where? group-by? having?)?
select-list ::= select-item ("," sp? select-item)*
select-item ::= "*" | qualifier ".*" | expr (sp k-as sp alias)?
from-list ::= table-ref (join-clause | ("," sp? table-ref))*
join-clause ::= sp join-kind sp table-ref (sp k-on sp expr)?
join-kind ::= ((k-left (sp k-outer)? | k-inner | k-cross) sp)? k-join
table-ref ::= (table-name | "(" query ")") (sp (k-as sp)? short-alias)?
where ::= sp k-where sp expr
group-by ::= sp k-group sp k-by sp group-item ("," sp? group-item)*
group-item ::= expr | alias
having ::= sp k-having sp expr
order-by ::= sp k-order sp k-by sp order-item ("," sp? order-item)*
order-item ::= (expr | alias) (sp (k-asc | k-desc))? (sp k-nulls sp (k-first | k-last))?
limit ::= sp k-limit sp [0-9]+ (sp k-offset sp [0-9]+)?
expr ::= and-expr (sp k-or sp and-expr)*
and-expr ::= not-expr (sp k-and sp not-expr)*
not-expr ::= (k-not sp)? predicate
predicate ::= k-exists sp? "(" query ")" | sum predicate-tail?
predicate-tail ::= sp? cmp sp? sum | sp k-is sp (k-not sp)? k-null | sp (k-not sp)? in-tail | sp (k-not sp)? k-between sp sum sp k-and sp sum | sp (k-not sp)? k-like sp sum
in-tail ::= k-in sp? "(" (query | value-list) ")"
value-list ::= sum ("," sp? sum)*
cmp ::= "=" | "!=" | "<>" | "<=" | ">=" | "<" | ">"
sum ::= product (sp ("+" | "-" | "||") sp product)*
product ::= unary (sp ("*" | "/" | "%") sp unary)*
unary ::= "-"? primary
primary ::= number | string | k-null | k-true | k-false | aggregate | function | case-expr | cast-expr | "(" (query | expr) ")" | column-ref | date-literal
aggregate ::= agg-name "(" (k-distinct sp)? (expr | "*") ")"
agg-name ::= "COUNT" | "SUM" | "AVG" | "MIN" | "MAX"
function ::= function-name "(" (extract-arg | expr ("," sp? expr)*)? ")"
extract-arg ::= ("YEAR" | "MONTH" | "DAY") sp k-from sp expr
cast-expr ::= k-cast "(" expr sp k-as sp type-name ")"
type-name ::= ("INTEGER" | "REAL" | "TEXT" | "DATE" | "NUMERIC" | "FLOAT" | "DECIMAL" | "SIGNED" | "CHAR" | "VARCHAR") ("(" [0-9]+ ("," sp? [0-9]+)? ")")?
case-expr ::= k-case (sp sum)? (sp k-when sp expr sp k-then sp expr)+ (sp k-else sp expr)? sp k-end
date-literal ::= k-date sp string
number ::= [0-9]+ ("." [0-9]+)?
string ::= "'" ([^'\\\n] | "''")* "'"
alias ::= [a-z] [a-zA-Z0-9_]{0,30}
short-alias ::= [a-z] [a-z0-9_]{0,3}
sp ::= " "
"""

_KEYWORDS = ("select", "distinct", "from", "where", "group", "by", "having", "order", "limit", "offset",
             "as", "on", "join", "left", "inner", "union", "all", "intersect", "except", "and", "or",
             "not", "in", "is", "null", "between", "like", "exists", "case", "when", "then", "else",
             "end", "asc", "desc", "cast", "date", "nulls", "first", "last", "outer", "cross", "true", "false")


def _literal(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _alternatives(names: Sequence[str]) -> str:
    return " | ".join(_literal(n) for n in names)


def _rule_name(table: str) -> str:
    return "cols-" + "".join(ch if ch.isalnum() else "-" for ch in table.lower())


def sql_grammar(schema: DatabaseSchema, tables: Sequence[str] | None = None, *, dialect: str | None = None) -> str:
    """GBNF whose root is one SQL query over `tables` of `schema` (all tables when None)."""
    shown = [t for t in schema.tables if tables is None or t.name in set(tables)]
    return _build(tuple((t.name, tuple(c.name for c in t.columns)) for t in shown), dialect or schema.dialect)


@lru_cache(maxsize=64)
def _build(tables: tuple[tuple[str, tuple[str, ...]], ...], dialect: str) -> str:
    # Identifiers quoted with the dialect's quote are allowed too, for names that need it.
    all_columns = sorted({c for _, cols in tables for c in cols})
    functions = sorted(set(_FUNCTIONS["common"]) | set(_FUNCTIONS.get(dialect, ())))
    lines = [
        f"root ::= ({_literal(CANNOT_ANSWER)} | query) \";\"?",
        f"table-name ::= {_alternatives([t for t, _ in tables])}",
        f"column-name ::= {_alternatives(all_columns)}",
        "qualifier ::= table-name | short-alias",
        # table.column only with the table's own columns; alias.column with any shown column.
        "column-ref ::= " + " | ".join(
            [f"{_literal(t + '.')} {_rule_name(t)}" for t, _ in tables]
            + ["short-alias \".\" column-name", "derived-ref", "column-name"]
        ),
        f"function-name ::= {_alternatives(functions)}",
        # A derived table's own columns (`(SELECT COUNT(*) AS n ...) AS d` then `d.n`): canonical
        # SQL names derived tables d, d2, ... (server/sql/canonical.py).
        'derived-ref ::= "d" [2-9]? "." alias',
    ]
    lines += [f"{_rule_name(t)} ::= {_alternatives(cols)}" for t, cols in tables]
    lines += [f"k-{kw} ::= {_literal(kw.upper())}" for kw in _KEYWORDS]
    return "\n".join(lines) + "\n" + _STATIC.strip() + "\n"
