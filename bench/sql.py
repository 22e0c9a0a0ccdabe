"""Text-to-SQL benchmark: execution accuracy, validity, rejections, rescues and latency of /v1/sql.

    .venv/bin/python bench/sql.py [--splits sample,defog,defog_idk] [--limit N] [--out report.json]

A thin script over the library (training/evaluation/sql_accuracy.py, which `hearth eval` uses
too): it starts a real Hearth server on a free port with a generated config listing the sample
database and each defog SQLite file (training/evaluation/sql_data.py: the splits and where their
few-shot examples come from), posts every question to /v1/sql with schema-constrained decoding on
and then off, and scores the returned rows against the gold query's rows (server/sql/compare.py).
The rule-based baseline (server/sql/baseline.py) runs in-process on the same items.

Requests go one at a time, so latency is one request's latency on an otherwise idle box. Other
work on the cores makes it meaningless: the background load is sampled before measuring and
accounted for during each run, and latency is withheld (accuracy is still reported, it does not
depend on load) when other processes used more than --max-background cores.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from bench.common import EXIT_UNRELIABLE, LoadGuard, add_load_args, guard_from_args  # noqa: E402
from training.evaluation.sql_accuracy import MODES, evaluate_baseline, evaluate_sql_variant  # noqa: E402
from training.evaluation.sql_data import ALL_SPLITS, DEFOG_DIR, load_split, run_golds  # noqa: E402
from training.evaluation.sql_summary import score, summarise  # noqa: E402,F401 - re-exported for tests


def load_items(args) -> list:
    items = [i for split in args.splits
             for i in load_split(split, args.limit, defog_dir=args.defog_dir, instructions=not args.no_instructions)]
    run_golds(items)
    return items


def run(args, guard: LoadGuard) -> dict:
    items = load_items(args)
    gold_errors = sum(i.gold_errors for i in items)
    unscorable = [i.id for i in items if i.answerable and not i.golds]
    print(f"{len(items)} items; {gold_errors} gold variants failed to run; {len(unscorable)} items without gold")
    report: dict = {"meta": {"command": " ".join(sys.argv), "model": args.model or "embedded", "n_ctx": args.n_ctx,
                             "threads": args.threads, "splits": args.splits, "limit": args.limit,
                             "cores": os.cpu_count(), "max_load": guard.limit, "loadavg_at_start": _loadavg(),
                             "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
                    "runs": {}, "items": {}}
    if "baseline" in args.modes:
        for split, run_ in evaluate_baseline(items, defog_dir=args.defog_dir, measure=guard.measure).items():
            _store(report, split, "baseline", run_)
    model_modes = [m for m in args.modes if m != "baseline"]
    if model_modes:
        runs = evaluate_sql_variant(args.model, items, model_modes, defog_dir=args.defog_dir, n_ctx=args.n_ctx,
                                    threads=args.threads, sql={"max_attempts": args.max_attempts}, measure=guard.measure,
                                    progress=args.progress)
        for split, by_mode in runs.items():
            for mode, run_ in by_mode.items():
                _store(report, split, mode, run_)
    return report


def _loadavg() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


def _store(report: dict, split: str, mode: str, run_: dict) -> None:
    report["runs"].setdefault(split, {})[mode] = run_["summary"]
    report["items"].setdefault(split, {})[mode] = run_["records"]


# -- output -------------------------------------------------------------------------------------

def _fmt(value, suffix: str = "") -> str:
    return "-" if value is None else f"{value}{suffix}"


def print_report(report: dict) -> None:
    head = (f"{'split':<15}{'mode':<14}{'n':>4}{'EX%':>7}{'EX⊇%':>7}{'valid%':>8}{'rej%':>6}{'exec':>5}"
            f"{'refuse%':>8}{'rescue':>7}{'p50ms':>8}{'p95ms':>8}  empty-gold")
    print("\n" + head + "\n" + "-" * len(head))
    unreliable = []
    for split, runs in report["runs"].items():
        for mode, s in runs.items():
            lat = s["latency_ms"] or {}
            if s["latency_ms"] is None:
                unreliable.append(f"{split}/{mode} (other work {s['load']['before']:.0%} before, "
                                  f"{s['load']['during']:.0%} during)")
            empty = s.get("empty_gold")
            empty_text = f"{empty['ex_pct']}% of {empty['n']}" if empty and empty["n"] else ""
            print(f"{split:<15}{mode:<14}{s['n']:>4}{_fmt(s.get('ex_pct')):>7}{_fmt(s.get('ex_subset_pct')):>7}"
                  f"{_fmt(s['valid_pct']):>8}{_fmt(s['rejected_pct']):>6}{s['status'].get('execution_error', 0):>5}"
                  f"{_fmt(s.get('refusal_pct')):>8}{s['rescues']['n']:>7}{_fmt(lat.get('p50')):>8}"
                  f"{_fmt(lat.get('p95')):>8}  {empty_text}")
    print("\nEX: execution accuracy on items whose gold result is not empty; EX⊇: extra predicted columns"
          " allowed (defog's rule); rej: no attempt passed validation; exec: valid SQL the database refused;"
          " rescue: ok after a self-correction; refuse: status unanswerable (defog_idk: higher is better).")
    for split, runs in report["runs"].items():
        for mode, s in runs.items():
            parts = [f"{k} {v['ex_pct']}% ({v['n']})" for k, v in s.get("by_category", {}).items()]
            if "by_seen_shape" in s:
                seen = s["by_seen_shape"]
                parts.append(f"| seen shape {seen.get('True', {}).get('ex_pct')}%, unseen "
                             f"{seen.get('False', {}).get('ex_pct')}%")
            if parts:
                print(f"  {split}/{mode}: " + ", ".join(parts))
            if s["rejected_by_rule"]:
                print(f"  {split}/{mode} rejected by rule: {s['rejected_by_rule']}")
    if unreliable:
        print("\nWARNING: other work used the cores while measuring; latency withheld for " + ", ".join(unreliable)
              + ". Accuracy figures are unaffected. Rerun on a quiet machine for latency.")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--splits", default="sample,defog,defog_idk",
                   help=f"comma-separated, from {','.join(ALL_SPLITS)}")
    p.add_argument("--modes", default=",".join(MODES), help="comma-separated, from " + ",".join(MODES))
    p.add_argument("--limit", type=int, default=None, help="items per split (spread over categories)")
    p.add_argument("--out", default=None, help="write the JSON report (summaries and per-item records) here")
    p.add_argument("--model", default=None, help="GGUF to serve (default: the embedded SmolLM2)")
    p.add_argument("--n-ctx", type=int, default=4096,
                   help="model context; 2048 (the server default) is tight for ewallet: 1,600 schema tokens + examples")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--max-attempts", type=int, default=3)
    p.add_argument("--defog-dir", type=Path, default=DEFOG_DIR)
    p.add_argument("--no-instructions", action="store_true", help="do not append defog's instructions")
    p.add_argument("--progress", action="store_true", help="one line per question on stderr")
    add_load_args(p)
    args = p.parse_args(argv)
    args.splits = [s.strip() for s in args.splits.split(",") if s.strip()]
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    for value, allowed in ((args.splits, ALL_SPLITS), (args.modes, MODES)):
        bad = set(value) - set(allowed)
        if bad:
            p.error(f"unknown {sorted(bad)}; choose from {','.join(allowed)}")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    # SIGTERM (a timeout, a `kill`) unwinds like Ctrl-C, so the server subprocess is stopped too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    guard = guard_from_args(args)
    report = run(args, guard)
    print_report(report)
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=1, default=str), encoding="utf-8")
        print(f"\nreport written to {args.out}")
    # Exit 3 when any latency was withheld (bench/common.py's policy): accuracy still printed above.
    return EXIT_UNRELIABLE if guard.summary_exit() else 0


if __name__ == "__main__":
    sys.exit(main())
