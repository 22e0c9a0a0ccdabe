"""Hand-made evaluation reports (report_data.py's shape) for the gate, report and plot tests."""

from __future__ import annotations


def sql_summary(ex: float | None, seen: float | None = None, unseen: float | None = None, *,
                refusal: float | None = None, latency: float = 900.0) -> dict:
    s = {"n": 10, "status": {"ok": 9, "rejected": 1}, "valid_pct": 90.0, "ex_pct": ex, "ex_subset_pct": ex,
         "n_scored": 9, "empty_gold": {"n": 1, "ex_pct": 100.0}, "by_category": {"join": {"n": 9, "ex_pct": ex}},
         "unscorable": 0, "rejected_pct": 10.0, "rejected_by_rule": {"columns_exist": 1},
         "attempt_rejections_by_rule": {"columns_exist": 2}, "rescues": {"n": 1, "correct": 1},
         "latency_ms": {"p50": latency, "p95": 2 * latency, "mean": latency}}
    if seen is not None:
        s["by_seen_shape"] = {"True": {"n": 5, "ex_pct": seen}, "False": {"n": 4, "ex_pct": unseen}}
    if refusal is not None:
        s["refusal_pct"] = refusal
    return s


def make_report(*, adapted: float = 60.0, q8: float = 59.5, q4: float = 55.0, baseline: float = 40.0,
                base_mc: float = 0.50, q8_mc: float = 0.49, base: float = 20.0) -> dict:
    """base (HF-free GGUF), adapted f16, Q8_0, Q4_K_M and the baseline, SQL EX in %, MC acc as fractions."""
    def variant(ex, mc, size, path):
        records = [{"id": f"i{k}", "status": "ok", "latency_ms": 500.0 + 100 * k} for k in range(5)]
        return ({"path": path, "kind": "gguf", "size_mb": size,
                 "sql": {"sample": {"constrained": sql_summary(ex, ex + 5, ex - 5)},
                         "defog_idk": {"constrained": sql_summary(None, refusal=20.0)}},
                 "mc": {"general": {"n": 50, "acc": mc, "acc_norm": mc, "by_subject": {}}},
                 "open_ended": {"mean": 3.2, "n": 12}},
                {"sample": {"constrained": records}})

    variants, records = {}, {}
    for name, ex, mc, size in (("base", base, base_mc, 270.0), ("adapted", adapted, 0.50, 540.0),
                               ("Q8_0", q8, q8_mc, 145.0), ("Q4_K_M", q4, 0.47, 105.0)):
        variants[name], records[name] = variant(ex, mc, size, f"/models/{name}.gguf")
    return {"meta": {"name": "test", "started": "2026-01-01T00:00:00Z", "sql_limit": 10, "mc_limit": 50},
            "headline_mode": "constrained", "sql_splits": ["sample", "defog_idk"], "variants": variants,
            "baseline": {"sql": {"sample": sql_summary(baseline, baseline, 0.0)}}, "sql_records": records}
