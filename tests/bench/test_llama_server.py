"""bench/llama_server.py's pure parts: cache key, flags, command lines, the comparison tables.

Nothing here compiles or starts a server: the build is exercised with a fake sdist and a fake
cmake (subprocess.run patched), which is what makes it cheap.
"""

from __future__ import annotations

import io
import math
import re
import subprocess
import tarfile
from pathlib import Path

import pytest

from bench import llama_server as ls

ROOT = Path(__file__).resolve().parents[2]


def test_version_is_the_pin():
    assert re.fullmatch(r"\d+\.\d+\.\d+", ls.llama_version())
    assert f'"llama-cpp-python=={ls.llama_version()}"' in (ROOT / "pyproject.toml").read_text()


def test_flags_are_the_wheels_with_the_server_on():
    make = (ROOT / "Makefile").read_text()
    wheel = re.search(r"^LLAMA_CMAKE_ARGS := (.*?)\n(?!\t)", make, re.M | re.S).group(1).replace("\\\n", " ").split()
    flags = ls.build_flags("", machine="x86_64")
    for flag in wheel:
        if flag in ("-DLLAMA_BUILD_TOOLS=OFF", "-DLLAMA_BUILD_SERVER=OFF"):
            assert flag.replace("=OFF", "=ON") in flags
        else:
            assert flag in flags
    # The Makefile's LLAMA_CPU_ARGS on x86, and none elsewhere (as the Makefile's $(if ...)).
    cpu = re.search(r"^LLAMA_CPU_ARGS := .*x86_64,\$\(shell uname -m\)\),(.*)\)$", make, re.M).group(1).split()
    assert list(ls.X86_CPU_ARGS) == cpu
    assert all(f in flags for f in cpu)
    assert not any("amx" in f for f in ls.build_flags("", machine="aarch64"))
    # CMAKE_ARGS (GGML flags) come last, as in the Makefile.
    assert ls.build_flags("-DGGML_CUDA=on -DGGML_NATIVE=OFF", machine="x86_64")[-2:] == ["-DGGML_CUDA=on", "-DGGML_NATIVE=OFF"]


def test_cache_key_by_version_and_flags(tmp_path):
    flags = ls.build_flags("", machine="x86_64")
    key = ls.cache_key("0.3.36", flags)
    assert re.fullmatch(r"llama-server-0\.3\.36-[0-9a-f]{12}", key)
    assert ls.cache_key("0.3.36", list(flags)) == key  # stable
    assert ls.cache_key("0.3.37", flags) != key
    assert ls.cache_key("0.3.36", [*flags, "-DGGML_CUDA=on"]) != key
    assert ls.cache_key("0.3.36", ls.build_flags("", machine="aarch64")) != key
    assert ls.binary_path("0.3.36", flags, tmp_path) == tmp_path / key / "bin" / "llama-server"


def test_build_and_configure_commands(tmp_path):
    cmd = ls.build_command(tmp_path / "b", 2)
    assert cmd[:3] == ["cmake", "--build", str(tmp_path / "b")]
    assert cmd[cmd.index("--target") + 1] == "llama-server"
    conf = ls.configure_command(tmp_path / "s", tmp_path / "b", ["-DX=1"])
    assert conf[:5] == ["cmake", "-S", str(tmp_path / "s"), "-B", str(tmp_path / "b")]
    assert conf[-1] == "-DX=1"


