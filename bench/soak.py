"""Soak: mixed traffic against one `hearth serve` on loopback for a bounded time, per-minute figures
and the hardening goals of issue 26 checked at the end.

    python -m bench.soak                 # 10 minutes, 12 clients
    python -m bench.soak --minutes 2 --clients 8

Traffic (each client draws the next request at random, seeded): chat; streamed chat, a third of
the streams dropped by the client after a few chunks; completions; embeddings; /v1/sql on the
sample SQLite database and on the same data in PostgreSQL (127.0.0.1:5432, loaded into
`--pg-database`); malformed requests (bad JSON, wrong types, unknown model or database, a bad
key) and oversized ones (a prompt past the context, a 1 MB body).

Each minute: requests by status, p50/p99 time to first token (streams) and latency (every answered
request), completion tokens/s, the server's RSS and open descriptors, and database connections
(PostgreSQL backends Hearth holds, and how many are not idle; descriptors open on the SQLite file).

Goals, printed with PASS/FAIL (exit 1 when one fails):
  - no 5xx;
  - every error in OpenAI's shape, {"error": {"message", "type", "param", "code"}};
  - RSS growth after the first `window` minutes < 5% (window = 2, or half a shorter run);
  - p99 TTFT drift between the first and the last window < 25%;
  - no leaked connections or descriptors: idle after the run, no PostgreSQL backend of Hearth's
    is busy, at most the pool's size stay open, and the server holds no more descriptors than
    idle after the warm-up (+2).
The load on the box is measured as in bench/common.py: other work on shared cores makes latency
figures noisy; the run says how much there was (exit 3 when over --max-load, if no goal failed).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.common import API_KEY, EXIT_UNRELIABLE, PROMPTS, add_load_args, exit_on_sigterm, guard_from_args, \
    percentile, print_table, start_hearth

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
SQL_QUESTIONS = [
    "How many customers are in each segment?",
    "Who are the top 5 customers by order count?",  # the question behind issue 26's 504s
    "How many orders were placed in 2024?",
    "Which suppliers are in Germany?",
    "What is the average price of products in each category?",
    "List the 10 most expensive products.",
    "How many shipments did each carrier handle?",
    "Which employees work in the sales department?",
]
KINDS = {  # kind -> weight
    "chat": 18, "stream": 24, "completion": 10, "embedding": 10, "sql_sqlite": 10, "sql_pg": 10,
    "malformed": 10, "oversized": 8,
}
ERROR_KEYS = {"message", "type", "param", "code"}


@dataclass
class Record:
    t: float  # seconds since the start of the run, at the end of the request
    kind: str
    status: int  # HTTP status; 0: the client dropped the stream on purpose; -1: transport error
    latency: float
    ttft: float | None = None
    tokens: int = 0
    shape_ok: bool = True  # a non-2xx body in OpenAI's error shape
    answer: str | None = None  # /v1/sql: the answer's status (ok, timeout, too_costly, ...)


def error_shape_ok(r: httpx.Response) -> bool:
    try:
        err = r.json()["error"]
    except (ValueError, KeyError, TypeError):
        return False
    return isinstance(err, dict) and ERROR_KEYS <= err.keys() and isinstance(err["message"], str) and bool(err["message"])


class Traffic:
    def __init__(self, base_url: str, args, started: float):
        self.base, self.args, self.started = base_url, args, started
        self.records: list[Record] = []
        self.headers = {"Authorization": f"Bearer {API_KEY}"}

    def record(self, kind: str, t0: float, status: int, **kw) -> None:
        end = time.perf_counter()
        self.records.append(Record(end - self.started, kind, status, end - t0, **kw))

    async def client(self, seed: int, stop_at: float) -> None:
        rng = random.Random(seed)
        kinds, weights = zip(*KINDS.items())
        async with httpx.AsyncClient(base_url=self.base, headers=self.headers, timeout=600) as http:
            while time.perf_counter() < stop_at:
                kind = rng.choices(kinds, weights)[0]
                t0 = time.perf_counter()
                try:
                    await getattr(self, kind)(http, rng, t0)
                except httpx.HTTPError as exc:  # a transport error is a failure of the server too
                    print(f"  {kind}: {type(exc).__name__}: {exc}", file=sys.stderr)
                    self.record(kind, t0, -1)

    async def _json(self, http, kind: str, t0: float, path: str, body, tokens_of=None, **kw) -> None:
        r = await http.post(path, json=body, **kw) if not isinstance(body, (str, bytes)) else \
            await http.post(path, content=body, headers={"content-type": "application/json", **kw.get("headers", {})})
        tokens = tokens_of(r.json()) if (tokens_of and r.status_code == 200) else 0
        answer = r.json().get("status") if path == "/v1/sql" and r.status_code == 200 else None
        self.record(kind, t0, r.status_code, tokens=tokens, shape_ok=r.status_code < 400 or error_shape_ok(r),
                    answer=answer)

    async def chat(self, http, rng, t0) -> None:
        body = {"model": "bench", "messages": [{"role": "user", "content": rng.choice(PROMPTS)}],
                "max_tokens": rng.randint(8, self.args.max_tokens), "temperature": 0.7}
        await self._json(http, "chat", t0, "/v1/chat/completions", body, lambda b: b["usage"]["completion_tokens"])

    async def completion(self, http, rng, t0) -> None:
        body = {"model": "bench", "prompt": rng.choice(PROMPTS), "max_tokens": rng.randint(8, self.args.max_tokens)}
        await self._json(http, "completion", t0, "/v1/completions", body, lambda b: b["usage"]["completion_tokens"])

    async def embedding(self, http, rng, t0) -> None:
        body = {"model": "bench", "input": [rng.choice(PROMPTS) for _ in range(rng.randint(1, 4))]}
        await self._json(http, "embedding", t0, "/v1/embeddings", body)

    async def sql_sqlite(self, http, rng, t0) -> None:
        await self._json(http, "sql_sqlite", t0, "/v1/sql", {"question": rng.choice(SQL_QUESTIONS), "database": "sample"})

    async def sql_pg(self, http, rng, t0) -> None:
        await self._json(http, "sql_pg", t0, "/v1/sql", {"question": rng.choice(SQL_QUESTIONS), "database": "sample_pg"})

    async def stream(self, http, rng, t0) -> None:
        drop_after = rng.randint(2, 8) if rng.random() < 1 / 3 else None
        body = {"model": "bench", "messages": [{"role": "user", "content": rng.choice(PROMPTS)}],
                "max_tokens": rng.randint(16, self.args.max_tokens), "stream": True,
                "stream_options": {"include_usage": True}}
        ttft, chunks, tokens = None, 0, 0
        async with http.stream("POST", "/v1/chat/completions", json=body) as r:
            if r.status_code != 200:
                await r.aread()
                self.record("stream", t0, r.status_code, shape_ok=error_shape_ok(r))
                return
            async for line in r.aiter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                chunk = json.loads(line[6:])
                if chunk.get("usage"):
                    tokens = chunk["usage"]["completion_tokens"]
                if chunk.get("choices") and chunk["choices"][0]["delta"].get("content"):
                    ttft = ttft if ttft is not None else time.perf_counter() - t0
                    chunks += 1
                    if drop_after is not None and chunks >= drop_after:
                        break  # leaving the block closes the connection mid-stream
        self.record("stream", t0, 0 if drop_after is not None and chunks >= drop_after else 200, ttft=ttft,
                    tokens=tokens or chunks)

    async def malformed(self, http, rng, t0) -> None:
        choice = rng.randrange(6)
        if choice == 0:
            await self._json(http, "malformed", t0, "/v1/chat/completions", '{"messages": [')
        elif choice == 1:
            await self._json(http, "malformed", t0, "/v1/chat/completions", {"model": "bench"})
        elif choice == 2:
            await self._json(http, "malformed", t0, "/v1/chat/completions",
                             {"messages": [{"role": "user", "content": "hi"}], "temperature": "hot"})
        elif choice == 3:
            await self._json(http, "malformed", t0, "/v1/chat/completions",
                             {"model": "no-such-model", "messages": [{"role": "user", "content": "hi"}]})
        elif choice == 4:
            await self._json(http, "malformed", t0, "/v1/sql", {"question": "How many orders?", "database": "nope"})
        else:
            await self._json(http, "malformed", t0, "/v1/embeddings", {"input": "x"},
                             headers={"Authorization": "Bearer wrong-key"})

    async def oversized(self, http, rng, t0) -> None:
        # A prompt past the context window: 6,000 tokens, or a 1 MB body.
        words = "lorem ipsum " * (3000 if rng.random() < 0.5 else 90_000)
        body = {"model": "bench", "messages": [{"role": "user", "content": words}], "max_tokens": 8}
        await self._json(http, "oversized", t0, "/v1/chat/completions", body)


# -- server-side sampling -----------------------------------------------------------------------

def pg_connections(dsn: str, database: str) -> tuple[int, int]:
    """(backends Hearth holds on `database`, those not idle)."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute("SELECT state FROM pg_stat_activity WHERE application_name = 'hearth-sql' "
                            "AND datname = %s", (database,)).fetchall()
    return len(rows), sum(1 for (state,) in rows if state != "idle")


