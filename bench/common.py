"""Helpers shared by the serving benchmarks: load check, servers, streaming client, tables.

Load policy (every bench script): before each measurement the CPU is sampled for `presample`
seconds while none of our own work runs, and during the measurement the CPU time of every
process outside our own process tree (this script and the server it started) is counted from
/proc/stat minus our processes' /proc/<pid>/stat times. A figure for which either share exceeds
`--max-load` (default 10% of all cores) is printed marked UNRELIABLE, and the script then exits
with status 3 at the end, so a run on shared cores never passes as a result.
"""

from __future__ import annotations

import atexit
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "var" / "bench"
API_KEY = "bench-key"
EXIT_UNRELIABLE = 3

# Prompts that make the embedded model write long answers (it stops early on short questions).
PROMPTS = [
    "Write a long, detailed essay about the history of the printing press and its effects on Europe.",
    "Explain step by step, in detail, how a compiler turns source code into machine code.",
    "Write a long story about a lighthouse keeper who finds a message in a bottle.",
    "Describe in detail the water cycle, with examples from several climates.",
    "Write a detailed guide to planting and caring for a vegetable garden through a whole year.",
    "Explain in detail how the internet routes a packet from one computer to another.",
    "Write a long letter from a sailor to his family describing a voyage across the Atlantic.",
    "Describe in detail the life cycle of a star, from nebula to its final state.",
    "Write a detailed history of the bicycle and how its design changed over time.",
    "Explain in detail how vaccines train the immune system, with examples.",
    "Write a long travel diary of a week spent walking through the mountains of Switzerland.",
    "Describe in detail how bread is made, from growing wheat to baking the loaf.",
    "Write a detailed explanation of how electric motors work and where they are used.",
    "Write a long fairy tale about a clockmaker and a talking crow.",
    "Explain in detail the causes and consequences of the industrial revolution.",
    "Describe in detail how a modern city manages its drinking water and sewage.",
]


# -- load check -------------------------------------------------------------------------------

def _cpu_times() -> tuple[int, int]:
    """(busy, total) jiffies over all cores, from the first line of /proc/stat."""
    with open("/proc/stat") as f:
        vals = [int(v) for v in f.readline().split()[1:]]
    idle = vals[3] + vals[4]  # idle + iowait
    total = sum(vals[:8])  # guest time is already inside user
    return total - idle, total


def _own_jiffies() -> int:
    """utime+stime of this process and all its live descendants (all their threads included)."""
    parents: dict[int, int] = {}
    times: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                rest = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry)] = int(rest[1])
        times[int(entry)] = int(rest[11]) + int(rest[12])
    own, frontier = {os.getpid()}, [os.getpid()]
    while frontier:
        p = frontier.pop()
        for child, parent in parents.items():
            if parent == p and child not in own:
                own.add(child)
                frontier.append(child)
    return sum(times.get(p, 0) for p in own)


@dataclass
class LoadRecord:
    label: str
    before: float = 0.0  # share of all cores busy with other work just before
    during: float = 0.0  # share of all cores used by processes outside our tree during
    limit: float = 0.1

    @property
    def reliable(self) -> bool:
        return self.before <= self.limit and self.during <= self.limit

    def tag(self) -> str:
        s = f"bg {self.before:.0%}/{self.during:.0%}"
        return s if self.reliable else s + " UNRELIABLE"