def _fake_sdist(cache: Path, version: str) -> Path:
    path = ls.sdist_path(version, cache)
    path.parent.mkdir(parents=True)
    with tarfile.open(path, "w:gz") as tar:
        for name in ("vendor/llama.cpp/CMakeLists.txt", "examples/server/server.py", "setup.py"):
            data = b"# fake\n"
            info = tarfile.TarInfo(f"llama_cpp_python-{version}/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_build_is_atomic_and_cached(tmp_path, monkeypatch):
    version = ls.llama_version()
    _fake_sdist(tmp_path, version)
    monkeypatch.setattr(ls, "ensure_sdist", lambda v, cache, log: ls.sdist_path(v, cache))
    calls = []

    def fake_run(cmd, check):
        calls.append(cmd)
        if "--build" in cmd:
            build = Path(cmd[cmd.index("--build") + 1])
            assert (build.parent / "src" / "CMakeLists.txt").exists()  # vendor/llama.cpp unpacked as the source
            if fail:
                raise subprocess.CalledProcessError(1, cmd)
            (build / "bin").mkdir(parents=True)
            (build / "bin" / "llama-server").write_text("binary")

    monkeypatch.setattr(ls.subprocess, "run", fake_run)
    fail = True
    with pytest.raises(subprocess.CalledProcessError):
        ls.ensure_llama_server(extra_cmake_args="", cache=tmp_path, log=lambda *_: None)
    flags = ls.build_flags("")
    final = ls.cache_dir(version, flags, tmp_path)
    assert not final.exists()  # a failed build leaves only the .part directory
    assert calls[0][:3] == ["nice", "-n", "15"]

    fail = False
    binary = ls.ensure_llama_server(extra_cmake_args="", cache=tmp_path, log=lambda *_: None)
    assert binary == final / "bin" / "llama-server" and binary.read_text() == "binary"
    assert not final.with_name(final.name + ".part").exists()
    assert not (final / "build").exists() and not (final / "src").exists()
    assert (final / "flags.txt").read_text().split() == flags

    calls.clear()
    assert ls.ensure_llama_server(extra_cmake_args="", cache=tmp_path, log=lambda *_: None) == binary
    assert calls == []  # cached: nothing runs
    other = ls.ensure_llama_server(extra_cmake_args="-DGGML_BLAS=ON", cache=tmp_path, log=lambda *_: None)
    assert other != binary and calls  # other flags, another build


def test_example_server_unpacked_from_the_sdist(tmp_path, monkeypatch):
    version = ls.llama_version()
    _fake_sdist(tmp_path, version)
    monkeypatch.setattr(ls, "ensure_sdist", lambda v, cache, log: ls.sdist_path(v, cache))
    script = ls.ensure_example_server(tmp_path)
    assert script == tmp_path / f"llama-cpp-python-{version}-examples-server" / "server.py"
    assert script.read_text() == "# fake\n"


def test_server_command_mirrors_hearth():
    cmd = ls.server_command("/x/llama-server", "/m.gguf", 8123, n_threads=2, n_ctx=2048, n_slots=8, api_key="k")
    opt = lambda name: cmd[cmd.index(name) + 1]  # noqa: E731
    assert cmd[0] == "/x/llama-server"
    assert opt("--model") == "/m.gguf" and opt("--port") == "8123" and opt("--host") == "127.0.0.1"
    assert opt("--threads") == opt("--threads-batch") == "2"
    assert opt("--parallel") == "8"
    assert opt("--ctx-size") == str(2048 * 8)  # total; split over the slots as Hearth's is
    assert opt("--batch-size") == opt("--ubatch-size") == "512"
    assert opt("--api-key") == "k" and opt("--alias") == "bench"
    for flag in ("--cont-batching", "--cache-prompt", "--no-kv-unified"):
        assert flag in cmd
    assert "--no-cache-prompt" not in cmd


def _row(tps, p50, p95, t50, t95, cpu):
    return {"tps": tps, "p50": p50, "p95": p95, "ttft50": t50, "ttft95": t95, "server_ms_tok": cpu}


def test_ratio_rows():
    by = {("hearth", 1): _row(90, 1.0, 1.2, 0.02, 0.03, 10.0), ("llama-server", 1): _row(100, 0.8, 1.0, 0.01, 0.02, 8.0),
          ("hearth", 8): _row(200, 2.0, 3.0, 0.1, 0.2, 5.0), ("llama-server", 8): _row(250, 2.0, 2.0, 0.05, 0.1, 5.0),
          ("hearth", 4): _row(150, 1, 1, 1, 1, 1)}  # no llama-server at c=4: no row
    rows = ls.ratio_rows(by, [1, 4, 8])
    assert [r[0] for r in rows] == [1, 8]
    assert len(ls.ratio_headers()) == len(rows[0]) == 1 + 3 * len(ls.COMPARED)
    one = rows[0]
    assert one[1:4] == [90.0, 100.0, pytest.approx(0.9)]
    assert one[4:7] == [1.0, 0.8, pytest.approx(1.25)]
    assert one[-3:] == [10.0, 8.0, pytest.approx(1.25)]
    assert rows[1][3] == pytest.approx(0.8)
    zero = ls.ratio_rows({("hearth", 1): _row(1, 1, 1, 1, 1, 1), ("llama-server", 1): _row(0, 1, 1, 1, 1, 1)}, [1])
    assert math.isnan(zero[0][3])


def test_sql_rows():
    shaped = {
        "hearth": [("cold", 0.8, 1.0, 1290, 20), ("warm", 0.06, 0.3, 1295, 1270), ("warm", 0.04, 0.2, 1292, 1270),
                   ("warm", 0.05, 0.25, 1291, 1270)],
        "llama-server": [("cold", 1.0, 1.2, 1290, 0), ("warm", 0.1, 0.4, 1295, None), ("warm", 0.1, 0.4, 1295, 1272)],
    }
    rows = ls.sql_rows(shaped)
    assert len(ls.SQL_HEADERS) == len(rows[0])
    hearth, base, ratio_row = rows
    assert hearth[0] == "hearth" and hearth[1] == 0.8 and hearth[2] == pytest.approx(0.05)
    assert hearth[3] == pytest.approx(0.05 / 0.8)
    assert hearth[6] == 1290 and hearth[7] == 1270
    assert base[7] == 1272  # a None (not reported) is left out
    assert ratio_row[0] == "hearth/llama-server"
    assert ratio_row[1] == pytest.approx(0.8) and ratio_row[2] == pytest.approx(0.5)
    assert [r[0] for r in ls.sql_rows({"hearth": shaped["hearth"]})] == ["hearth"]  # no base: no ratio row


def test_shaped_rounds_cold_then_warm_on_one_prefix():
    from bench.concurrency import shaped_rounds
    from server.sql.sample.ddl import database_schema

    schema = database_schema("sqlite", name="sample")
    rounds = shaped_rounds(schema, ["How many customers?", "List products.", "Average price?"], 2, 2)
    assert [[k for k, _ in r] for r in rounds] == [["cold", "warm", "warm"]] * 2
    first = [m[0]["content"] for _, m in rounds[0]]
    head = first[0][: first[0].index("Question:")]
    assert len(head) > 2000 and all(c.startswith(head) for c in first)  # one shared schema prefix
    assert len({c[len(head):] for c in first}) == 3  # different tails
    assert rounds[1][0][1][0]["content"].split("\n")[0] != first[0].split("\n")[0]  # a new round starts cold