def proc_sample(pid: int, sqlite_path: Path) -> dict:
    with open(f"/proc/{pid}/status") as f:
        rss_kb = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    fds = os.listdir(f"/proc/{pid}/fd")
    on_sqlite = 0
    for fd in fds:
        try:
            on_sqlite += os.readlink(f"/proc/{pid}/fd/{fd}").startswith(str(sqlite_path))
        except OSError:
            pass
    return {"rss_mib": rss_kb / 1024, "fds": len(fds), "sqlite_fds": on_sqlite}


class Sampler(threading.Thread):
    def __init__(self, pid: int, sqlite_path: Path, pg_dsn: str, pg_db: str, started: float, every: float = 5.0):
        super().__init__(daemon=True)
        self.args = (pid, sqlite_path, pg_dsn, pg_db)
        self.started, self.every = started, every
        self.samples: list[dict] = []
        self.halt = threading.Event()

    def take(self) -> dict:
        pid, sqlite_path, pg_dsn, pg_db = self.args
        sample = proc_sample(pid, sqlite_path) | {"t": time.perf_counter() - self.started}
        sample["pg_conns"], sample["pg_busy"] = pg_connections(pg_dsn, pg_db)
        return sample

    def run(self) -> None:
        while not self.halt.wait(self.every):
            self.samples.append(self.take())