@dataclass
class LoadGuard:
    """`with guard.measure("label") as rec:` samples the load before, and foreign load during."""

    limit: float = 0.10
    presample: float = 1.0
    wait_quiet: float = 0.0  # seconds to wait for a quiet machine before measuring anyway
    records: list[LoadRecord] = field(default_factory=list)

    def foreign_share(self, seconds: float) -> float:
        b0, t0 = _cpu_times()
        o0 = _own_jiffies()
        time.sleep(seconds)
        b1, t1 = _cpu_times()
        o1 = _own_jiffies()
        return max(0.0, (b1 - b0) - (o1 - o0)) / max(1, t1 - t0)

    @contextmanager
    def measure(self, label: str):
        rec = LoadRecord(label, limit=self.limit)
        deadline = time.monotonic() + self.wait_quiet
        rec.before = self.foreign_share(self.presample)
        while rec.before > self.limit and time.monotonic() < deadline:
            rec.before = self.foreign_share(self.presample)
        b0, t0 = _cpu_times()
        o0 = _own_jiffies()
        yield rec
        b1, t1 = _cpu_times()
        o1 = _own_jiffies()
        rec.during = max(0.0, (b1 - b0) - (o1 - o0)) / max(1, t1 - t0)
        self.records.append(rec)

    def summary_exit(self) -> int:
        bad = [r for r in self.records if not r.reliable]
        if not bad:
            print(f"\nload check: all {len(self.records)} measurements taken on a quiet machine "
                  f"(other work <= {self.limit:.0%} of all cores)")
            return 0
        print(f"\nUNRELIABLE: {len(bad)} of {len(self.records)} measurements ran while other work used "
              f"more than {self.limit:.0%} of the cores ({', '.join(r.label for r in bad[:6])}"
              f"{'...' if len(bad) > 6 else ''}). Rerun on a quiet machine.", file=sys.stderr)
        return EXIT_UNRELIABLE


def add_load_args(parser) -> None:
    parser.add_argument("--max-load", type=float, default=0.10,
                        help="share of all cores other work may use before/during a measurement (0.10)")
    parser.add_argument("--presample", type=float, default=1.0, help="idle sample before each measurement, s")
    parser.add_argument("--wait-quiet", type=float, default=0.0,
                        help="wait up to this many seconds for a quiet machine before each measurement")


def guard_from_args(args) -> LoadGuard:
    return LoadGuard(limit=args.max_load, presample=args.presample, wait_quiet=args.wait_quiet)


# -- statistics and tables --------------------------------------------------------------------

from training.evaluation.sql_summary import percentile  # noqa: E402,F401  (one definition, pure Python)


def median(values) -> float:
    return percentile(values, 50)


def ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def print_table(headers: list[str], rows: list[list], title: str | None = None) -> None:
    def fmt(v) -> str:
        if isinstance(v, float):
            return "nan" if v != v else (f"{v:.0f}" if abs(v) >= 1000 else f"{v:.3g}" if abs(v) < 10 else f"{v:.1f}")
        return str(v)

    cells = [[fmt(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    if title:
        print(f"\n{title}")
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths)))
    print("  ".join("-" * w for w in widths))
    for r in cells:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)))
    sys.stdout.flush()


