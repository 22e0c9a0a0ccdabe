"""A template that does what its question asks the other way round, turned the right way.

Retrieval finds the nearest pair, and the nearest pair often asks the mirror question: "the
cheapest" finds "the most expensive", "cities with a customer or a supplier" finds "cities with
both". When none of the searched shapes goes the question's way, the cue that names the way
(server/sql/cues.py) can only rank the wrong one lower; these rules write the mirror query. Each
is a small pure function of a sqlglot tree, as server/sql/rules.py's are, tied to the cue it
answers. `repaired(question, sql)` applies the rules whose cue the question asks and the query
contradicts, and keeps a result only when it agrees with the question better than the query did:
superlatives and set operations both ways (issue 21, "data that covers new shapes").
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import sqlglot
from sqlglot import exp

from server.sql.cues import CUES, top_select, tree_agreement


@lru_cache(maxsize=32)
def _default_nulls_first(desc: bool, dialect: str) -> bool:
    """Where `dialect` puts NULLs in a plain ASC or DESC: a flipped key keeps the dialect's default
    (SQLite's DESC puts them last, its ASC first) instead of spelling out NULLS LAST."""
    order = sqlglot.parse_one(f"SELECT 1 ORDER BY x {'DESC' if desc else 'ASC'}", read=dialect).args["order"]
    return bool(order.expressions[0].args.get("nulls_first"))


def flip_direction(tree: exp.Expression, dialect: str) -> exp.Expression | None:
    """ORDER BY's first key the other way when the query keeps the first rows (a LIMIT), MAX <-> MIN:
    "the most" <-> "the least". An ordered list without a cut is no superlative ("lead time of 7
    days max", "minimum 3 accounts" are bounds): flipping those lost a right answer on the
    paraphrased dev set."""
    tree = tree.copy()
    changed = False
    order = top_select(tree).args.get("order")
    if order is not None and order.expressions and top_select(tree).args.get("limit") is not None:
        first = order.expressions[0]
        desc = not first.args.get("desc")
        first.set("desc", desc)
        first.set("nulls_first", _default_nulls_first(desc, dialect))
        changed = True
    for node in list(tree.find_all(exp.Max, exp.Min)):
        kind = exp.Min if isinstance(node, exp.Max) else exp.Max
        node.replace(kind(this=node.this.copy()))
        changed = True
    return tree if changed else None


def swap_set_operation(tree: exp.Expression, dialect: str) -> exp.Expression | None:
    """UNION <-> INTERSECT at the top: "a customer or a supplier" <-> "both"."""
    if not isinstance(tree, (exp.Union, exp.Intersect)):
        return None
    kind = exp.Intersect if isinstance(tree, exp.Union) else exp.Union
    swapped = kind(this=tree.this.copy(), expression=tree.expression.copy(), distinct=True)
    for key in ("order", "limit", "offset"):
        if tree.args.get(key) is not None:
            swapped.set(key, tree.args[key].copy())
    return swapped


Repair = Callable[[exp.Expression, str], exp.Expression | None]
# (the cues a query must contradict for the rule to apply, the rule)
REPAIRS: tuple[tuple[frozenset[str], Repair], ...] = (
    (frozenset({"most", "least"}), flip_direction),
    (frozenset({"either", "both"}), swap_set_operation),
)


def repaired(question: str, sql: str, dialect: str = "sqlite") -> list[str]:
    """The queries the rules make of `sql` that agree better with `question` than `sql` does."""
    try:
        tree = sqlglot.parse_one(sql, read=dialect)
    except sqlglot.errors.SqlglotError:
        return []
    verdicts = {cue.name: v for cue in CUES if (v := cue.verdict(question, tree)) is not None}
    contradicted = {name for name, holds in verdicts.items() if not holds}
    before = len(verdicts) - 2 * len(contradicted)  # tree_agreement(question, tree), already known
    out = []
    for cues, rule in REPAIRS:
        if not cues & contradicted:
            continue
        fixed = rule(tree, dialect)
        if fixed is not None and tree_agreement(question, fixed) > before:
            out.append(fixed.sql(dialect=dialect))
    return out