# -- report -------------------------------------------------------------------------------------

def per_minute(records: list[Record], samples: list[dict], minutes: int) -> list[list]:
    """One row a minute, by when each request ended; a last row ("end") for those still in flight
    when the traffic stopped."""
    rows = []
    for m in range(minutes + 1):
        upper = (m + 1) * 60 if m < minutes else float("inf")
        recs = [r for r in records if m * 60 <= r.t < upper]
        smp = [s for s in samples if m * 60 <= s["t"] < upper] or [{}]
        if m == minutes and not recs:
            break
        ttfts = [r.ttft for r in recs if r.ttft is not None]
        lat = [r.latency for r in recs if r.status == 200]
        statuses = Counter("drop" if r.status == 0 else str(r.status) for r in recs)
        rows.append([m + 1 if m < minutes else "end", len(recs), " ".join(f"{k}:{v}" for k, v in sorted(statuses.items())),
                     percentile(ttfts, 50) if ttfts else float("nan"), percentile(ttfts, 99) if ttfts else float("nan"),
                     percentile(lat, 50) if lat else float("nan"), percentile(lat, 99) if lat else float("nan"),
                     sum(r.tokens for r in recs if r.kind in ("chat", "stream", "completion")) / 60,
                     max(s.get("rss_mib", float("nan")) for s in smp), max(s.get("fds", 0) for s in smp),
                     f"{max(s.get('pg_conns', 0) for s in smp)}/{max(s.get('pg_busy', 0) for s in smp)}",
                     max(s.get("sqlite_fds", 0) for s in smp)])
    return rows


