"""Text-to-SQL benchmark: execution accuracy, validity, rejections, rescues and latency of /v1/sql.

    .venv/bin/python bench/sql.py [--splits sample,defog,defog_idk] [--limit N] [--out report.json]

It starts a real Hearth server (`python -m server.cli serve`) on a free port with a generated
config listing the sample database and each defog SQLite file (see bench/sql_data.py for the
splits and where their few-shot examples come from), posts every question to /v1/sql with
schema-constrained decoding on and then off, and scores the rows the server returns against
the gold query's rows, executed here on the same file read-only (server/sql/compare.py). The
rule-based baseline (server/sql/baseline.py: nearest training question + slot filling) runs
in-process on the same items, with the same pairs as its index.

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
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

import httpx  # noqa: E402
import yaml  # noqa: E402

from bench.common import (  # noqa: E402
    API_KEY, EXIT_UNRELIABLE, LoadGuard, Server, add_load_args, free_port, guard_from_args, percentile,
)
from bench.sql_data import (  # noqa: E402
    ALL_SPLITS, DEFOG_DIR, Item, connect_ro, defog_items, defog_pool, run_golds, run_sql, sample_items, write_pools,
)
from server.sql.baseline import TemplateBaseline, ValueIndex  # noqa: E402
from server.sql.compare import compare_to_gold  # noqa: E402
from server.sql.prompt import Example  # noqa: E402

MODES = ("baseline", "constrained", "unconstrained")
MAX_ROWS = 10_000  # well above any gold result here; a truncated prediction cannot match anyway


# -- the server under test ----------------------------------------------------------------------

def write_config(path: Path, port: int, items: list[Item], pools: dict, args) -> None:
    from server.sql.sample.paths import default_sample_config

    databases = []
    if any(i.split == "sample" for i in items):
        sample = default_sample_config().model_dump(exclude_none=True)
        databases.append(sample | {"max_rows": MAX_ROWS})
    for name in sorted({i.database for i in items if i.split != "sample"}):
        db_file = next(i.db_file for i in items if i.database == name)
        entry = {"name": name, "url": f"sqlite:///{db_file.resolve()}", "max_rows": MAX_ROWS}
        if pools.get(name):
            entry["examples_path"] = str(pools[name])
        databases.append(entry)
    model = {"n_ctx": args.n_ctx, "n_threads": args.threads}
    if args.model:
        model |= {"name": Path(args.model).stem, "path": args.model}
    config = {"host": "127.0.0.1", "port": port, "log_level": "warning", "api_keys": [API_KEY], "models": [model],
              "databases": databases, "sql": {"max_attempts": args.max_attempts}}
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")


# -- one prediction -----------------------------------------------------------------------------

def post_sql(client: httpx.Client, body: dict) -> tuple[int, dict]:
    r = client.post("/v1/sql", json=body)
    try:
        return r.status_code, r.json()
    except ValueError:
        return r.status_code, {}


def ask_server(client: httpx.Client, item: Item, constrained: bool) -> dict:
    body = {"question": item.question, "database": item.database, "constrained": constrained, "max_rows": MAX_ROWS}
    t0 = time.perf_counter()
    code, reply = post_sql(client, body)
    latency_ms = (time.perf_counter() - t0) * 1000
    if code != 200:
        error = (reply.get("error") or {}) if isinstance(reply, dict) else {}
        return {"status": f"http_{code}", "error": error.get("message"), "latency_ms": latency_ms, "rows": None,
                "attempts": 0, "attempt_rules": [], "failed_rule": None, "sql": None}
    result = reply.get("result")
    rows = result["rows"] if reply["status"] == "ok" and result and not result["truncated"] else None
    attempts = reply.get("attempts", [])
    return {"status": reply["status"], "sql": reply.get("sql"), "rows": rows, "latency_ms": latency_ms,
            "server_ms": reply["timings"]["total_ms"], "generation_ms": reply["timings"]["generation_ms"],
            "attempts": len(attempts), "attempt_rules": [a["failed_rule"] for a in attempts if a.get("failed_rule")],
            "failed_rule": attempts[-1].get("failed_rule") if attempts else None,
            "completion_tokens": reply["usage"]["completion_tokens"],
            "error": attempts[-1].get("error") if attempts else None}


def ask_baseline(baselines: dict, item: Item, conns: dict) -> dict:
    baseline = baselines.get(item.database)
    t0 = time.perf_counter()
    answer = baseline.answer(item.question) if baseline else None
    record = {"status": "no_examples", "sql": None, "rows": None, "attempts": 1, "attempt_rules": [],
              "failed_rule": None, "error": None}
    if answer is not None and answer.sql is not None:
        record["sql"] = answer.sql
        try:
            conn = conns.setdefault(item.db_file, connect_ro(item.db_file))
            record["rows"], record["status"] = run_sql(conn, answer.sql, 10.0), "ok"
        except Exception as exc:  # noqa: BLE001 - a broken filled template is the baseline's error
            record["status"], record["error"] = "execution_error", str(exc)
    record["latency_ms"] = (time.perf_counter() - t0) * 1000
    return record


def make_baselines(items: list[Item], args) -> dict:
    """One TemplateBaseline per server database name, indexed on the same pairs as the few-shot pool."""
    from server.sql.sample.pairs import load_pairs

    out: dict[str, TemplateBaseline | None] = {}
    values: dict[Path, ValueIndex] = {}
    for name in sorted({i.database for i in items}):
        item = next(i for i in items if i.database == name)
        index = values.setdefault(item.db_file, ValueIndex.from_sqlite(item.db_file))
        if item.split == "sample":
            pairs = [{"question": p["question"], "sql": p["sql"]} for p in load_pairs("train")]
        else:
            pairs = defog_pool(item.split, name.split(".", 1)[1], args.defog_dir)
        out[name] = TemplateBaseline([Example(p["question"], p["sql"]) for p in pairs], index) if pairs else None
    return out


# -- scoring ------------------------------------------------------------------------------------

def score(item: Item, record: dict) -> dict:
    record = {"id": item.id, "category": item.category, "seen_shape": item.seen_shape} | record
    if item.answerable and not item.golds:
        record["unscorable"] = True  # no gold variant runs on this file: scored for no one
    elif item.answerable:
        strict = compare_to_gold(record["rows"], item.golds)
        loose = compare_to_gold(record["rows"], item.golds, allow_extra_columns=True)
        record |= {"correct": strict.correct, "correct_subset": loose.correct, "gold_empty": strict.gold_empty}
    else:
        record["refused"] = record["status"] == "unanswerable"
    record.pop("rows")
    return record


def _pct(num: int, den: int) -> float | None:
    return round(100.0 * num / den, 1) if den else None


def summarise(records: list[dict], latency_ok: bool) -> dict:
    n = len(records)
    status = Counter(r["status"] for r in records)
    out: dict = {"n": n, "status": dict(status), "valid_pct": _pct(status["ok"], n)}
    answerable = [r for r in records if "correct" in r]
    if answerable:
        main = [r for r in answerable if not r["gold_empty"]]
        empty = [r for r in answerable if r["gold_empty"]]
        out |= {
            "ex_pct": _pct(sum(r["correct"] for r in main), len(main)), "n_scored": len(main),
            "ex_subset_pct": _pct(sum(r["correct_subset"] for r in main), len(main)),
            "empty_gold": {"n": len(empty), "ex_pct": _pct(sum(r["correct"] for r in empty), len(empty))},
            "by_category": _breakdown(main, "category"),
        }
        if any(r["seen_shape"] is not None for r in main):
            out["by_seen_shape"] = _breakdown(main, "seen_shape")
    out["unscorable"] = sum(1 for r in records if r.get("unscorable"))
    refusals = [r for r in records if "refused" in r]
    if refusals:
        out["refusal_pct"] = _pct(sum(r["refused"] for r in refusals), len(refusals))
    rejected = [r for r in records if r["status"] == "rejected"]
    out["rejected_pct"] = _pct(len(rejected), n)
    out["rejected_by_rule"] = dict(Counter(r["failed_rule"] for r in rejected).most_common())
    out["attempt_rejections_by_rule"] = dict(Counter(x for r in records for x in r["attempt_rules"]).most_common())
    rescued = [r for r in records if r["status"] == "ok" and r["attempts"] > 1]
    out["rescues"] = {"n": len(rescued), "correct": sum(bool(r.get("correct")) for r in rescued)}
    latencies = [r["latency_ms"] for r in records]
    if latency_ok:
        out["latency_ms"] = {"p50": round(percentile(latencies, 50), 1), "p95": round(percentile(latencies, 95), 1),
                             "mean": round(statistics.fmean(latencies), 1) if latencies else None}
    else:
        out["latency_ms"] = None  # withheld: other work shared the cores (see "load")
    return out


def _breakdown(records: list[dict], key: str) -> dict:
    groups: dict[str, list[dict]] = {}
    for r in records:
        groups.setdefault(str(r[key]), []).append(r)
    return {k: {"n": len(v), "ex_pct": _pct(sum(r["correct"] for r in v), len(v))} for k, v in sorted(groups.items())}


# -- the run ------------------------------------------------------------------------------------

def load_items(args) -> list[Item]:
    items: list[Item] = []
    for split in args.splits:
        if split == "sample":
            from server.sql.sample.generate import ensure_sample_sqlite

            items += sample_items(ensure_sample_sqlite(), args.limit)
        else:
            items += defog_items(split, args.defog_dir, args.limit, instructions=not args.no_instructions)
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
        baselines, conns = make_baselines(items, args), {}
        for split in args.splits:
            with guard.measure(f"{split}/baseline") as load:
                records = [score(i, ask_baseline(baselines, i, conns)) for i in items if i.split == split]
            _store(report, split, "baseline", records, load)
    model_modes = [m for m in args.modes if m != "baseline"]
    if model_modes:
        with tempfile.TemporaryDirectory(prefix="hearth-bench-sql-") as tmp:
            _run_model(args, items, model_modes, Path(tmp), report, guard)
    return report


def _loadavg() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


def _store(report: dict, split: str, mode: str, records: list[dict], load) -> None:
    summary = summarise(records, load.reliable)
    # Shares of all cores that other processes used just before and during this run.
    summary["load"] = {"before": round(load.before, 3), "during": round(load.during, 3), "reliable": load.reliable}
    report["runs"].setdefault(split, {})[mode] = summary
    report["items"].setdefault(split, {})[mode] = records


def _run_model(args, items, modes, tmp: Path, report: dict, guard: LoadGuard) -> None:
    pools = write_pools([s for s in args.splits if s != "sample"], args.defog_dir, tmp)
    port = free_port()
    write_config(tmp / "hearth.yaml", port, items, pools, args)
    cmd = [sys.executable, "-m", "server.cli", "serve", "--config", str(tmp / "hearth.yaml")]
    with Server("hearth-sql", cmd, port, "/ready", "hearth") as server, \
            httpx.Client(base_url=server.base_url, timeout=600,
                         headers={"Authorization": f"Bearer {API_KEY}"}) as client:
        warm = items[0]  # the first request pays for faulting the weights in: not measured
        post_sql(client, {"question": warm.question, "database": warm.database, "execute": False})
        for split in args.splits:
            split_items = [i for i in items if i.split == split]
            for mode in modes:
                records = []
                with guard.measure(f"{split}/{mode}") as load:
                    for n, item in enumerate(split_items, 1):
                        records.append(score(item, ask_server(client, item, mode == "constrained")))
                        if args.progress:
                            print(f"  {split}/{mode} {n}/{len(split_items)} {records[-1]['status']}", file=sys.stderr)
                _store(report, split, mode, records, load)


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
