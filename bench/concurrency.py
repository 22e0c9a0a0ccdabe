"""Concurrent serving: Hearth against llama.cpp's own C++ `llama-server`, `python -m
llama_cpp.server` and the batching server shipped in llama-cpp-python's source as
examples/server/server.py, on the same GGUF, thread count, context and slot count. llama-server
and the example server come from the llama-cpp-python sdist the Makefile builds the wheel from
(fetched into ~/.cache/hearth/ when missing); llama-server is compiled once per version and flags
(bench/llama_server.py, minutes). Goals (issue 25): Hearth >= 0.9x llama-server's aggregate tok/s
at c=4, 8, 16 and >= 0.95x at c=1; warm-prefix /v1/sql-shaped TTFT <= llama-server's. Older goals
(issue 6): Hearth at 8 concurrent >= 2x llama_cpp.server and >= 0.9x the raw batched-decode
ceiling; /v1/sql warm-schema TTFT <= 0.3x cold.

Sections (each can be skipped):
  ceiling   raw low-level API, no HTTP: one llama_decode per step over 8 sequences (and over 1).
            The issue's ceiling times the decode steps only, while a client's aggregate tok/s also
            pays for every request's prompt; so each interleaved ceiling pass also times the same
            8 requests with their prompts prefilled (all in one llama_decode): "with prefill".
  quant     the same raw single and 8-way decode for Q4_0, Q8_0, Q4_K_M (requantized from the
            source file into var/bench/, speed only: requantizing compounds error) and the source
  peers     openai client, streaming, temperature 0, `--max-tokens` per request, varied prompts
            that make long answers; completion tokens counted from usage; each of c workers sends
            `--rounds` requests back to back. Aggregate tok/s = all completion tokens / wall time.
            All peers stay up; each level runs `--repeats` passes per peer in alternating order, with
            a raw ceiling pass among them at the ceiling's level (see run_peers); the median pass
            counts. `hearth-lean` is Hearth read by a lean SSE client instead of the official one
            (what the server costs without the official client's parsing on the shared cores).
  shaped    /v1/sql-shaped prompts through /v1/chat/completions, the same messages to Hearth and
            llama-server (and any other peer up): the prompt /v1/sql builds (instructions + the
            sample database's ~1,300-token schema, then "Question: ..."), one request at a time.
            Each of `--shaped-rounds` rounds opens the schema with a new session line, so its
            first request is cold (nothing cached past the system prompt); `--shaped-warm` more
            questions follow on the same prefix (warm). TTFT and latency per server, with the
            prompt and cached tokens each server reports. Peers alternate within each round.
  sql       a fresh Hearth per `--sql-few-shot-k` value: one chat request (engine warm-up), then
            /v1/sql questions on the sample database; the first is cold (no schema prefix
            cached), later ones are warm. The cached prefix is instructions + schema; retrieved
            examples, the question and the draft follow it, so k sets the uncached tail.

Load check: see bench/common.py (figures on a busy machine are marked UNRELIABLE, exit status 3).

    .venv/bin/python -m bench.concurrency          # full run
    .venv/bin/python -m bench.concurrency --peers hearth llama-server --skip-ceiling --quant-types \\
        --sql-questions 0 --repeats 1 --max-tokens 64   # Hearth against llama-server only
    .venv/bin/python -m bench.concurrency --concurrency 1 2 --max-tokens 16 --rounds 1 \\
        --quant-types Q4_0 --sql-questions 3       # quick check
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import subprocess
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import llama_cpp
from llama_cpp._internals import LlamaModel

from bench.common import (API_KEY, CACHE, PROMPTS, ROOT, LoadGuard, add_load_args, guard_from_args, median,
                          exit_on_sigterm, percentile, print_table, ratio, start_example_server, start_hearth, start_llama_cpp_server,
                          stream_chat, stream_chat_async, stream_chat_sse)
from bench.llama_server import (SQL_HEADERS, ensure_example_server, ensure_llama_server, ratio_headers, ratio_rows,
                                sql_rows, start_llama_server)
from bench.raw import QUANT_TYPES, RawModel, quantized
from server.settings import EMBEDDED_MODEL, resolve_model_path

# hearth-lean: the same Hearth server read by the lean SSE client (bench/common.py stream_chat_sse)
# instead of the official one; every other peer is driven by the official openai client.
# hearth-async: the same server through openai.AsyncOpenAI (one event loop), whatever --official-client says.
PEERS = ["hearth", "hearth-lean", "hearth-async", "llama-server", "llama_cpp.server", "example-server"]


def raw_decode(path: Path, args, guard: LoadGuard, label: str) -> dict:
    """Single-stream and `--ceiling-seqs`-way batched greedy decode tok/s, raw low-level API."""
    n = args.ceiling_seqs
    m = RawModel(path, n_threads=args.n_threads, n_ctx=args.n_ctx, n_seqs=n)
    try:
        prompts = [m.chat_tokens(PROMPTS[i % len(PROMPTS)]) for i in range(n)]
        m.batched(prompts[:1], 8)  # warm-up
        with guard.measure(f"{label} x1") as r1:
            single = m.batched(prompts[:1], args.max_tokens)
        with guard.measure(f"{label} x{n}") as rn:
            multi = m.batched(prompts, args.max_tokens)
    finally:
        m.close()
    return {"single": single, "multi": multi, "load": f"{r1.tag()}; {rn.tag()}",
            "reliable": r1.reliable and rn.reliable}


def drive(server, concurrency: int, args, guard: LoadGuard, count_tokens, *, client_kind: str = "threads",
          name: str | None = None) -> dict:
    """`concurrency` workers, each sending `--rounds` streaming requests back to back, through the
    official openai client: one thread per worker ("threads"), or openai.AsyncOpenAI with every
    worker in one event loop ("async"); or through the lean SSE client ("lean"). Besides the rates
    it records the CPU time the client (this process) and the server process spent per completion
    token: on a 2-core box both come out of the same cores as the decode threads."""
    client = server.client()
    http = httpx.Client(timeout=600, limits=httpx.Limits(max_connections=concurrency + 2))

    def prompt(i: int, r: int) -> str:
        return PROMPTS[(i * args.rounds + r) % len(PROMPTS)]

    def worker(i: int):
        if client_kind == "lean":
            return [stream_chat_sse(http, server.base_url, server.model, prompt(i, r), args.max_tokens)
                    for r in range(args.rounds)]
        return [stream_chat(client, server.model, prompt(i, r), args.max_tokens) for r in range(args.rounds)]

    async def all_async():
        aclient = server.async_client()

        async def aworker(i: int):
            return [await stream_chat_async(aclient, server.model, prompt(i, r), args.max_tokens)
                    for r in range(args.rounds)]

        try:
            return [r for rs in await asyncio.gather(*map(aworker, range(concurrency))) for r in rs]
        finally:
            await aclient.close()

    label = name or server.name + {"threads": "", "async": "-async", "lean": "-lean"}[client_kind]
    try:
        with guard.measure(f"{label} c={concurrency}") as rec:
            cpu_client0, cpu_server0 = time.process_time(), server.cpu_seconds()
            t0 = time.perf_counter()
            if client_kind == "async":
                results = asyncio.run(all_async())
            else:
                with ThreadPoolExecutor(concurrency) as pool:
                    results = [r for rs in pool.map(worker, range(concurrency)) for r in rs]
            wall = time.perf_counter() - t0
            cpu_client, cpu_server = time.process_time() - cpu_client0, server.cpu_seconds() - cpu_server0
    finally:
        http.close()
    for r in results:  # no usage in the stream: count the tokens of the text it sent
        if not r.from_usage:
            r.tokens = count_tokens(r.text)
    tokens = sum(r.tokens for r in results)
    return {
        "peer": label, "c": concurrency, "client_ms_tok": 1000 * cpu_client / max(tokens, 1),
        "server_ms_tok": 1000 * cpu_server / max(tokens, 1), "requests": results, "tokens": tokens, "n": len(results), "tps": tokens / wall,
        "p50": median(r.latency for r in results), "p95": percentile([r.latency for r in results], 95),
        "ttft50": median(r.ttft for r in results), "ttft95": percentile([r.ttft for r in results], 95),
        "tok_req": tokens / len(results), "usage": all(r.from_usage for r in results),
        "load": rec.tag(), "reliable": rec.reliable,
    }


def run_peers(path: Path, args, guard: LoadGuard, count_tokens) -> tuple[list[dict], list[float]]:
    """Every peer is started up front and idles between its turns. For each concurrency level the
    peers take `--repeats` passes in alternating order (A B C, C B A, ...), and at the ceiling's
    level a raw ceiling pass (one llama_decode over `--ceiling-seqs` sequences, in this process)
    runs among them. This VM's speed drifts by 20% within minutes (other tenants on the host); run
    one after the other, each peer would be measured at a different speed. Interleaved, a drift
    falls on every peer and on the ceiling alike, and ratios are taken between medians."""
    servers: dict[str, object] = {}
    raw = None
    try:
        for name in [*args.peers, *(f"hearth@{i}" for i in args.stream_intervals)]:
            if name in ("hearth-lean", "hearth-async") and "hearth" in servers:
                servers[name] = servers["hearth"]  # the same server, read by another client
                continue
            try:
                servers[name] = start_peer(name, path, args)
            except RuntimeError as exc:
                print(f"\n{name} did not start (skipped): {str(exc)[-1500:]}")
                continue
            stream_chat(servers[name].client(), servers[name].model, PROMPTS[-1], 8)  # warm-up
        if not args.skip_ceiling and args.ceiling_seqs in args.concurrency:
            raw = RawModel(path, n_threads=args.n_threads, n_ctx=args.n_ctx, n_seqs=args.ceiling_seqs)
            ceiling_prompts = [raw.chat_tokens(PROMPTS[i % len(PROMPTS)]) for i in range(args.ceiling_seqs)]
            raw.batched(ceiling_prompts[:1], 8)  # warm-up
        passes: dict[tuple[str, int], list[dict]] = {}
        ceiling_passes: list[float] = []
        for c in args.concurrency:
            modes = list(servers) + (["ceiling"] if raw is not None and c == args.ceiling_seqs else [])
            for rep in range(args.repeats):
                for mode in (modes if rep % 2 == 0 else modes[::-1]):
                    if mode == "ceiling":
                        with guard.measure(f"ceiling x{c} pass {rep + 1}") as rec:
                            tps = raw.batched(ceiling_prompts, args.max_tokens)
                            with_prefill = raw.batched(ceiling_prompts, args.max_tokens, with_prefill=True)
                        ceiling_passes.append((tps, with_prefill))
                        print(f"  ceiling x{c} pass {rep + 1}: {tps:.1f} tok/s decode only, {with_prefill:.1f} with "
                              f"the prompts' prefill  [{rec.tag()}]", flush=True)
                        continue
                    idle = {n: s.cpu_seconds() for n, s in servers.items() if s is not servers[mode]}
                    t0 = time.perf_counter()
                    kind = {"hearth-lean": "lean", "hearth-async": "async"}.get(mode, args.official_client)
                    r = drive(servers[mode], c, args, guard, count_tokens, client_kind=kind, name=mode)
                    busy = [n for n, v in idle.items()
                            if servers[n].cpu_seconds() - v > 0.05 * (time.perf_counter() - t0)]
                    if busy:  # an idle peer that burns CPU would make every figure noise
                        r["load"] += f" (idle peers busy: {', '.join(busy)})"
                        r["reliable"] = False
                    passes.setdefault((mode, c), []).append(r)
                    print(f"  {mode} c={c} pass {rep + 1}: {r['tps']:.1f} tok/s  p50 {r['p50']:.2f}s  CPU ms/token "
                          f"client {r['client_ms_tok']:.2f} server {r['server_ms_tok']:.2f}  [{r['load']}]", flush=True)
        if args.shaped_rounds and raw is not None:
            raw.close()  # frees its memory before the shaped pass
            raw = None
        shaped = sql_shaped(servers, args, guard) if args.shaped_rounds else {}
    finally:
        if raw is not None:
            raw.close()
        for server in {id(s): s for s in servers.values()}.values():
            server.stop()
    return [_pool(rs) for rs in passes.values()], ceiling_passes, shaped


def _pool(rs: list[dict]) -> dict:
    """One row from several passes: the median pass rate, latencies over all requests."""
    reqs = [q for r in rs for q in r["requests"]]
    tokens = sum(r["tokens"] for r in rs)
    return {
        "peer": rs[0]["peer"], "c": rs[0]["c"], "n": len(reqs), "tps": median([r["tps"] for r in rs]),
        "passes": [r["tps"] for r in rs],
        "p50": median([q.latency for q in reqs]), "p95": percentile([q.latency for q in reqs], 95),
        "ttft50": median([q.ttft for q in reqs]), "ttft95": percentile([q.ttft for q in reqs], 95),
        "tok_req": tokens / len(reqs), "usage": all(q.from_usage for q in reqs),
        "client_ms_tok": median([r["client_ms_tok"] for r in rs]), "server_ms_tok": median([r["server_ms_tok"] for r in rs]),
        "load": "; ".join(sorted({r["load"] for r in rs})), "reliable": all(r["reliable"] for r in rs),
    }


def start_peer(name: str, path: Path, args):
    if name.startswith("hearth@"):  # hearth@N: --stream-interval N, N tokens per SSE chunk
        return start_hearth(str(path), n_threads=args.n_threads, n_ctx=args.n_ctx, n_slots=args.n_slots,
                            extra=(*shlex.split(args.hearth_args), "--stream-interval", name.split("@")[1]))
    if name in ("hearth", "hearth-lean", "hearth-async"):
        return start_hearth(str(path), n_threads=args.n_threads, n_ctx=args.n_ctx, n_slots=args.n_slots,
                            extra=tuple(shlex.split(args.hearth_args)))
    if name == "llama_cpp.server":
        return start_llama_cpp_server(str(path), n_threads=args.n_threads, n_ctx=args.n_ctx)
    if name == "llama-server":  # built (or found in the cache) by main() before any server starts
        return start_llama_server(str(path), n_threads=args.n_threads, n_ctx=args.n_ctx, n_slots=args.n_slots,
                                  binary=args.llama_server)
    script = args.example_server or ensure_example_server()
    return start_example_server(script, str(path), n_threads=args.n_threads, n_ctx=args.n_ctx,
                                n_slots=args.n_slots)


# -- /v1/sql-shaped prompts on every server ---------------------------------------------------

def shaped_questions(n: int) -> list[str]:
    """Different questions, one per SQL shape, from the sample database's test pairs."""
    questions, shapes = [], set()
    for row in map(json.loads, (ROOT / "server/sql/sample/pairs/test.jsonl").read_text().splitlines()):
        if row["shape"] not in shapes:
            shapes.add(row["shape"])
            questions.append(row["question"])
    return questions[:n]


