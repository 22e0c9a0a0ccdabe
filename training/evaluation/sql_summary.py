"""Scoring one Text-to-SQL answer against its gold, and the summary of a run's records.

A record is one item's outcome: status (`ok`, `unanswerable`, `rejected`, `execution_error`,
`http_<code>`, or the baseline's `no_examples`), the rows it returned (dropped once scored),
attempts and the validator rule each failed attempt broke, latency. `score` adds the verdict:

  correct         rows equal one gold variant's (server/sql/compare.py: order-insensitive unless
                  the gold has a top-level ORDER BY, float tolerance, any column order)
  correct_subset  the same, extra predicted columns allowed (defog's sql-eval rule)
  gold_empty      the gold result is empty: a query that selects nothing matches, so these items
                  are reported apart and left out of the headline accuracy
  refused         for an unanswerable question: did the model say so (status unanswerable)
  unscorable      an answerable question none of whose gold variants ran
"""

from __future__ import annotations

import statistics
from collections import Counter

from server.sql.compare import compare_to_gold


def score(item, record: dict) -> dict:
    """`record` plus the item's identity and its verdict; the rows themselves are dropped."""
    record = {"id": item.id, "category": item.category, "seen_shape": item.seen_shape} | record
    if item.answerable and not item.golds:
        record["unscorable"] = True  # no gold variant runs on this database: scored for no one
    elif item.answerable:
        strict = compare_to_gold(record["rows"], item.golds)
        loose = compare_to_gold(record["rows"], item.golds, allow_extra_columns=True)
        record |= {"correct": strict.correct, "correct_subset": loose.correct, "gold_empty": strict.gold_empty}
    else:
        record["refused"] = record["status"] == "unanswerable"
    record.pop("rows")
    return record


def pct(num: int, den: int) -> float | None:
    """Percentage with one decimal; None when there is nothing to divide by."""
    return round(100.0 * num / den, 1) if den else None


def percentile(values, q: float) -> float:
    """Linear-interpolated percentile, q in [0, 100]; nan for no values."""
    xs = sorted(values)
    if not xs:
        return float("nan")
    k = (len(xs) - 1) * q / 100
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def summarise(records: list[dict], latency_ok: bool = True) -> dict:
    """Execution accuracy (overall, by category, by seen/unseen shape, by who wrote the answer when
    not only the model did), empty-gold items apart,
    validity, rejections by rule, self-correction rescues, latency p50/p95 (ms).

    `latency_ok` False withholds latency (other work shared the cores while measuring).
    """
    n = len(records)
    status = Counter(r["status"] for r in records)
    out: dict = {"n": n, "status": dict(status), "valid_pct": pct(status["ok"], n)}
    answerable = [r for r in records if "correct" in r]
    if answerable:
        main = [r for r in answerable if not r["gold_empty"]]
        empty = [r for r in answerable if r["gold_empty"]]
        out |= {
            "ex_pct": pct(sum(r["correct"] for r in main), len(main)), "n_scored": len(main),
            "ex_subset_pct": pct(sum(r["correct_subset"] for r in main), len(main)),
            "empty_gold": {"n": len(empty), "ex_pct": pct(sum(r["correct"] for r in empty), len(empty))},
            "by_category": _breakdown(main, "category"),
        }
        if any(r["seen_shape"] is not None for r in main):
            out["by_seen_shape"] = _breakdown([r for r in main if r["seen_shape"] is not None], "seen_shape")
        if any(r.get("source") not in (None, "model") for r in main):  # who wrote the answers (sql.template_first)
            out["by_source"] = _breakdown([r | {"source": r.get("source") or "none"} for r in main], "source")
    out["unscorable"] = sum(1 for r in records if r.get("unscorable"))
    refusals = [r for r in records if "refused" in r]
    if refusals:
        out["refusal_pct"] = pct(sum(r["refused"] for r in refusals), len(refusals))
    rejected = [r for r in records if r["status"] == "rejected"]
    out["rejected_pct"] = pct(len(rejected), n)
    out["rejected_by_rule"] = dict(Counter(r["failed_rule"] for r in rejected).most_common())
    # Every failed attempt, final or corrected later: which rules the model trips over most.
    out["attempt_rejections_by_rule"] = dict(Counter(x for r in records for x in r["attempt_rules"]).most_common())
    rescued = [r for r in records if r["status"] == "ok" and r["attempts"] > 1]
    out["rescues"] = {"n": len(rescued), "correct": sum(bool(r.get("correct")) for r in rescued)}
    latencies = [r["latency_ms"] for r in records]
    if latency_ok and latencies:
        out["latency_ms"] = {"p50": round(percentile(latencies, 50), 1), "p95": round(percentile(latencies, 95), 1),
                             "mean": round(statistics.fmean(latencies), 1)}
    else:
        out["latency_ms"] = None  # withheld (other work shared the cores) or nothing measured
    return out


def _breakdown(records: list[dict], key: str) -> dict:
    groups: dict[str, list[dict]] = {}
    for r in records:
        groups.setdefault(str(r[key]), []).append(r)
    return {k: {"n": len(v), "ex_pct": pct(sum(r["correct"] for r in v), len(v))} for k, v in sorted(groups.items())}