# -- servers ----------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    """In the child, before exec: SIGKILL it when the bench process dies (Linux prctl)."""
    ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def exit_on_sigterm() -> None:
    """Turn SIGTERM (e.g. from `timeout`) into SystemExit, so servers are stopped on the way out."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


class Server:
    """A server subprocess on loopback; `stop()` ends it (and only it)."""

    def __init__(self, name: str, cmd: list[str], port: int, ready_path: str, model: str, cwd=ROOT,
                 env: dict | None = None):
        CACHE.mkdir(parents=True, exist_ok=True)
        self.name, self.port, self.model = name, port, model
        self.base_url = f"http://127.0.0.1:{port}"
        self.log = CACHE / f"{name}-{port}.log"
        self.proc = subprocess.Popen(cmd, cwd=cwd, stdout=self.log.open("w"), stderr=subprocess.STDOUT,
                                     env={**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"}, preexec_fn=_die_with_parent)
        atexit.register(self.stop)
        self._wait(ready_path)

    def _wait(self, path: str, timeout: float = 180) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                r = httpx.get(self.base_url + path, timeout=2, headers={"Authorization": f"Bearer {API_KEY}"})
                if r.status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"{self.name} did not become ready:\n{self.log.read_text()[-3000:]}")

    def cpu_seconds(self) -> float:
        """CPU time (user + system, all threads) the server process has used so far."""
        try:
            with open(f"/proc/{self.proc.pid}/stat") as f:
                rest = f.read().rsplit(")", 1)[1].split()
        except OSError:
            return float("nan")
        return (int(rest[11]) + int(rest[12])) / os.sysconf("SC_CLK_TCK")

    def client(self, timeout: float = 600):
        import openai

        return openai.OpenAI(base_url=self.base_url + "/v1", api_key=API_KEY, max_retries=0, timeout=timeout)

    def async_client(self, timeout: float = 600):
        import openai

        return openai.AsyncOpenAI(base_url=self.base_url + "/v1", api_key=API_KEY, max_retries=0, timeout=timeout)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:  # uvicorn's graceful shutdown waits for requests in flight: do not wait long
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def start_hearth(model: str, *, n_threads: int, n_ctx: int, n_slots: int = 8, extra: tuple = (),
                 env: dict | None = None) -> Server:
    port = free_port()
    cmd = [sys.executable, "-m", "server.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
           "--api-keys", API_KEY, "--model", model, "--model-name", "bench", "--n-threads", str(n_threads),
           "--n-ctx", str(n_ctx), "--n-slots", str(n_slots), "--log-level", "warning", *extra]
    return Server("hearth", cmd, port, "/ready", "bench", env=env)


def start_llama_cpp_server(model: str, *, n_threads: int, n_ctx: int) -> Server:
    """`python -m llama_cpp.server` (one request at a time), same GGUF, threads and context."""
    port = free_port()
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", model, "--model_alias", "bench",
           "--host", "127.0.0.1", "--port", str(port), "--api_key", API_KEY,
           "--n_threads", str(n_threads), "--n_threads_batch", str(n_threads), "--n_ctx", str(n_ctx),
           "--n_batch", "512", "--verbose", "False",
           # Its default (True) ends a running stream early whenever another request waits, so
           # under concurrency clients get truncated answers; off, every request is served whole.
           "--interrupt_requests", "False"]
    return Server("llama_cpp.server", cmd, port, "/v1/models", "bench")


# The example server imports llama_cpp.mtmd_cpp (multimodal) at module level, and a CPU build of
# llama-cpp-python without libmtmd cannot load it. Text requests never touch it: stand in a module
# that fails only if used, then run the unmodified file.
_EXAMPLE_LAUNCHER = """
import runpy, sys, types
import llama_cpp
class NoMtmd(types.ModuleType):
    def __getattr__(self, name):
        raise RuntimeError('libmtmd (multimodal) is not in this llama-cpp-python build')
try:
    from llama_cpp import mtmd_cpp
except (OSError, FileNotFoundError):
    sys.modules['llama_cpp.mtmd_cpp'] = llama_cpp.mtmd_cpp = NoMtmd('llama_cpp.mtmd_cpp')
sys.argv = [sys.argv[1], '-C', sys.argv[2]]
runpy.run_path(sys.argv[0], run_name='__main__')
"""


def start_example_server(script: Path, model: str, *, n_threads: int, n_ctx: int, n_slots: int) -> Server:
    """llama-cpp-python's examples/server/server.py (batching, low-level API), run from outside the repo."""
    port = free_port()
    config = {
        "server": {"host": "127.0.0.1", "port": port},
        # an absolute path: it runs from its own folder
        "model": {"path": str(Path(model).resolve()), "alias": "bench", "n_ctx": n_ctx * n_slots, "n_seq_max": n_slots,
                  "n_batch": 512, "n_ubatch": 512, "threads": n_threads, "threads_batch": n_threads},
    }
    CACHE.mkdir(parents=True, exist_ok=True)
    cfg = CACHE / f"example-server-{port}.json"
    cfg.write_text(json.dumps(config))
    cmd = [sys.executable, "-c", _EXAMPLE_LAUNCHER, str(script), str(cfg)]
    return Server("example-server", cmd, port, "/v1/models", "bench", cwd=script.parent)


# -- streaming client -------------------------------------------------------------------------