def shaped_rounds(schema, questions: list[str], rounds: int, warm: int) -> list[list[tuple[str, list[dict]]]]:
    """`rounds` lists of (kind, messages): the first request of a round is cold, then `warm`
    requests on the same prefix. The messages are /v1/sql's (server/sql/prompt.py, no examples,
    no draft: the tail is "Question: ..."), with a session line ahead of the instructions that
    changes each round, so a round's first request finds nothing of its schema cached."""
    from server.sql.prompt import sql_messages

    out = []
    for r in range(rounds):
        reqs = []
        for i in range(warm + 1):
            q = questions[(r * (warm + 1) + i) % len(questions)]
            messages = sql_messages(schema, q)
            messages[0] = {**messages[0], "content": f"Session {r + 1:03d}.\n" + messages[0]["content"]}
            reqs.append(("cold" if i == 0 else "warm", messages))
        out.append(reqs)
    return out


def stream_messages_sse(http, base_url: str, model: str, messages: list[dict], max_tokens: int) -> tuple:
    """One streamed chat request (lean client): (ttft s, latency s, prompt tokens, cached tokens).
    Cached tokens from usage.prompt_tokens_details, or llama-server's timings.cache_n."""
    t0 = time.perf_counter()
    first = None
    usage, timings = None, None
    body = {"model": model, "messages": messages, "max_tokens": max_tokens, "temperature": 0, "stream": True,
            "stream_options": {"include_usage": True}}
    with http.stream("POST", base_url + "/v1/chat/completions", json=body,
                     headers={"Authorization": f"Bearer {API_KEY}"}) as r:
        r.raise_for_status()
        for line in r.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            usage = chunk.get("usage") or usage
            timings = chunk.get("timings") or timings
            choices = chunk.get("choices")
            if first is None and choices and (choices[0].get("delta") or {}).get("content"):
                first = time.perf_counter()
    end = time.perf_counter()
    prompt = (usage or {}).get("prompt_tokens")
    cached = ((usage or {}).get("prompt_tokens_details") or {}).get("cached_tokens")
    if cached is None and timings:
        cached = timings.get("cache_n")
    return (first or end) - t0, end - t0, prompt, cached