def goals(records, samples, idle_before: dict, idle_after: dict, minutes: float, pool_size: int) -> list[tuple]:
    window = min(2.0, minutes / 2) * 60
    end = minutes * 60
    five = [r for r in records if r.status >= 500 or r.status == -1]
    bad_shape = [r for r in records if not r.shape_ok]
    after = [s["rss_mib"] for s in samples if s["t"] >= window]
    at_window = next((s["rss_mib"] for s in samples if s["t"] >= window), float("nan"))
    growth = (max(after) - at_window) / at_window if after else float("nan")
    first = [r.ttft for r in records if r.ttft is not None and r.t < window]
    last = [r.ttft for r in records if r.ttft is not None and r.t >= end - window]
    p99_first, p99_last = (percentile(first, 99) if first else float("nan")), (percentile(last, 99) if last else float("nan"))
    drift = (p99_last - p99_first) / p99_first if first and last else float("nan")
    leaks = (idle_after["pg_busy"] == 0 and idle_after["pg_conns"] <= pool_size
             and idle_after["fds"] <= idle_before["fds"] + 2)
    by_kind = Counter((r.kind, r.status) for r in five + bad_shape)
    return [
        ("no 5xx (or transport errors)", not five, f"{len(five)} of {len(records)}" + (f" {dict(by_kind)}" if five else "")),
        ("every error in OpenAI's shape", not bad_shape, f"{len(bad_shape)} not"),
        (f"RSS growth after {window / 60:g} min < 5%", growth < 0.05,
         f"{at_window:.0f} -> max {max(after) if after else float('nan'):.0f} MiB ({growth:+.1%})"),
        (f"p99 TTFT drift, first vs last {window / 60:g} min < 25%", drift < 0.25,
         f"{p99_first:.3f} s -> {p99_last:.3f} s ({drift:+.1%}; {len(first)} and {len(last)} streams)"),
        ("no leaked connections or descriptors", leaks,
         f"idle before/after: fds {idle_before['fds']}/{idle_after['fds']}, PostgreSQL backends "
         f"{idle_before['pg_conns']}/{idle_after['pg_conns']} (busy {idle_after['pg_busy']}, pool {pool_size}), "
         f"SQLite fds {idle_before['sqlite_fds']}/{idle_after['sqlite_fds']}"),
    ]


