"""Fixtures of the Text-to-SQL service tests."""

from __future__ import annotations

import pytest


@pytest.fixture()
def reject_sql(monkeypatch):
    """`reject_sql(when)`: from now on the validator rejects (rule "test_rule") every query for
    which `when(sql)` is true, as if it broke a rule, and passes the rest as it would."""
    from server.services import text_to_sql

    real = text_to_sql.validate_sql

    def install(when) -> None:
        def validate(sql, *args, **kwargs):
            report = real(sql, *args, **kwargs)
            if when(sql):
                report.valid, report.failed_rule, report.message = False, "test_rule", "rejected by the test"
            return report

        monkeypatch.setattr(text_to_sql, "validate_sql", validate)

    return install