def sql_shaped(servers: dict, args, guard: LoadGuard) -> dict:
    """The shaped pass over every distinct server that is up (see the module's docstring)."""
    try:
        from training.sql import load_database

        schema, _ = load_database("sample")
    except Exception as exc:  # noqa: BLE001  (the DDL's schema: no sample values, a little shorter)
        from training.sql import load_database

        print(f"  live sample schema unavailable ({exc}); using the DDL's")
        schema, _ = load_database("sample", source="ddl")
    rounds = shaped_rounds(schema, shaped_questions(12), args.shaped_rounds, args.shaped_warm)
    distinct = {n: s for n, s in servers.items() if n not in ("hearth-lean", "hearth-async") and not n.startswith("hearth@")}
    out: dict[str, list] = {n: [] for n in distinct}
    # A new connection per request: a keep-alive connection that a server closes between two
    # requests (llama-server's cpp-httplib did so here once) fails the next one before it is sent.
    http = httpx.Client(timeout=args.sql_timeout, limits=httpx.Limits(max_keepalive_connections=0))
    names = list(distinct)
    try:
        for r, reqs in enumerate(rounds):
            for name in (names if r % 2 == 0 else names[::-1]):
                server = distinct[name]
                with guard.measure(f"shaped {name} round {r + 1}") as rec:
                    for kind, messages in reqs:
                        ttft, lat, prompt, cached = stream_messages_sse(http, server.base_url, server.model, messages,
                                                                        args.shaped_max_tokens)
                        out[name].append((kind, ttft, lat, prompt, cached))
                        print(f"  shaped {name} round {r + 1} {kind}: ttft {1000 * ttft:.0f} ms, latency "
                              f"{1000 * lat:.0f} ms, cached {cached}/{prompt}", flush=True)
                print(f"  shaped {name} round {r + 1}: [{rec.tag()}]", flush=True)
    finally:
        http.close()
    return out


