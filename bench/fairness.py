"""One API key flooding, another one asking: the quiet key's time to first token (issue 26, item 6).

Goal: with two keys, one saturating, the other's p95 TTFT stays within 2x of its unloaded figure.

A real `hearth serve` (the embedded model unless --model) with two keys, `quiet` and `flood`:
  unloaded  the quiet key alone sends --requests short streamed chats one after another
  loaded    --flood-workers threads of the flood key stream long chats back to back (a 429 is
            retried after a short pause), and meanwhile the quiet key sends the same requests
for each scenario:
  fair      no per-key limit: only the scheduler's turn-taking (server/engine/scheduler.py) and
            its queue rule protect the quiet key; a free slot goes to it first, but it must
            wait for one to free
  limited   the flood key also limited to --flood-limit concurrent requests (n_slots - 2 by
            default, limits.per_key): a slot is always free for the quiet key

Reported: quiet-key TTFT p50/p95 unloaded and loaded, their ratio, and the flood key's
completed requests, 429s and tokens/s. Load check: see bench/common.py (figures taken on a busy
machine are marked UNRELIABLE, exit status 3).

    .venv/bin/python -m bench.fairness
    .venv/bin/python -m bench.fairness --requests 10 --n-slots 4 --flood-workers 8 --scenarios limited
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import threading
import time

import httpx

from bench.common import (API_KEY, PROMPTS, add_load_args, exit_on_sigterm, guard_from_args, percentile, print_table,
                          ratio, start_hearth)

FLOOD_KEY = "bench-flood-key"
QUIET_QUESTIONS = ["What is the capital of France?", "Name a primary colour.", "What is 2 + 2?",
                   "Name a large ocean.", "What colour is the sky?"]


def key_id(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:12]


def stream_ttft(http: httpx.Client, base: str, key: str, prompt: str, max_tokens: int) -> tuple[int, float, int]:
    """(status, seconds to the first content chunk or the whole reply, completion tokens)."""
    body = {"model": "bench", "messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens,
            "temperature": 0, "stream": True, "stream_options": {"include_usage": True}}
    t0 = time.perf_counter()
    first, tokens = None, 0
    with http.stream("POST", base + "/v1/chat/completions", json=body,
                     headers={"Authorization": f"Bearer {key}"}) as r:
        if r.status_code != 200:
            r.read()
            return r.status_code, time.perf_counter() - t0, 0
        for line in r.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
            choices = chunk.get("choices")
            if first is None and choices and choices[0]["delta"].get("content"):
                first = time.perf_counter()
    return 200, (first or time.perf_counter()) - t0, tokens


def quiet_run(base: str, n: int, max_tokens: int) -> list[float]:
    ttfts = []
    with httpx.Client(timeout=600) as http:
        for i in range(n):
            status, ttft, _ = stream_ttft(http, base, API_KEY, QUIET_QUESTIONS[i % len(QUIET_QUESTIONS)], max_tokens)
            if status != 200:
                raise RuntimeError(f"the quiet key got {status}")
            ttfts.append(ttft)
    return ttfts


class Flood:
    """Worker threads streaming long chats with the flood key until stopped."""

    def __init__(self, base: str, workers: int, max_tokens: int):
        self.base, self.max_tokens = base, max_tokens
        self.stop = threading.Event()
        self.done = self.refused = self.tokens = 0
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._work, args=(i,), daemon=True) for i in range(workers)]

    def _work(self, i: int) -> None:
        with httpx.Client(timeout=600) as http:
            n = i
            while not self.stop.is_set():
                status, _, tokens = stream_ttft(http, self.base, FLOOD_KEY, PROMPTS[n % len(PROMPTS)], self.max_tokens)
                n += 1
                with self.lock:
                    if status == 200:
                        self.done, self.tokens = self.done + 1, self.tokens + tokens
                    else:
                        self.refused += 1
                if status != 200:
                    time.sleep(0.2)

    def __enter__(self):
        self.started = time.perf_counter()
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(timeout=600)
        self.seconds = time.perf_counter() - self.started


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="embedded:smollm2")
    parser.add_argument("--n-threads", type=int, default=2)
    parser.add_argument("--n-ctx", type=int, default=1024)
    parser.add_argument("--n-slots", type=int, default=8)
    parser.add_argument("--requests", type=int, default=20, help="quiet-key requests per measurement")
    parser.add_argument("--quiet-tokens", type=int, default=8)
    parser.add_argument("--flood-workers", type=int, default=16)
    parser.add_argument("--flood-tokens", type=int, default=128)
    parser.add_argument("--flood-limit", type=int, default=None, help="flood key's concurrent limit (n_slots - 2)")
    parser.add_argument("--warmup-s", type=float, default=3.0, help="flood time before the quiet key starts")
    parser.add_argument("--scenarios", nargs="+", default=["fair", "limited"], choices=["fair", "limited"])
    add_load_args(parser)
    args = parser.parse_args(argv)
    exit_on_sigterm()
    guard = guard_from_args(args)
    limit = args.flood_limit if args.flood_limit is not None else max(1, args.n_slots - 2)
    rows = []
    for scenario in args.scenarios:
        env = {"HEARTH_AUDIT__ENABLED": "false"}
        if scenario == "limited":
            env["HEARTH_LIMITS__PER_KEY"] = json.dumps([{"key_id": key_id(FLOOD_KEY), "concurrent_streams": limit}])
        extra = ("--api-keys", API_KEY, FLOOD_KEY)
        with start_hearth(args.model, n_threads=args.n_threads, n_ctx=args.n_ctx, n_slots=args.n_slots,
                          extra=extra, env=env) as server:
            quiet_run(server.base_url, 2, args.quiet_tokens)  # warm-up: the prompt template, the first decode
            with guard.measure(f"{scenario} unloaded") as rec_idle:
                idle = quiet_run(server.base_url, args.requests, args.quiet_tokens)
            with guard.measure(f"{scenario} loaded") as rec_load:
                with Flood(server.base_url, args.flood_workers, args.flood_tokens) as flood:
                    time.sleep(args.warmup_s)
                    loaded = quiet_run(server.base_url, args.requests, args.quiet_tokens)
        p95_idle, p95_load = percentile(idle, 95), percentile(loaded, 95)
        rows.append([scenario + (f" (flood <= {limit})" if scenario == "limited" else ""),
                     percentile(idle, 50) * 1000, p95_idle * 1000, percentile(loaded, 50) * 1000, p95_load * 1000,
                     ratio(p95_load, p95_idle), flood.done, flood.refused, flood.tokens / flood.seconds,
                     f"{rec_idle.tag()}; {rec_load.tag()}"])
    print_table(["scenario", "idle p50 ms", "idle p95 ms", "loaded p50 ms", "loaded p95 ms", "p95 ratio",
                 "flood done", "flood 429", "flood tok/s", "load"], rows,
                title=f"quiet key TTFT, {args.requests} requests of {args.quiet_tokens} tokens; "
                      f"flood: {args.flood_workers} workers x {args.flood_tokens} tokens; n_slots {args.n_slots}")
    for row in rows:
        verdict = "meets" if row[5] <= 2 else "misses"
        print(f"{row[0]}: loaded p95 is {row[5]:.2f}x unloaded ({verdict} the 2x goal)")
    return guard.summary_exit()


if __name__ == "__main__":
    sys.exit(main())
