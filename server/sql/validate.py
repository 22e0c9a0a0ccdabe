"""Run the rules in `rules.RULES` over one statement and report every rule's outcome.

`validate_sql` never raises for a rejected statement: the Text-to-SQL endpoint shows the report
(which rule, which code, where) to the client and to the model for a retry. Callers that need an
exception raise `server.errors.SqlRejected` themselves from the report.

Dialects: `dialect` is the dialect the SQL text is written in (default: the schema's). The output
is always in `schema.dialect`, because that is the engine that will run it.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any

from server.sql import rules as _rules
from server.sql.grounding import Grounding
from server.sql.rules import RuleContext, RuleViolation, render_sql
from server.sql.schema import DatabaseSchema

log = logging.getLogger(__name__)


@dataclass
class RuleOutcome:
    rule: str
    passed: bool | None  # None: not run, because an earlier rule failed
    message: str | None = None
    line: int | None = None
    col: int | None = None


@dataclass
class ValidationReport:
    valid: bool
    sql: str | None  # regenerated from the AST, in `dialect`; None when rejected
    dialect: str
    checks: list[RuleOutcome] = field(default_factory=list)
    failed_rule: str | None = None
    code: str | None = None
    message: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def validate_sql(
    sql: str, schema: DatabaseSchema, *, dialect: str | None = None, max_rows: int = 1000,
    grounding: Grounding | None = None,
) -> ValidationReport:
    """`grounding`: the question the SQL answers, for generated SQL (rules.grounded_literals)."""
    if max_rows < 1:
        raise ValueError("max_rows must be at least 1")  # a configuration bug, not a client error
    ctx = RuleContext(
        sql=sql,
        schema=schema,
        read_dialect=dialect or schema.dialect,
        dialect=schema.dialect,
        max_rows=max_rows,
        mapping=schema.to_sqlglot_mapping(),
        grounding=grounding,
    )
    report = ValidationReport(valid=False, sql=None, dialect=schema.dialect)
    tree: Any = sql
    for rule in _rules.RULES:
        name = rule.__name__
        if report.failed_rule is not None:  # stop at the first failure; later rules are "not run"
            report.checks.append(RuleOutcome(name, None))
            continue
        try:
            tree = rule(tree, ctx)
        except RuleViolation as v:
            _reject(report, name, v.code, v.message, v.line, v.col)
        except Exception as e:  # noqa: BLE001 - fail closed: a crashing check must not let SQL through
            log.exception("SQL rule %s crashed", name)
            _reject(report, name, "internal_error", f"{name} could not check the statement: {e}")
        else:
            report.checks.append(RuleOutcome(name, True))
    if report.failed_rule is None:
        report.valid = True
        # The same deterministic rendering `regenerates` re-parsed and re-checked.
        report.sql = render_sql(tree, schema.dialect)
    return report


def _reject(report: ValidationReport, rule: str, code: str, message: str,
            line: int | None = None, col: int | None = None) -> None:
    report.checks.append(RuleOutcome(rule, False, message, line, col))
    report.failed_rule, report.code, report.message = rule, code, message