def sql_ttft(path: Path, args, guard: LoadGuard, few_shot_k: int) -> dict:
    lines = (ROOT / "server/sql/sample/pairs/test.jsonl").read_text().splitlines()
    questions, shapes = [], set()
    for row in map(json.loads, lines):  # different questions, one per SQL shape
        if row["shape"] not in shapes:
            shapes.add(row["shape"])
            questions.append(row["question"])
    questions = questions[: args.sql_questions]
    server = start_hearth(str(path), n_threads=args.n_threads, n_ctx=args.n_ctx, n_slots=args.n_slots,
                          extra=tuple(shlex.split(args.hearth_args)), env={"HEARTH_SQL__FEW_SHOT_K": str(few_shot_k)})
    out = []
    try:
        stream_chat(server.client(), server.model, PROMPTS[0], 8)  # warms the engine, caches no schema
        with guard.measure(f"sql ttft k={few_shot_k}") as rec:
            for q in questions:
                try:  # one attempt: TTFT is the first attempt's anyway, and retries only add time
                    r = httpx.post(server.base_url + "/v1/sql", timeout=args.sql_timeout,
                                   headers={"Authorization": f"Bearer {API_KEY}"},
                                   json={"question": q, "database": "sample", "execute": False, "max_attempts": 1,
                                         "model": server.model})
                except httpx.TimeoutException:
                    print(f"  /v1/sql {q!r}: no answer in {args.sql_timeout:.0f} s")
                    out.append((q, None, None, None))
                    continue
                if r.status_code != 200:
                    print(f"  /v1/sql {q!r}: HTTP {r.status_code} {r.text[:300]}")
                    out.append((q, None, None, None))
                    continue
                u = r.json()["usage"]
                out.append((q, u["time_to_first_token_ms"], u["cached_tokens"], u["prompt_tokens"]))
                print(f"  /v1/sql {'cold' if len(out) == 1 else 'warm'}: ttft {u['time_to_first_token_ms']} ms, "
                      f"cached {u['cached_tokens']}/{u['prompt_tokens']}", flush=True)
    finally:
        server.stop()
    return {"rows": out, "load": rec.tag(), "reliable": rec.reliable}


