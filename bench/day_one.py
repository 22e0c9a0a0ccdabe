"""Day-one questions on the default server: what a new user asks first, after `make run`.

    .venv/bin/python -m bench.day_one                       # starts `hearth serve` as `make run` does
    .venv/bin/python -m bench.day_one --base-url http://127.0.0.1:8000 --api-key KEY
    .venv/bin/python -m bench.day_one --set sql.template_first=false   # a server setting changed

bench/data/day_one.jsonl holds plain questions about the sample database (counts, top N, group
by, a filter on a named value, one join), worded by hand and not by the sample's question
generator. Part `dev` is what changes are judged on; part `held` is reported and never tuned on.
Each question goes to POST /v1/sql; its rows are compared with the gold query's rows on the same
database (server/sql/compare.py: column order free, extra columns allowed as in defog's
sql-eval, row order only when the gold orders).
Printed: each question's verdict and SQL, then right/total per part and p50 latency.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import API_KEY, median, print_table, start_hearth  # noqa: E402

QUESTIONS = Path(__file__).parent / "data" / "day_one.jsonl"


def load_questions(path: Path = QUESTIONS) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def score(questions: list[dict], ask, sqlite_path: Path) -> list[dict]:
    """Each question asked through `ask(question) -> /v1/sql body`, judged against its gold rows."""
    from server.sql.compare import Gold, compare_to_gold, is_ordered

    conn = sqlite3.connect(f"file:{sqlite_path}?mode=ro", uri=True)
    out = []
    for q in questions:
        gold = Gold(conn.execute(q["sql"]).fetchall(), ordered=is_ordered(q["sql"]))
        t0 = time.perf_counter()
        body = ask(q["question"])
        seconds = time.perf_counter() - t0
        rows = (body.get("result") or {}).get("rows") if body.get("status") == "ok" else None
        # Extra columns are allowed, as defog's sql-eval allows them: "Which suppliers are in
        # Germany?" is answered by their names, with or without their cities.
        right = compare_to_gold(rows, [gold], allow_extra_columns=True).correct
        out.append({"id": q["id"], "part": q["part"], "question": q["question"], "right": right,
                    "status": body.get("status"), "sql": body.get("sql"), "seconds": round(seconds, 2)})
    conn.close()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", default=None, help="a running server (default: start one like `make run`)")
    parser.add_argument("--api-key", default=API_KEY)
    parser.add_argument("--database", default="sample")
    parser.add_argument("--set", dest="settings", action="append", default=[], metavar="KEY=VALUE",
                        help="a server setting for the started server, as HEARTH_ env (sql.draft=false)")
    parser.add_argument("--json", default=None, help="write the per-question results here")
    args = parser.parse_args(argv)

    from server.settings import ServerSettings
    from server.sql.sample.paths import ensure_sample_database, sample_sqlite_path

    ensure_sample_database(ServerSettings().databases)
    server = None
    if args.base_url is None:
        env = {"HEARTH_" + k.replace(".", "__").upper(): v for k, v in (s.split("=", 1) for s in args.settings)}
        server = start_hearth("embedded:smollm2", n_threads=2, n_ctx=2048, env=env)
        args.base_url = server.base_url
    http = httpx.Client(base_url=args.base_url, headers={"Authorization": f"Bearer {args.api_key}"}, timeout=600)
    try:
        results = score(load_questions(), lambda q: http.post(
            "/v1/sql", json={"question": q, "database": args.database}).json(), sample_sqlite_path())
    finally:
        http.close()
        if server is not None:
            server.stop()
    for r in results:
        print(f"{'RIGHT' if r['right'] else 'wrong'}  {r['id']}  {r['question']}\n       {r['status']}: {r['sql']}")
    rows = []
    for part in ("dev", "held"):
        mine = [r for r in results if r["part"] == part]
        rows.append([part, f"{sum(r['right'] for r in mine)}/{len(mine)}", f"{median([r['seconds'] for r in mine]):.2f}"])
    print_table(["part", "right", "p50 s"], rows, title=f"day-one questions on {args.base_url}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
