"""Text-to-SQL execution accuracy of a GGUF variant, through a real Hearth server, and of the baseline.

    items = load_split("sample", limit=20); run_golds(items)
    runs = evaluate_sql_variant("var/runs/x/gguf/x-Q8_0.gguf", items, ["constrained"])
    runs["sample"]["constrained"]["summary"]["ex_pct"]

For each variant a Hearth server (`python -m server.cli serve`) starts on a free loopback port
with a generated config: the one model, and every database the items use (defog's with its
clean example pool, sql_data.py). Every question goes to POST /v1/sql with schema-constrained
decoding on and/or off; the rows the server returns are scored against the gold rows, computed
here on the same database read-only (sql_summary.score). The template baseline
(server/sql/baseline.py: nearest example question + slot filling) answers in-process from the
same example pairs the server retrieves its few-shot examples from.

Requests go one at a time, so latency is one request's latency on an otherwise idle server.
`measure` (bench/common.py's LoadGuard.measure, for instance) tells whether other work shared the
cores; without it latency is reported as measured.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .sql_data import DEFOG_DIR, GOLD_MAX_ROWS, Item, Runner, database_configs, defog_pool, write_pools
from .sql_summary import score, summarise

MODES = ("baseline", "constrained", "unconstrained")
MODEL_MODES = ("constrained", "unconstrained")
READY_TIMEOUT_S = 300  # loading a 13B GGUF from a cold disk takes minutes


# -- the server under test ----------------------------------------------------------------------

def server_config(port: int, api_key: str, model_path: str | None, databases: list[dict], *, n_ctx: int = 4096,
                  threads: int | None = None, sql: dict | None = None) -> dict:
    """A `hearth serve --config` mapping: one model (None: the embedded one), these databases, and
    `sql` as the server's `sql:` settings (SqlSettings fields: max_attempts, draft, few_shot_k...)."""
    model: dict = {"n_ctx": n_ctx}
    if threads:
        model["n_threads"] = threads
    if model_path:
        model |= {"name": Path(model_path).stem if model_path.endswith(".gguf") else "eval", "path": model_path}
    return {"host": "127.0.0.1", "port": port, "log_level": "warning", "api_keys": [api_key], "models": [model],
            "databases": databases, "sql": dict(sql or {})}


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    """In the child, before exec: SIGKILL it when this process dies (Linux prctl PR_SET_PDEATHSIG)."""
    import ctypes

    with contextlib.suppress(Exception):
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)


@contextlib.contextmanager
def hearth_server(model_path: str | None, databases: list[dict], work: Path, **options):
    """Yields an httpx client on a running Hearth server; the server is stopped on the way out."""
    import httpx
    import yaml

    port, key = _free_port(), secrets.token_hex(16)
    config, log = work / "hearth.yaml", work / "hearth.log"
    config.write_text(yaml.safe_dump(server_config(port, key, model_path, databases, **options), sort_keys=False))
    cmd = [sys.executable, "-m", "server.cli", "serve", "--config", str(config)]
    with open(log, "w") as log_file:
        proc = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=REQUEST_TIMEOUT_S,
                          headers={"Authorization": f"Bearer {key}"})
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"hearth server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if client.get("/ready", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"hearth server not ready after {READY_TIMEOUT_S} s:\n{log.read_text()[-3000:]}")
            time.sleep(0.3)
        yield client
    finally:
        client.close()
        if proc.poll() is None:
            proc.terminate()
            try:  # uvicorn's graceful shutdown waits for requests in flight: do not wait long
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


# One /v1/sql answer may take this long (seconds) before it counts as wrong; the slowest normal
# answers here take ~30 s (defog schemas, 3 attempts, f16 model on 2 cores).
REQUEST_TIMEOUT_S = 120.0


# -- one prediction -----------------------------------------------------------------------------

def post_sql(client, body: dict) -> tuple[int, dict]:
    r = client.post("/v1/sql", json=body)
    try:
        return r.status_code, r.json()
    except ValueError:
        return r.status_code, {}


def _no_answer(status: str, error: str | None, t0: float) -> dict:
    """The record of a question the server gave no SQL for (scored as wrong)."""
    return {"status": status, "error": error, "latency_ms": (time.perf_counter() - t0) * 1000, "rows": None,
            "attempts": 0, "attempt_rules": [], "failed_rule": None, "sql": None}


def ask_server(client, item: Item, constrained: bool) -> dict:
    import httpx

    body = {"question": item.question, "database": item.database, "constrained": constrained,
            "max_rows": GOLD_MAX_ROWS}
    t0 = time.perf_counter()
    try:
        code, reply = post_sql(client, body)
    except httpx.TimeoutException:
        # Counted as a wrong answer, not a crash: one pathological question (a model fighting the
        # grammar for 3 attempts x 256 tokens) must not throw away an hour of evaluation. Closing
        # the connection makes the server cancel the generation (it polls for disconnects).
        return _no_answer("timeout", f"no answer within {REQUEST_TIMEOUT_S:.0f} s", t0)
    except httpx.TransportError as exc:  # e.g. connection reset: this item is lost, not the run
        return _no_answer("transport_error", f"{type(exc).__name__}: {exc}", t0)
    latency_ms = (time.perf_counter() - t0) * 1000
    if code != 200:
        error = (reply.get("error") or {}) if isinstance(reply, dict) else {}
        return _no_answer(f"http_{code}", error.get("message"), t0)
    result = reply.get("result")
    rows = result["rows"] if reply["status"] == "ok" and result and not result["truncated"] else None
    attempts = reply.get("attempts", [])
    return {"status": reply["status"], "sql": reply.get("sql"), "rows": rows, "latency_ms": latency_ms,
            "server_ms": reply["timings"]["total_ms"], "generation_ms": reply["timings"]["generation_ms"],
            "attempts": len(attempts), "attempt_rules": [a["failed_rule"] for a in attempts if a.get("failed_rule")],
            "failed_rule": attempts[-1].get("failed_rule") if attempts else None,
            "source": attempts[-1].get("source") if attempts else None,
            "candidate_rank": attempts[-1].get("rank") if attempts else None,
            "completion_tokens": reply["usage"]["completion_tokens"],
            "error": attempts[-1].get("error") if attempts else None}