@dataclass
class StreamResult:
    ttft: float  # seconds from sending to the first content
    latency: float  # seconds from sending to the end of the stream
    tokens: int  # completion tokens (usage when the server sends it, else content chunks)
    last_gap: float  # seconds from the first to the last content chunk
    cached: int = 0
    text: str = ""
    from_usage: bool = True  # False: the server sent no usage; tokens counted as content chunks

    @property
    def decode_tps(self) -> float:
        return (self.tokens - 1) / self.last_gap if self.tokens > 1 and self.last_gap > 0 else float("nan")


def stream_chat_sse(http, base_url: str, model: str, prompt: str, max_tokens: int) -> StreamResult:
    """stream_chat's request through a lean client: httpx reading the SSE lines, one json.loads
    per chunk, no pydantic models. The official client spends a few hundred microseconds of CPU
    per chunk; on this 2-core box the client shares the cores with the decode threads, so its
    parsing is charged to the server. A client on another machine (the deployment) costs the
    server nothing; this measures what is left. `http` is an httpx.Client (keep-alive)."""
    t0 = time.perf_counter()
    first = last = None
    chunks = 0
    usage = None
    parts: list[str] = []
    body = {"model": model, "messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens,
            "temperature": 0, "stream": True, "stream_options": {"include_usage": True}}
    with http.stream("POST", base_url + "/v1/chat/completions", json=body,
                     headers={"Authorization": f"Bearer {API_KEY}"}) as r:
        r.raise_for_status()
        for line in r.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if chunk.get("usage"):
                usage = chunk["usage"]
            choices = chunk.get("choices")
            text = choices[0]["delta"].get("content") if choices else None
            if text:
                last = time.perf_counter()
                first = first or last
                chunks += 1
                parts.append(text)
    end = time.perf_counter()
    tokens = usage["completion_tokens"] if usage else chunks
    cached = ((usage or {}).get("prompt_tokens_details") or {}).get("cached_tokens", 0) or 0
    first = first or end
    return StreamResult(first - t0, end - t0, tokens, (last or end) - first, cached, "".join(parts), usage is not None)


class _ChunkTally:
    """What stream_chat and stream_chat_async count from the official client's chunks."""

    def __init__(self):
        self.t0 = time.perf_counter()
        self.first = self.last = self.usage = None
        self.chunks = 0
        self.parts: list[str] = []

    def add(self, chunk) -> None:
        if chunk.usage is not None:
            self.usage = chunk.usage
        if chunk.choices and chunk.choices[0].delta and chunk.choices[0].delta.content:
            self.last = time.perf_counter()
            self.first = self.first or self.last
            self.chunks += 1
            self.parts.append(chunk.choices[0].delta.content)

    def result(self) -> StreamResult:
        return _result(self.t0, self.first, self.last, self.chunks, self.usage, self.parts)


def _chat_args(model: str, prompt: str, max_tokens: int) -> dict:
    return dict(model=model, messages=[{"role": "user", "content": prompt}], max_tokens=max_tokens,
                temperature=0, stream=True, stream_options={"include_usage": True})


def stream_chat(client, model: str, prompt: str, max_tokens: int) -> StreamResult:
    """One streamed chat request through the official client (openai.OpenAI)."""
    tally = _ChunkTally()
    for chunk in client.chat.completions.create(**_chat_args(model, prompt, max_tokens)):
        tally.add(chunk)
    return tally.result()


async def stream_chat_async(client, model: str, prompt: str, max_tokens: int) -> StreamResult:
    """The same through the official async client (openai.AsyncOpenAI): c streams in one event
    loop instead of c threads, which spares the client process c threads taking turns at the GIL."""
    tally = _ChunkTally()
    async for chunk in await client.chat.completions.create(**_chat_args(model, prompt, max_tokens)):
        tally.add(chunk)
    return tally.result()


def _result(t0, first, last, chunks, usage, parts) -> StreamResult:
    end = time.perf_counter()
    tokens = usage.completion_tokens if usage is not None else chunks
    details = getattr(usage, "prompt_tokens_details", None) if usage is not None else None
    cached = (getattr(details, "cached_tokens", 0) or 0) if details is not None else 0
    first = first or end
    return StreamResult(first - t0, end - t0, tokens, (last or end) - first, cached, "".join(parts),
                        usage is not None)