async def run_clients(traffic: Traffic, clients: int, stop_at: float, seed: int) -> None:
    await asyncio.gather(*(traffic.client(seed * 1000 + i, stop_at) for i in range(clients)))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0, help="how long the traffic runs (10)")
    ap.add_argument("--clients", type=int, default=12, help="concurrent clients, 8-16 (12)")
    ap.add_argument("--model", default="embedded:smollm2", help="what `hearth serve --model` serves")
    ap.add_argument("--n-threads", type=int, default=2)
    ap.add_argument("--n-ctx", type=int, default=2048, help="context per slot")
    ap.add_argument("--n-slots", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=64, help="upper bound of each generation's max_tokens")
    ap.add_argument("--pg-database", default="hearth_soak", help="PostgreSQL database the sample is loaded into")
    ap.add_argument("--seed", type=int, default=0)
    add_load_args(ap)
    args = ap.parse_args(argv)
    exit_on_sigterm()

    from server.sql.readonly import POOL_SIZE
    from server.sql.sample.load import load_postgres
    from server.sql.sample.paths import default_sample_config, ensure_sample_database
    from server.sql.settings import parse_url

    import yaml

    pg_url = f"postgresql://postgres@127.0.0.1:5432/{args.pg_database}"
    loaded = load_postgres(pg_url, readonly_user=None)
    print(f"PostgreSQL: sample loaded into {args.pg_database} ({sum(loaded['rows'].values())} rows)")
    sqlite = default_sample_config()
    ensure_sample_database([sqlite])
    config = {"databases": [sqlite.model_dump(exclude_none=True),
                            {"name": "sample_pg", "url": pg_url, "examples_path": sqlite.examples_path}]}
    cfg = Path(tempfile.mkdtemp(prefix="hearth-soak-")) / "hearth.yaml"
    cfg.write_text(yaml.safe_dump(config))
    sqlite_path = Path(parse_url(sqlite.url).database).resolve()

    guard = guard_from_args(args)
    server = start_hearth(args.model, n_threads=args.n_threads, n_ctx=args.n_ctx, n_slots=args.n_slots,
                          extra=("--config", str(cfg)))
    print(f"server pid {server.proc.pid} on {server.base_url}, {args.clients} clients, {args.minutes:g} min")
    try:
        # Warm-up: every kind once, so pools, caches and the databases' value indexes exist.
        warm = Traffic(server.base_url, args, time.perf_counter())
        asyncio.run(_warm(warm))
        sampler = Sampler(server.proc.pid, sqlite_path, PG_ADMIN, args.pg_database, time.perf_counter())
        time.sleep(2)
        idle_before = sampler.take()
        started = time.perf_counter()
        sampler.started = started
        traffic = Traffic(server.base_url, args, started)
        sampler.start()
        with guard.measure("soak") as load:
            asyncio.run(run_clients(traffic, args.clients, started + args.minutes * 60, args.seed))
        sampler.halt.set()
        sampler.join()
        time.sleep(3)  # overflow connections close as they are returned; keep-alive sockets close
        idle_after = sampler.take()
    finally:
        server.stop()

    minutes = max(1, round(args.minutes + 0.49))
    print_table(["min", "reqs", "by status", "ttft p50", "ttft p99", "lat p50", "lat p99", "tok/s", "RSS MiB",
                 "fds", "pg conns/busy", "sqlite fds"], per_minute(traffic.records, sampler.samples, minutes),
                title="Per minute (TTFT: streamed chat; latency: requests answered 200; drop: a stream the "
                      "client closed on purpose)")
    kinds, latencies = defaultdict(Counter), defaultdict(list)
    for r in traffic.records:
        kinds[r.kind]["drop" if r.status == 0 else str(r.status)] += 1
        latencies[r.kind].append(r.latency)
    print_table(["kind", "by status", "lat p50", "lat p99"],
                [[k, " ".join(f"{s}:{n}" for s, n in sorted(c.items())), percentile(latencies[k], 50),
                  percentile(latencies[k], 99)] for k, c in sorted(kinds.items())], title="By kind (latency: all)")
    answers = Counter(f"{r.kind}:{r.answer}" for r in traffic.records if r.answer)
    print("\n/v1/sql answers (200) by status: " + (", ".join(f"{k} {n}" for k, n in sorted(answers.items())) or "none"))
    results = goals(traffic.records, sampler.samples, idle_before, idle_after, args.minutes, POOL_SIZE)
    print("\nGoals")
    for name, ok, detail in results:
        print(f"  {'PASS' if ok else 'FAIL'}  {name}: {detail}")
    print(f"\nload on the box: other work used {load.before:.0%} of all cores before, {load.during:.0%} during "
          f"({'quiet' if load.reliable else 'NOISY: latency and TTFT figures are not comparable'})")
    if not all(ok for _, ok, _ in results):
        return 1
    return 0 if load.reliable else EXIT_UNRELIABLE


async def _warm(traffic: Traffic) -> None:
    rng = random.Random(-1)
    async with httpx.AsyncClient(base_url=traffic.base, headers=traffic.headers, timeout=600) as http:
        for kind in KINDS:
            await getattr(traffic, kind)(http, rng, time.perf_counter())
    bad = [r for r in traffic.records if r.status >= 500 or r.status == -1]
    if bad:
        print(f"warm-up: {len(bad)} failed ({', '.join(f'{r.kind} {r.status}' for r in bad)})", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