def make_baselines(items: list[Item], defog_dir: Path = DEFOG_DIR) -> dict:
    """One TemplateBaseline per server database name, indexed on the pairs its few-shot examples
    come from, read as serving reads them (server/sql/retrieval.py load_examples: canonical, in the
    schema's spelling, a double-quoted value a string), so the baseline and the server see the
    same templates whatever style the pairs are written in."""
    from server.sql.baseline import TemplateBaseline
    from server.sql.connections import Database
    from server.sql.mentions import ValueIndex
    from server.sql.retrieval import examples_from_rows
    from server.sql.settings import DatabaseConfig
    from training.io import read_jsonl

    out: dict = {}
    values: dict = {}
    for name in sorted({i.database for i in items}):
        item = next(i for i in items if i.database == name)
        config = item.config or DatabaseConfig(name=name, url=f"sqlite:///{item.db_file}")
        database = Database(config)
        try:
            schema = database.schema()
        finally:
            database.dispose()
        if item.db_file is not None:
            index = values.setdefault(item.db_file, ValueIndex.from_sqlite(item.db_file))
        else:  # another engine: the sample values introspection keeps
            index = ValueIndex.from_schema(schema)
        if item.config is not None:
            examples = item.config.examples_path
            pairs = read_jsonl(examples) if examples else []
        else:
            pairs = defog_pool(item.split, name.split(".", 1)[1], defog_dir)
        examples = examples_from_rows([p for p in pairs if p.get("sql")], schema.dialect, schema)
        out[name] = TemplateBaseline(examples, index, dialect=schema.dialect) if examples else None
    return out


def ask_baseline(baselines: dict, item: Item, runner: Runner) -> dict:
    baseline = baselines.get(item.database)
    t0 = time.perf_counter()
    answer = baseline.answer(item.question) if baseline else None
    record = {"status": "no_examples", "sql": None, "rows": None, "attempts": 1, "attempt_rules": [],
              "failed_rule": None, "error": None}
    if answer is not None and answer.sql is not None:
        record["sql"] = answer.sql
        try:
            record["rows"], record["status"] = runner.rows(item, answer.sql, 10.0), "ok"
        except Exception as exc:  # noqa: BLE001 - a broken filled template is the baseline's error
            record["status"], record["error"] = "execution_error", str(exc)
    record["latency_ms"] = (time.perf_counter() - t0) * 1000
    return record


# -- runs ---------------------------------------------------------------------------------------

def _run(label: str, measure, fn) -> dict:
    """{"summary", "records"} of one split × mode; `measure(label)` guards latency against load."""
    with (measure(label) if measure else contextlib.nullcontext()) as load:
        records = fn()
    summary = summarise(records, latency_ok=load.reliable if load is not None else True)
    if load is not None:
        # Shares of all cores that other processes used just before and during this run.
        summary["load"] = {"before": round(load.before, 3), "during": round(load.during, 3), "reliable": load.reliable}
    return {"summary": summary, "records": records}


def _splits(items: list[Item]) -> list[str]:
    return list(dict.fromkeys(i.split for i in items))


def evaluate_baseline(items: list[Item], *, defog_dir: Path = DEFOG_DIR, measure=None) -> dict:
    """{split: {"summary", "records"}} of the template baseline."""
    baselines, runner = make_baselines(items, defog_dir), Runner()
    try:
        return {split: _run(f"{split}/baseline", measure,
                            lambda split=split: [score(i, ask_baseline(baselines, i, runner))
                                                 for i in items if i.split == split])
                for split in _splits(items)}
    finally:
        runner.close()


def evaluate_sql_variant(model_path: str | None, items: list[Item], modes=("constrained",), *,
                         defog_dir: Path = DEFOG_DIR, n_ctx: int = 4096, threads: int | None = None,
                         sql: dict | None = None, measure=None, progress: bool = False) -> dict:
    """{split: {mode: {"summary", "records"}}} of one GGUF (None: the embedded model) served by Hearth."""
    bad = set(modes) - set(MODEL_MODES)
    if bad:
        raise ValueError(f"unknown SQL modes {sorted(bad)}; choose from {', '.join(MODEL_MODES)}")
    out: dict = {}
    with tempfile.TemporaryDirectory(prefix="hearth-eval-sql-") as tmp:
        pools = write_pools(_splits(items), Path(defog_dir), Path(tmp))
        databases = database_configs(items, pools)
        with hearth_server(model_path, databases, Path(tmp), n_ctx=n_ctx, threads=threads, sql=sql) as client:
            warm = items[0]  # the first request pays for faulting the weights in: not measured
            post_sql(client, {"question": warm.question, "database": warm.database, "execute": False})
            for split in _splits(items):
                split_items = [i for i in items if i.split == split]
                for mode in modes:
                    def ask(split_items=split_items, mode=mode, split=split) -> list[dict]:
                        records = []
                        for n, item in enumerate(split_items, 1):
                            records.append(score(item, ask_server(client, item, mode == "constrained")))
                            if progress:
                                print(f"  {split}/{mode} {n}/{len(split_items)} {records[-1]['status']}",
                                      file=sys.stderr)
                        return records

                    out.setdefault(split, {})[mode] = _run(f"{split}/{mode}", measure, ask)
    return out
