"""Edits of a template: the queries next to a retrieved one, for questions no pair's shape asks.

Template retrieval (server/sql/baseline.py) can only return a shape some training pair has. A
question of a new shape is often one structural step from a known one: "ordered in 2023 but not
in 2024" is "ordered in both 2023 and 2024" with EXCEPT for INTERSECT; "in which cities in Sweden
do we have customers" is one branch of "cities in Sweden with a customer or a supplier". These
rules make those neighbours. They add candidates and never choose: the model reads each one and
scores the asked question after it (`sql.template_choice = "model"`, server/sql/choice.py), so an
edit that asks something else makes the question unlikely and loses to the template.

Like sqlglot's optimizer, the rules are a tuple of small pure functions, each taking a parsed
query and returning the edited copies (an empty list when it does not apply); `edits()` runs them
and renders each result from the AST. Literals are kept, so an edit of a template that fits the
question fits it too. Every edit still goes through the validator before anything runs.

Each rule keeps the candidate count small (every candidate costs the model ~60-100 prompt tokens
to score), so only structural switches with a clear reading are here:

  * swap_set_operation: UNION ↔ INTERSECT ↔ EXCEPT ("both" / "or" / "but not");
  * single_branch:      one side of a set operation alone, still de-duplicated as the set
                        operation was ("cities where we have customers").

Negating a subquery (EXISTS ↔ NOT EXISTS) was tried: the un-adapted model chose 5 such edits on
the sample's 215 test questions and none was right, so it is not a rule.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import sqlglot
from sqlglot import exp

from .choice import ScoredCandidate

Rule = Callable[[exp.Expression], list[exp.Expression]]

_SET_OPERATIONS = (exp.Union, exp.Intersect, exp.Except)
_CARRIED = ("order", "limit", "offset")  # modifiers of a set operation that belong to its result


def swap_set_operation(tree: exp.Expression) -> list[exp.Expression]:
    """A top-level UNION, INTERSECT or EXCEPT as each of the other two, same branches and order.
    UNION ALL is left alone: it keeps duplicates on purpose (counts stacked in one table)."""
    if not isinstance(tree, _SET_OPERATIONS) or (isinstance(tree, exp.Union) and not tree.args.get("distinct")):
        return []
    out = []
    for kind in _SET_OPERATIONS:
        if isinstance(tree, kind):
            continue
        args = {k: (v.copy() if isinstance(v, exp.Expression) else v) for k, v in tree.args.items() if v is not None}
        args["distinct"] = True
        out.append(kind(**args))
    return out


def single_branch(tree: exp.Expression) -> list[exp.Expression]:
    """Each side of a top-level set operation of two SELECTs, alone, with the operation's ORDER BY
    and LIMIT. UNION, INTERSECT and EXCEPT return distinct rows, so the branch gets DISTINCT."""
    if not isinstance(tree, _SET_OPERATIONS):
        return []
    distinct = bool(tree.args.get("distinct"))
    out = []
    for side in (tree.this, tree.expression):
        if not isinstance(side, exp.Select):
            continue
        branch = side.copy()
        if distinct and not branch.args.get("distinct"):
            branch.set("distinct", exp.Distinct())
        for key in _CARRIED:
            if tree.args.get(key) is not None and branch.args.get(key) is None:
                branch.set(key, tree.args[key].copy())
        out.append(branch)
    return out


RULES: tuple[Rule, ...] = (swap_set_operation, single_branch)


@dataclass(frozen=True)
class Edit:
    sql: str
    rule: str  # the rule's name, e.g. "swap_set_operation"


def edits(sql: str, dialect: str = "sqlite", rules: Sequence[Rule] = RULES) -> list[Edit]:
    """The edited queries of `sql`, in rule order, without repeats and without `sql` itself.
    SQL that does not parse has no edits."""
    try:
        tree = sqlglot.parse_one(sql, read=dialect)
    except sqlglot.errors.SqlglotError:
        return []
    if tree is None:
        return []
    seen = {tree.sql(dialect=dialect)}
    out = []
    for rule in rules:
        for edited in rule(tree):
            try:
                text = edited.sql(dialect=dialect)
            except sqlglot.errors.SqlglotError:
                continue
            if text not in seen:
                seen.add(text)
                out.append(Edit(text, rule.__name__))
    return out


def with_edits(templates: Sequence[ScoredCandidate], dialect: str = "sqlite") -> list[ScoredCandidate]:
    """The templates, then each one's edits with its retrieval rank and the rule's name; a query
    already offered is not offered again (INTERSECT's swap to UNION may be another template)."""
    out = list(templates)
    offered = {t.sql for t in templates}
    for template in templates:
        for edit in edits(template.sql, dialect):
            if edit.sql not in offered:
                offered.add(edit.sql)
                out.append(ScoredCandidate(sql=edit.sql, rank=template.rank, edit=edit.rule))
    return out
