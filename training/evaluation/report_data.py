"""Reading numbers out of an evaluation report, for the headline table, the plots and the gate.

The report (a plain dict, written as report.json) looks like:

    {"meta": {...}, "headline_mode": "constrained", "sql_splits": ["sample", "defog"],
     "variants": {"base": {"path", "kind", "size_mb",
                           "sql": {split: {mode: summary}},          # sql_summary.summarise
                           "mc": {set: {"n", "acc", "acc_norm", "by_subject"}},   # acc in 0..1
                           "open_ended": {"mean", "n"}}, ...},
     "baseline": {"sql": {split: summary}},
     "sql_records": {variant or "baseline": {split: {mode: [record, ...]}}},
     "gate": {"passed", "reasons", "checks"}}

Every accessor returns None when the number is not in the report (a set not run, an HF variant
that is not served for SQL), so a table cell shows "-" and the gate can say what is missing.
Accuracies come out in percent.
"""

from __future__ import annotations

MC_GENERAL = "general"
DEFAULT_MODE = "constrained"

# (key, column title) of the headline table, in order.
HEADLINE = (
    ("sql_ex", "SQL EX sample %"),
    ("sql_seen", "seen %"),
    ("sql_unseen", "unseen %"),
    ("defog_ex", "defog EX %"),
    ("idk_refusal", "idk refusal %"),
    ("mc_general", "MC general %"),
    ("open_mean", "open-ended mean"),
    ("size_mb", "size MB"),
)


def headline_mode(report: dict) -> str:
    return report.get("headline_mode") or DEFAULT_MODE


def sql_summary(report: dict, variant: str, split: str) -> dict | None:
    if variant == "baseline":
        return (report.get("baseline") or {}).get("sql", {}).get(split)
    runs = report.get("variants", {}).get(variant, {}).get("sql", {}).get(split) or {}
    return runs.get(headline_mode(report)) or (next(iter(runs.values())) if runs else None)


def sql_ex(report: dict, variant: str, split: str) -> float | None:
    return (sql_summary(report, variant, split) or {}).get("ex_pct")


def sql_seen(report: dict, variant: str, seen: bool, split: str = "sample") -> float | None:
    return ((sql_summary(report, variant, split) or {}).get("by_seen_shape") or {}).get(str(seen), {}).get("ex_pct")


def refusal(report: dict, variant: str, split: str = "defog_idk") -> float | None:
    return (sql_summary(report, variant, split) or {}).get("refusal_pct")


def mc_acc(report: dict, variant: str, mc_set: str = MC_GENERAL) -> float | None:
    acc = report.get("variants", {}).get(variant, {}).get("mc", {}).get(mc_set, {}).get("acc")
    return None if acc is None or acc != acc else round(100.0 * acc, 1)  # acc is a fraction; nan: no items


def open_mean(report: dict, variant: str) -> float | None:
    return (report.get("variants", {}).get(variant, {}).get("open_ended") or {}).get("mean")


def headline_rows(report: dict) -> list[dict]:
    """One row per variant, then the template baseline (SQL columns only)."""
    rows = []
    names = list(report.get("variants", {})) + (["baseline"] if report.get("baseline") else [])
    for name in names:
        v = report.get("variants", {}).get(name, {})
        rows.append({"variant": name, "sql_ex": sql_ex(report, name, "sample"),
                     "sql_seen": sql_seen(report, name, True), "sql_unseen": sql_seen(report, name, False),
                     "defog_ex": sql_ex(report, name, "defog"), "idk_refusal": refusal(report, name),
                     "mc_general": mc_acc(report, name), "open_mean": open_mean(report, name),
                     "size_mb": v.get("size_mb")})
    return rows