def _vocab_only():
    params = llama_cpp.llama_model_default_params()
    params.vocab_only = True
    return params


def main() -> int:
    exit_on_sigterm()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=EMBEDDED_MODEL, help="GGUF path (default: the embedded model as served, Q8_0)")
    ap.add_argument("--n-threads", type=int, default=2)
    ap.add_argument("--n-ctx", type=int, default=2048, help="context per request, every peer")
    ap.add_argument("--n-slots", type=int, default=8, help="Hearth's and the example server's parallel sequences")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 8, 16])
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=1, help="requests each concurrent worker sends per pass")
    ap.add_argument("--repeats", type=int, default=3, help="passes per peer and level, interleaved across peers")
    ap.add_argument("--ceiling-seqs", type=int, default=8)
    ap.add_argument("--peers", nargs="*", default=[p for p in PEERS if p != "hearth-async"], choices=PEERS)
    ap.add_argument("--official-client", choices=["threads", "async"], default="threads",
                    help="how the official openai client drives c streams: c threads (openai.OpenAI) or one "
                         "event loop (openai.AsyncOpenAI)")
    ap.add_argument("--example-server", type=Path, default=None,
                    help="examples/server/server.py to run (default: unpacked from the cached llama-cpp-python "
                         "sdist, fetched with pip when missing)")
    ap.add_argument("--llama-server", type=Path, default=None,
                    help="llama-server binary to run (default: built from the llama-cpp-python sdist with the wheel's "
                         "flags and cached in ~/.cache/hearth/llama-server-<version>-<flags hash>/; minutes the first time)")
    ap.add_argument("--build-nice", type=int, default=15, help="niceness of the llama-server build")
    ap.add_argument("--quant-types", nargs="*", default=["Q4_0", "Q8_0", "Q4_K_M", "Q4_1"], choices=list(QUANT_TYPES),
                    help="raw decode per quantization type; give the flag alone to skip")
    ap.add_argument("--sql-questions", type=int, default=6, help="0 skips the /v1/sql warm/cold measurement")
    ap.add_argument("--sql-few-shot-k", type=int, nargs="+", default=[0, 3],
                    help="sql.few_shot_k values to measure /v1/sql TTFT with, one fresh server each (retrieved "
                         "examples follow the schema, so they are the uncached tail with the question and draft)")
    ap.add_argument("--shaped-rounds", type=int, default=3,
                    help="/v1/sql-shaped rounds (one cold request + --shaped-warm warm ones) on every server; 0 skips")
    ap.add_argument("--shaped-warm", type=int, default=3, help="warm requests per shaped round")
    ap.add_argument("--shaped-max-tokens", type=int, default=48, help="max_tokens of a shaped request")
    ap.add_argument("--sql-timeout", type=float, default=300, help="seconds to wait for one /v1/sql answer")
    ap.add_argument("--skip-ceiling", action="store_true")
    ap.add_argument("--stream-intervals", type=int, nargs="*", default=[],
                    help="also run Hearth with these --stream-interval values (peers hearth@N, official client)")
    ap.add_argument("--hearth-args", default="", help="extra `hearth serve` flags, e.g. \"--prefill-chunk 256\"")
    add_load_args(ap)
    args = ap.parse_args()
    guard = guard_from_args(args)
    path = resolve_model_path(args.model)
    print("load average at start (1/5/15 min): {:.2f} {:.2f} {:.2f} on {} cores".format(*os.getloadavg(), os.cpu_count()))
    if "llama-server" in args.peers and args.llama_server is None:
        try:  # before any server starts: the first build takes minutes and must not share the cores with one
            args.llama_server = ensure_llama_server(nice=args.build_nice)
        except (subprocess.CalledProcessError, OSError, RuntimeError) as exc:
            print(f"\nllama-server could not be built (skipped): {exc}")
            args.peers = [p for p in args.peers if p != "llama-server"]
    print(f"model {path.name}, n_threads {args.n_threads}, n_ctx {args.n_ctx}, n_slots {args.n_slots}, "
          f"max_tokens {args.max_tokens}, temperature 0, concurrency {args.concurrency} x {args.rounds} rounds, "
          f"{args.repeats} interleaved passes")

    ceiling = None
    if not args.skip_ceiling:
        ceiling = raw_decode(path, args, guard, "ceiling")
        print_table(["raw engine", "1 seq tok/s", f"{args.ceiling_seqs} seqs tok/s", "speed-up", "load"],
                    [[path.name, ceiling["single"], ceiling["multi"], ratio(ceiling["multi"], ceiling["single"]),
                      ceiling["load"]]], title="Raw batched-decode ceiling (one llama_decode per step, no HTTP)")

    if args.quant_types:
        rows = []
        for qt in args.quant_types:
            src_type = next((t for t in QUANT_TYPES if path.stem.upper().endswith(t)), None)
            qpath = path if qt == src_type else quantized(path, qt, CACHE, args.n_threads)
            r = raw_decode(qpath, args, guard, qt)
            rows.append([qt + ("" if qpath == path else " (requantized)"), f"{qpath.stat().st_size / 2**20:.0f}",
                         r["single"], r["multi"], ratio(r["multi"], r["single"]), r["load"]])
        print_table(["type", "MiB", "1 seq tok/s", f"{args.ceiling_seqs} seqs tok/s", "speed-up", "load"], rows,
                    title=f"Quantization types, raw engine (copies in {CACHE}; requantized from "
                          f"{path.name}: for speed measurement only, accuracy compounds error)")

    vocab = LlamaModel(path_model=str(path), params=_vocab_only(), verbose=False)
    count_tokens = lambda text: len(vocab.tokenize(text.encode(), add_bos=False, special=False))  # noqa: E731
    results, ceiling_passes, shaped = run_peers(path, args, guard, count_tokens)
    if ceiling_passes:
        ceiling = dict(ceiling or {}, multi=median([d for d, _ in ceiling_passes]),
                       prefill=median([p for _, p in ceiling_passes]))
        print(f"ceiling x{args.ceiling_seqs}, passes interleaved with the peers' c={args.ceiling_seqs} passes: "
              f"decode only {', '.join(f'{d:.1f}' for d, _ in ceiling_passes)} tok/s (median {ceiling['multi']:.1f}); "
              f"with the prompts' prefill {', '.join(f'{p:.1f}' for _, p in ceiling_passes)} (median "
              f"{ceiling['prefill']:.1f})")
    if results:
        print_table(["peer", "conc", "reqs", "agg tok/s (median)", "passes tok/s", "p50 lat s", "p95 lat s",
                     "p50 TTFT s", "p95 TTFT s", "tok/req", "client CPU ms/tok", "server CPU ms/tok", "load"],
                    [[r["peer"], r["c"], r["n"], r["tps"], " ".join(f"{v:.0f}" for v in r["passes"]), r["p50"], r["p95"],
                      r["ttft50"], r["ttft95"], f"{r['tok_req']:.0f}" + ("" if r["usage"] else " (retok)"),
                      f"{r['client_ms_tok']:.2f}", f"{r['server_ms_tok']:.2f}", r["load"]] for r in results],
                    title="Concurrent streams (CPU ms/tok: CPU time per completion token, client = this process)")
        by = {(r["peer"], r["c"]): r for r in results}
        rows = []
        for c in args.concurrency:
            h = by.get(("hearth", c))
            if not h:
                continue
            row = [c]
            for peer in ("llama_cpp.server", "example-server"):
                p = by.get((peer, c))
                row += [ratio(h["tps"], p["tps"]) if p else "-", ratio(h["p95"], p["p95"]) if p else "-",
                        ratio(h["ttft50"], p["ttft50"]) if p else "-"]
            at_ceiling = ceiling and c == args.ceiling_seqs
            row.append(ratio(h["tps"], ceiling["multi"]) if at_ceiling else "-")
            lean = by.get(("hearth-lean", c))
            row.append(ratio(lean["tps"], ceiling["multi"]) if at_ceiling and lean else "-")
            rows.append(row)
        print_table(["conc", "tok/s vs lcp.server", "p95 vs lcp", "TTFT vs lcp", "tok/s vs example", "p95 vs ex",
                     "TTFT vs ex", "tok/s vs ceiling", "lean client vs ceiling"], rows,
                    title="Hearth ratios (>1 = Hearth higher; official openai client unless said)")
        goals = [("hearth", args.ceiling_seqs, "llama_cpp.server", 2.0), ("hearth", 1, "llama_cpp.server", 1.2),
                 ("hearth", args.ceiling_seqs, "ceiling", 0.9), ("hearth-lean", args.ceiling_seqs, "ceiling", 0.9),
                 ("hearth", args.ceiling_seqs, "ceiling with prefill", 0.9),
                 ("hearth-lean", args.ceiling_seqs, "ceiling with prefill", 0.9)]
        for i in args.stream_intervals:
            goals += [(f"hearth@{i}", args.ceiling_seqs, "llama_cpp.server", 2.0), (f"hearth@{i}", 1, "llama_cpp.server", 1.2),
                      (f"hearth@{i}", args.ceiling_seqs, "ceiling", 0.9)]
        for peer, c, base, goal in goals:
            h = by.get((peer, c))
            if base.startswith("ceiling"):
                key = "prefill" if base.endswith("prefill") else "multi"
                b = {"tps": ceiling[key]} if ceiling and key in ceiling else None
            else:
                b = by.get((base, c))
            if h and b:
                value = ratio(h["tps"], b["tps"])
                flag = "" if h["reliable"] else "  UNRELIABLE"
                print(f"goal {peer} c={c} >= {goal}x {base}: {value:.3f}x {'met' if value >= goal else 'NOT met'}{flag}")
        # The c=1 goal rests on llama_cpp.server's Llama.generate costing ms per token more than a
        # low-level loop. Where it does not, no server on this library can reach 1.2x: the raw
        # single-sequence loop (no HTTP, no client) bounds what any of them decodes.
        lcp1 = by.get(("llama_cpp.server", 1))
        if ceiling and "single" in ceiling and lcp1:
            print(f"bound at c=1: the raw single-sequence loop ({ceiling['single']:.1f} tok/s, no HTTP, no client) is "
                  f"{ratio(ceiling['single'], lcp1['tps']):.3f}x llama_cpp.server c=1, the most a server on "
                  "llama-cpp-python could reach")

    if results:
        rows = ratio_rows({(r["peer"], r["c"]): r for r in results}, args.concurrency)
        if rows:
            print_table(ratio_headers(), rows, title="Hearth against llama-server (ratio = Hearth / llama-server; "
                        "above 1 is better for tok/s, worse for latency, TTFT and CPU)")
            by = {(r["peer"], r["c"]): r for r in results}
            for c, goal in [(c, 0.95 if c == 1 else 0.9) for c in args.concurrency]:
                h, b = by.get(("hearth", c)), by.get(("llama-server", c))
                if h and b:
                    value = ratio(h["tps"], b["tps"])
                    flag = "" if h["reliable"] and b["reliable"] else "  UNRELIABLE"
                    print(f"goal hearth c={c} >= {goal}x llama-server tok/s: {value:.3f}x "
                          f"{'met' if value >= goal else 'NOT met'}{flag}")
    if shaped:
        print_table(SQL_HEADERS, sql_rows(shaped), title=f"/v1/sql-shaped prompts, one at a time ({args.shaped_rounds} "
                    f"rounds: 1 cold + {args.shaped_warm} warm; medians; last row Hearth / llama-server)")
        rows = sql_rows(shaped)
        if rows and str(rows[-1][0]).startswith("hearth/"):
            warm = rows[-1][2]
            print(f"goal warm-prefix TTFT hearth <= llama-server: {warm:.3f}x {'met' if warm <= 1 else 'NOT met'}")
    print("load average at end (1/5/15 min): {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))

    for k in (args.sql_few_shot_k if args.sql_questions else []):
        s = sql_ttft(path, args, guard, k)
        rows = [[("cold" if i == 0 else "warm"), q[:50], ttft, cached, prompt] for i, (q, ttft, cached, prompt)
                in enumerate(s["rows"])]
        print_table(["", "question", "TTFT ms", "cached tok", "prompt tok"], rows,
                    title=f"/v1/sql time to first token, sql.few_shot_k={k}, schema prefix cold vs warm [{s['load']}]")
        warm = [r[1] for r in s["rows"][1:] if r[1] is not None]  # a failed first request: no ratio
        cold = s["rows"][0][1] if s["rows"] else None
        if warm and cold:
            print(f"sql.few_shot_k={k}: warm median / cold: {ratio(median(warm), cold):.2f}x (goal <= 0.3x)"
                  f"{'' if s['reliable'] else '  UNRELIABLE'}")
    return guard.summary_exit()


if __name__ == "__main__":
    sys.exit(main())
