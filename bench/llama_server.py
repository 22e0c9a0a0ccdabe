"""llama.cpp's own C++ `llama-server`, built from the llama-cpp-python sdist, as a bench peer.

The sdist that the Makefile compiles into the wheel vendors llama.cpp at exactly the version the
wheel runs (`vendor/llama.cpp`, server at `tools/server/`). This module builds only the
`llama-server` target from it, with the wheel's CPU flags (the Makefile's LLAMA_CPU_ARGS, plus any
GGML flags passed in CMAKE_ARGS, as the Makefile does), and caches the binary in
`~/.cache/hearth/llama-server-<version>-<hash of the flags>/bin/llama-server`. A build goes into a
`.part` directory that is renamed into place only when the binary exists, so an interrupted build
never leaves a half cache behind. A missing sdist is fetched with pip (as `make install-convert`
does) and checked against the Makefile's sha256.

The same sdist's `examples/server/server.py` (a batching server on the low-level API) is
unpacked next to it (`ensure_example_server`), so bench/concurrency.py runs it without asking the
user for a download. The pure parts (cache key, command lines, the comparison table's ratios)
are tested in tests/bench/test_llama_server.py; nothing there compiles.

`python -m bench.llama_server` builds (or finds) the binary and prints its path.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

from server.bundle.llama_wheel import pinned_version
from server.digest import sha256_file

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path.home() / ".cache" / "hearth"
MAKEFILE = ROOT / "Makefile"
PYPROJECT = ROOT / "pyproject.toml"

# The Makefile's LLAMA_CMAKE_ARGS with the server turned on (the server lives under tools/, so
# LLAMA_BUILD_TOOLS must be on too; only the llama-server target is built, so no other tool is
# compiled). The web UI is neither built with npm nor downloaded: the bench never loads it.
# BUILD_SHARED_LIBS=OFF links one self-contained binary that can be cached on its own.
SERVER_CMAKE_ARGS = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DBUILD_SHARED_LIBS=OFF",
    "-DLLAVA_BUILD=OFF",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_TOOLS=ON",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_BUILD_SERVER=ON",
    "-DLLAMA_BUILD_APP=OFF",
    "-DLLAMA_OPENSSL=OFF",
    "-DLLAMA_CURL=OFF",
    "-DLLAMA_BUILD_UI=OFF",
    "-DLLAMA_USE_PREBUILT_UI=OFF",
)
# The Makefile's LLAMA_CPU_ARGS on x86 (tests/bench/test_llama_server.py checks they agree).
X86_CPU_ARGS = ("-DCMAKE_C_FLAGS=-mno-amx-int8", "-DCMAKE_CXX_FLAGS=-mno-amx-int8")


def llama_version(pyproject: Path = PYPROJECT) -> str:
    """The pinned llama-cpp-python version, read as the Makefile reads it."""
    return pinned_version(pyproject.parent)


def sdist_sha256(makefile: Path = MAKEFILE) -> str | None:
    m = re.search(r"^LLAMA_SDIST_SHA256\s*:=\s*([0-9a-f]{64})", makefile.read_text(), re.M)
    return m.group(1) if m else None


def cpu_args(machine: str | None = None) -> tuple[str, ...]:
    return X86_CPU_ARGS if (machine or platform.machine()) == "x86_64" else ()


def build_flags(extra: str = "", machine: str | None = None) -> list[str]:
    """Every CMake flag of the server build: the fixed ones, the CPU ones, then CMAKE_ARGS."""
    return [*SERVER_CMAKE_ARGS, *cpu_args(machine), *shlex.split(extra)]


def cache_key(version: str, flags: list[str]) -> str:
    digest = hashlib.sha256(" ".join(flags).encode()).hexdigest()[:12]
    return f"llama-server-{version}-{digest}"


def cache_dir(version: str, flags: list[str], cache: Path = CACHE) -> Path:
    return cache / cache_key(version, flags)


def binary_path(version: str, flags: list[str], cache: Path = CACHE) -> Path:
    return cache_dir(version, flags, cache) / "bin" / "llama-server"


def sdist_path(version: str, cache: Path = CACHE) -> Path:
    return cache / f"llama-cpp-python-{version}-sdist" / f"llama_cpp_python-{version}.tar.gz"


def ensure_sdist(version: str, cache: Path = CACHE, log=print) -> Path:
    """The cached sdist, fetched with pip first when missing (atomically, as the Makefile does)."""
    path = sdist_path(version, cache)
    if not path.exists():
        final = path.parent
        part = final.with_name(final.name + ".part")
        shutil.rmtree(part, ignore_errors=True)
        log(f"fetching the llama-cpp-python {version} sdist into {final}")
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-binary", ":all:",
             "--no-deps", "-d", str(part), f"llama-cpp-python=={version}"],
            check=True,
        )
        shutil.rmtree(final, ignore_errors=True)
        part.rename(final)
    want = sdist_sha256()
    if want and version == llama_version() and sha256_file(path) != want:
        raise RuntimeError(f"{path}: sha256 differs from the Makefile's LLAMA_SDIST_SHA256")
    return path


def configure_command(src: Path, build: Path, flags: list[str]) -> list[str]:
    gen = ["-G", "Ninja"] if shutil.which("ninja") else []
    return ["cmake", "-S", str(src), "-B", str(build), *gen, *flags]


def build_command(build: Path, jobs: int) -> list[str]:
    return ["cmake", "--build", str(build), "--target", "llama-server", "-j", str(jobs)]


def ensure_llama_server(
    *, extra_cmake_args: str | None = None, nice: int = 15, jobs: int | None = None,
    cache: Path = CACHE, log=print,
) -> Path:
    """The cached llama-server binary for this version and these flags, built when missing."""
    version = llama_version()
    extra = os.environ.get("CMAKE_ARGS", "") if extra_cmake_args is None else extra_cmake_args
    flags = build_flags(extra)
    binary = binary_path(version, flags, cache)
    if binary.exists():
        return binary
    final = cache_dir(version, flags, cache)
    cache.mkdir(parents=True, exist_ok=True)
    with final.with_name(final.name + ".lock").open("w") as lock:  # one build at a time per key
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"waiting for another build of {final.name}")
            fcntl.flock(lock, fcntl.LOCK_EX)
        if binary.exists():
            return binary
        return _build(version, flags, final, nice=nice, jobs=jobs, cache=cache, log=log)


def _build(version: str, flags: list[str], final: Path, *, nice: int, jobs: int | None, cache: Path, log) -> Path:
    part = final.with_name(final.name + ".part")
    shutil.rmtree(part, ignore_errors=True)
    (part / "bin").mkdir(parents=True)
    sdist = ensure_sdist(version, cache, log)
    prefix = f"llama_cpp_python-{version}/vendor/llama.cpp/"
    log(f"unpacking {prefix} from {sdist}")
    with tarfile.open(sdist) as tar:
        members = [m for m in tar.getmembers() if m.name.startswith(prefix)]
        for m in members:
            m.name = m.name[len(prefix):]
        tar.extractall(part / "src", members=members, filter="data")
    src, build = part / "src", part / "build"
    niced = ["nice", "-n", str(nice)] if nice else []
    jobs = jobs or os.cpu_count() or 1
    (part / "flags.txt").write_text(" ".join(flags) + "\n")
    log(f"building llama-server {version} (minutes) into {final}: {' '.join(flags)}")
    t0 = time.monotonic()
    subprocess.run([*niced, *configure_command(src, build, flags)], check=True)
    subprocess.run([*niced, *build_command(build, jobs)], check=True)
    built = build / "bin" / "llama-server"
    shutil.copy2(built, part / "bin" / "llama-server")
    (part / "build-seconds.txt").write_text(f"{time.monotonic() - t0:.0f}\n")
    shutil.rmtree(src)
    shutil.rmtree(build)
    shutil.rmtree(final, ignore_errors=True)
    part.rename(final)
    log(f"built llama-server in {time.monotonic() - t0:.0f} s")
    return final / "bin" / "llama-server"


def ensure_example_server(cache: Path = CACHE, log=print) -> Path:
    """examples/server/server.py of the cached sdist, unpacked once into the cache."""
    version = llama_version()
    final = cache / f"llama-cpp-python-{version}-examples-server"
    script = final / "server.py"
    if script.exists():
        return script
    sdist = ensure_sdist(version, cache, log)
    part = final.with_name(final.name + ".part")
    shutil.rmtree(part, ignore_errors=True)
    prefix = f"llama_cpp_python-{version}/examples/server/"
    with tarfile.open(sdist) as tar:
        members = [m for m in tar.getmembers() if m.name.startswith(prefix)]
        for m in members:
            m.name = m.name[len(prefix):]
        tar.extractall(part, members=members, filter="data")
    shutil.rmtree(final, ignore_errors=True)
    part.rename(final)
    return script


# -- the peer ---------------------------------------------------------------------------------

def server_command(binary: Path | str, model: str, port: int, *, n_threads: int, n_ctx: int, n_slots: int,
                   api_key: str, alias: str = "bench") -> list[str]:
    """llama-server configured as Hearth is: the same GGUF, threads (decode and batch), per-slot
    context (`-c` is the total, split over the slots: Hearth allocates n_ctx * n_slots cells,
    one stream per slot, kv_unified off), slot count and batch size (Hearth's n_batch = n_ubatch
    = 512); continuous batching and the prompt cache on (llama-server's defaults, spelled out),
    its host-RAM prompt cache left at its default; no web UI."""
    return [
        str(binary), "--model", model, "--alias", alias, "--host", "127.0.0.1", "--port", str(port),
        "--api-key", api_key, "--threads", str(n_threads), "--threads-batch", str(n_threads),
        "--ctx-size", str(n_ctx * n_slots), "--parallel", str(n_slots), "--no-kv-unified", "--cont-batching",
        "--cache-prompt", "--batch-size", "512", "--ubatch-size", "512", "--no-webui",
    ]


def start_llama_server(model: str, *, n_threads: int, n_ctx: int, n_slots: int, binary: Path | None = None):
    """llama-server as a bench peer (bench.common.Server: /proc/<pid>/stat is the binary's own)."""
    from bench.common import API_KEY, Server, free_port

    binary = binary or ensure_llama_server()
    port = free_port()
    cmd = server_command(binary, model, port, n_threads=n_threads, n_ctx=n_ctx, n_slots=n_slots, api_key=API_KEY)
    return Server("llama-server", cmd, port, "/health", "bench")


# -- comparison -------------------------------------------------------------------------------

# (label, key in a bench.concurrency result row); a ratio above 1 means Hearth's figure is higher.
COMPARED = (("tok/s", "tps"), ("p50 lat", "p50"), ("p95 lat", "p95"), ("p50 TTFT", "ttft50"),
            ("p95 TTFT", "ttft95"), ("server CPU ms/tok", "server_ms_tok"))


def _ratio(a, b) -> float:
    try:
        return float(a) / float(b) if float(b) else float("nan")
    except (TypeError, ValueError):
        return float("nan")


def ratio_rows(by: dict, levels, peer: str = "hearth", base: str = "llama-server") -> list[list]:
    """One row per concurrency level where both ran: each compared figure of `peer`, of `base`,
    and peer/base. `by` maps (peer name, concurrency) to a bench.concurrency result row."""
    rows = []
    for c in levels:
        p, b = by.get((peer, c)), by.get((base, c))
        if not p or not b:
            continue
        row = [c]
        for _, key in COMPARED:
            row += [float(p[key]), float(b[key]), _ratio(p[key], b[key])]
        rows.append(row)
    return rows


def ratio_headers(peer: str = "hearth", base: str = "llama-server") -> list[str]:
    out = ["conc"]
    for label, _ in COMPARED:
        out += [f"{peer} {label}", f"{base} {label}", "ratio"]
    return out


def sql_rows(results: dict, peer: str = "hearth", base: str = "llama-server") -> list[list]:
    """The /v1/sql-shaped table: per server, median cold and warm TTFT (s), warm/cold, prompt and
    cached tokens; then peer/base for cold and warm. `results` maps a server name to its list of
    (kind, ttft, latency, prompt_tokens, cached_tokens) with kind "cold" or "warm"."""
    from bench.common import median

    def med(name, kind, i):
        vals = [r[i] for r in results.get(name, []) if r[0] == kind and r[i] is not None]
        return median(vals) if vals else float("nan")

    rows = []
    for name in results:
        cold, warm = med(name, "cold", 1), med(name, "warm", 1)
        rows.append([name, cold, warm, _ratio(warm, cold), med(name, "cold", 2), med(name, "warm", 2),
                     med(name, "cold", 3), med(name, "warm", 4)])
    if peer in results and base in results:
        rows.append([f"{peer}/{base}", _ratio(med(peer, "cold", 1), med(base, "cold", 1)),
                     _ratio(med(peer, "warm", 1), med(base, "warm", 1)), "", _ratio(med(peer, "cold", 2), med(base, "cold", 2)),
                     _ratio(med(peer, "warm", 2), med(base, "warm", 2)), "", ""])
    return rows


SQL_HEADERS = ["server", "cold TTFT s", "warm TTFT s", "warm/cold", "cold lat s", "warm lat s", "prompt tok",
               "warm cached tok"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nice", type=int, default=15)
    ap.add_argument("--jobs", type=int, default=None)
    args = ap.parse_args()
    print(ensure_llama_server(nice=args.nice, jobs=args.jobs))


if __name__ == "__main__":
    main()
