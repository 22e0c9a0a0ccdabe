"""deploy/ agrees with the server it deploys: every file is parsed as data and checked against the
real settings model, the real `hearth serve` flag parser and the routes of the real app (serving
tests.fakes.FakeEngine). No container engine or cluster is needed."""

from __future__ import annotations

import argparse
import functools
import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import get_args
from urllib.parse import urlsplit

import pytest
import yaml
from pydantic import BaseModel

from server import cli
from server.app import create_app
from server.drain import CUT_GRACE_S
from server.settings import ServerSettings
from tests.fakes import FakeEngine

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
SYSTEMD, CONTAINER, K8S = DEPLOY / "systemd", DEPLOY / "container", DEPLOY / "k8s"
# HEARTH_* read straight from os.environ (not a settings field), and the file that reads it.
EXTRA_ENV = {"HEARTH_DATA_DIR": ROOT / "server" / "paths.py"}
ENV_NAME = re.compile(r"\bHEARTH_[A-Z0-9_]*[A-Z0-9]\b")
ENV_LINE = re.compile(r"^(#?)(HEARTH_[A-Z0-9_]+)=(.*)$", re.M)
LOCAL_URL = re.compile(r"https?://(?:127\.0\.0\.1|localhost|hearth[\w.<>-]*)(?::(\d+))?(/[^\s'\"\\)`]*)?")
PORT = 8000  # the one port every file must agree on


# --- the server ----------------------------------------------------------------------------------
def env_names() -> set[str]:
    """HEARTH_<FIELD> for every ServerSettings field, HEARTH_<SECTION>__<FIELD> inside sections."""
    names = set(EXTRA_ENV)
    for name, field in ServerSettings.model_fields.items():
        names.add(f"HEARTH_{name.upper()}")
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            names |= {f"HEARTH_{name.upper()}__{sub.upper()}" for sub in field.annotation.model_fields}
    return names


def _model_in(annotation) -> type[BaseModel] | None:  # Model, list[Model], Model | None -> Model
    candidates = (annotation, *get_args(annotation))
    return next((a for a in candidates if isinstance(a, type) and issubclass(a, BaseModel)), None)


def unknown_keys(data, model: type[BaseModel] = ServerSettings, where: str = "") -> list[str]:
    """Keys no settings model defines, at any depth. ModelConfig and SqlSettings ignore unknown
    keys, so a typo under `models:` or `sql:` would otherwise pass validation silently."""
    if isinstance(data, list):
        return [k for i, item in enumerate(data) for k in unknown_keys(item, model, f"{where}[{i}]")]
    found = []
    for key, value in (data.items() if isinstance(data, dict) else ()):
        if key not in model.model_fields:
            found.append(f"{where}.{key}".lstrip("."))
        elif inner := _model_in(model.model_fields[key].annotation):
            found += unknown_keys(value, inner, f"{where}.{key}")
    return found


def serve(argv: list[str]) -> argparse.Namespace:
    """`hearth serve ...` parsed by the real parser: an unknown or misspelt flag fails the test."""
    assert Path(argv[0]).name == "hearth" and argv[1] == "serve", argv
    parser = argparse.ArgumentParser(prog="hearth serve", allow_abbrev=False)
    cli.add_arguments(parser)
    return parser.parse_args(argv[2:])


@pytest.fixture(scope="module")
def routes(tmp_path_factory) -> dict[str, set[str]]:
    """Path -> methods of the real app, from the OpenAPI schema FastAPI builds out of its routes
    (app.routes itself lists included routers, not their routes, since FastAPI 0.16x)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HEARTH_DATA_DIR", str(tmp_path_factory.mktemp("data")))
        paths = create_app(ServerSettings(), FakeEngine()).openapi()["paths"]
    return {path: {method.upper() for method in ops} for path, ops in paths.items()}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for name in [n for n in os.environ if n.startswith("HEARTH_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("HEARTH_DATA_DIR", str(tmp_path / "data"))


# --- the deploy files, as data ------------------------------------------------------------------
def k8s(kind: str, name: str | None = None) -> dict:
    found = [d for p in sorted(K8S.glob("*.yaml")) for d in yaml.safe_load_all(p.read_text())
             if d and d["kind"] == kind and name in (None, d["metadata"]["name"])]
    assert len(found) == 1, f"expected one {kind} {name or ''} in deploy/k8s, found {len(found)}"
    return found[0]


def pod() -> dict:
    return k8s("Deployment")["spec"]["template"]


def container() -> dict:
    [c] = pod()["spec"]["containers"]
    return c


def named_port(port: int | str) -> int:
    return port if isinstance(port, int) else {p["name"]: p["containerPort"] for p in container()["ports"]}[port]


def compose() -> dict:
    return yaml.safe_load((CONTAINER / "compose.yaml").read_text())["services"]["hearth"]


def stages() -> list[list[tuple[str, str]]]:
    """Containerfile (instruction, arguments) per stage: [0] before the first FROM, [-1] runtime."""
    lines = [ln for ln in (CONTAINER / "Containerfile").read_text().splitlines() if not ln.lstrip().startswith("#")]
    result: list[list[tuple[str, str]]] = [[]]
    for line in "\n".join(lines).replace("\\\n", " ").splitlines():
        word, _, rest = line.strip().partition(" ")
        if word.upper() == "FROM":
            result.append([])
        if word:
            result[-1].append((word.upper(), rest.strip()))
    return result


def instr(word: str, stage: int = -1) -> list[str]:
    return [args for w, args in stages()[stage] if w == word]


def entrypoint() -> list[str]:
    return json.loads(instr("ENTRYPOINT")[-1])


def unit() -> dict[str, list[str]]:
    """[Service] of hearth.service: key -> every value, in order (keys such as Environment= repeat)."""
    found: dict[str, list[str]] = {}
    section = re.search(r"^\[Service\]$(.*?)(?=^\[|\Z)", (SYSTEMD / "hearth.service").read_text(), re.M | re.S)
    for key, value in re.findall(r"^(\w+)=(.*)$", section.group(1), re.M):
        found.setdefault(key, []).append(value.strip())
    return found


def env_file(path: Path, active_only: bool = False) -> dict[str, str]:
    """HEARTH_* lines (commented-out ones too unless active_only), without the one pair of
    surrounding quotes that systemd's EnvironmentFile= and Compose's env_file strip."""
    found = {}
    for hashed, name, value in ENV_LINE.findall(path.read_text()):
        if not (active_only and hashed):
            quoted = len(value) >= 2 and value[0] == value[-1] and value[0] in "'\""
            found[name] = value[1:-1] if quoted else value
    return found


def k8s_config_text() -> str:
    """The hearth.yaml that the ConfigMap volume mounted at the --config path's folder holds."""
    config = Path(serve(entrypoint() + container()["args"]).config)
    [mount] = [m["name"] for m in container()["volumeMounts"] if Path(m["mountPath"]) == config.parent]
    [cm] = [v["configMap"] for v in pod()["spec"]["volumes"] if v["name"] == mount]
    items = {i["path"]: i["key"] for i in cm.get("items", [])}
    return k8s("ConfigMap", cm["name"])["data"][items.get(config.name, config.name)]


def pod_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for source in container().get("envFrom", []):
        if "configMapRef" in source:
            env |= k8s("ConfigMap", source["configMapRef"]["name"])["data"]
        else:
            env |= k8s("Secret", source["secretRef"]["name"])["stringData"]
    return env | {e["name"]: e["value"] for e in container().get("env", []) if "value" in e}


def deployments() -> dict[str, tuple[list[str], dict[str, str], str | None]]:
    """Each way of running Hearth: (command line, environment, text of the --config YAML)."""
    execstart = shlex.split(unit()["ExecStart"][-1])
    unit_env = dict(kv.split("=", 1) for value in unit().get("Environment", []) for kv in shlex.split(value))
    compose_argv = entrypoint() + compose().get("command", [])
    compose_env = env_file(CONTAINER / "hearth.env.example", active_only=True) | compose().get("environment", {})
    installed = re.search(r"<<'YAML'\n(.*?)\nYAML\n", (SYSTEMD / "install.sh").read_text(), re.S)
    installed = installed and installed.group(1)  # the hearth.yaml that install.sh writes
    return {
        "systemd as installed": (execstart, unit_env, installed),
        "systemd + hearth.yaml.example": (execstart, unit_env, (SYSTEMD / "hearth.yaml.example").read_text()),
        "systemd + hearth.env.example": (execstart, unit_env | env_file(SYSTEMD / "hearth.env.example"), installed),
        "compose": (compose_argv, compose_env, None),
        "compose + hearth.env.example": (compose_argv, compose_env | env_file(CONTAINER / "hearth.env.example"), None),
        "kubernetes": (entrypoint() + container()["args"], pod_env(), k8s_config_text()),
    }


def load_as_deployed(name: str, tmp_path: Path) -> ServerSettings:
    """Settings built the way `hearth serve` builds them from that deployment's flags, env and YAML.
    Paths that exist only on a server (the YAML, the API-key file, the data dir) point into tmp_path."""
    argv, env, config_text = deployments()[name]
    (tmp_path / "api-keys").write_text("# one key per line\nkey-from-file\n")
    (tmp_path / "hearth.yaml").write_text(config_text or "")
    stubs = {"HEARTH_CONFIG": tmp_path / "hearth.yaml", "HEARTH_API_KEYS_FILE": tmp_path / "api-keys",
             "HEARTH_DATA_DIR": tmp_path}
    problems = unknown_keys(yaml.safe_load(config_text or "{}"))
    problems += [f"{var}: {key}" for var, value in env.items() if value.startswith(("[", "{"))
                 for key in unknown_keys({var.removeprefix("HEARTH_").lower(): json.loads(value)})]
    assert not problems, f"{name}: keys that are not settings: {problems}"
    args = serve(argv)
    if args.config:
        assert config_text is not None, f"{name} passes --config but ships no such file"
        args.config = str(tmp_path / "hearth.yaml")
    with pytest.MonkeyPatch.context() as mp:
        for var, value in env.items():
            mp.setenv(var, str(stubs.get(var, value)))
        return cli.build_settings(args)


# --- settings, variables, URLs ------------------------------------------------------------------
@pytest.mark.parametrize("name", ["systemd as installed", "systemd + hearth.yaml.example",
                                  "systemd + hearth.env.example", "compose", "compose + hearth.env.example",
                                  "kubernetes"])
def test_settings_load_as_deployed(name, tmp_path):
    settings = load_as_deployed(name, tmp_path)  # raises on a bad value, or on 0.0.0.0 with no key
    public = settings.host not in ("127.0.0.1", "localhost", "::1")
    assert not public or (settings.all_api_keys() and not settings.allow_unauthenticated_public)
    assert name != "systemd as installed" or not public, "a fresh install must stay on loopback"
    assert settings.default_model in {None, *(n for m in settings.models for n in (m.name, *m.aliases))}
    assert settings.sql.default_database in {None, *(db.name for db in settings.databases)}


@pytest.mark.parametrize("path", sorted(p for p in DEPLOY.rglob("*") if p.is_file()),
                         ids=lambda p: str(p.relative_to(DEPLOY)))
def test_names_and_urls_in_every_file_are_real(path, routes):
    """Every HEARTH_* in deploy/ (values, comments, README) is something the server reads, and
    every URL of the server (curl lines, health checks, in-cluster address) its port and a route."""
    text = path.read_text()
    unknown = set(ENV_NAME.findall(text)) - env_names()
    assert not unknown, f"{path.name} names variables the server does not read: {sorted(unknown)}"
    for port, url_path in LOCAL_URL.findall(text):
        assert port in ("", str(PORT)), f"{path.name}: port {port}"
        assert url_path.rstrip(".,:") in ("", "/", "/v1", *routes), f"{path.name}: {url_path} is not a route"


# --- probes and ports ----------------------------------------------------------------------------
PROBES = {"k8s readinessProbe": "/ready", "k8s livenessProbe": "/health", "k8s startupProbe": "/health",
          "prometheus annotations": "/metrics", "Containerfile HEALTHCHECK": "/health",
          "compose healthcheck": "/health"}


def probes() -> dict[str, tuple[str, int]]:
    """Every health check and scrape target: where it is declared -> (path, port)."""
    c, notes = container(), pod()["metadata"]["annotations"]
    image, comp = (urlsplit(LOCAL_URL.search(t).group(0)) for t in (instr("HEALTHCHECK")[-1],
                                                                     " ".join(compose()["healthcheck"]["test"])))
    return {**{f"k8s {p}": (c[p]["httpGet"]["path"], named_port(c[p]["httpGet"]["port"]))
               for p in ("readinessProbe", "livenessProbe", "startupProbe")},
            "prometheus annotations": (notes["prometheus.io/path"], int(notes["prometheus.io/port"])),
            "Containerfile HEALTHCHECK": (image.path, image.port), "compose healthcheck": (comp.path, comp.port)}


@pytest.mark.parametrize("source", sorted(PROBES))
def test_probe_hits_a_get_route_of_the_app(source, routes):
    path = probes()[source][0]
    assert path == PROBES[source], f"{source} probes {path}"
    assert "GET" in routes.get(path, ()), f"{source}: GET {path} is not a route of the app ({sorted(routes)})"


def test_ports_agree(tmp_path):
    [svc] = k8s("Service")["spec"]["ports"]
    ports = {
        "Deployment containerPort": named_port("http"), "Containerfile EXPOSE": int(instr("EXPOSE")[0].split("/")[0]),
        "Service port": svc["port"], "Service targetPort": named_port(svc["targetPort"]),
        "compose published": int(compose()["ports"][0].rsplit(":", 1)[1]),
        **{source: port for source, (_, port) in probes().items()},
        # what `hearth serve` binds in each deployment: --port, else HEARTH_PORT, else the YAML
        **{f"{name}: binds": load_as_deployed(name, tmp_path).port for name in deployments()},
    }
    assert set(ports.values()) == {PORT}, f"ports disagree: {ports}"
    assert compose()["ports"] == [f"127.0.0.1:{PORT}:{PORT}"], "compose must publish on loopback only"
    assert k8s("Service")["spec"]["type"] == "ClusterIP"


# --- systemd -----------------------------------------------------------------------------------
UNIT_RULES = {  # [Service] key -> accepted values
    "User": {"hearth"}, "Group": {"hearth"}, "NoNewPrivileges": {"yes", "true"},
    "ProtectSystem": {"strict", "full"}, "ProtectHome": {"yes", "true", "read-only", "tmpfs"},
    "PrivateTmp": {"yes", "true"}, "Restart": {"on-failure"}, "CapabilityBoundingSet": {""},
    "EnvironmentFile": {"-/etc/hearth/hearth.env"}, "StateDirectory": {"hearth"},
}


@pytest.mark.parametrize("key", sorted(UNIT_RULES))
def test_unit_is_hardened(key):
    values = unit().get(key)
    assert values and values[-1] in UNIT_RULES[key], f"hearth.service: {key}={values} (want {UNIT_RULES[key]})"


def test_installer_is_valid_bash_and_matches_the_unit():
    path, service = SYSTEMD / "install.sh", unit()
    text = path.read_text()
    assert text.startswith("#!/usr/bin/env bash\n") and "\nset -euo pipefail\n" in text and os.access(path, os.X_OK)
    result = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0 and not result.stderr, result.stderr
    state = f"/var/lib/{service['StateDirectory'][-1]}"
    assert f"HEARTH_DATA_DIR={state}" in service["Environment"] and service["WorkingDirectory"] == [state]
    assert shlex.split(service["ExecStart"][-1])[0] == "/opt/hearth/.venv/bin/hearth"
    for line in ("PREFIX=/opt/hearth", 'VENV="${PREFIX}/.venv"', "SERVICE_USER=hearth", f"STATE_DIR={state}"):
        assert f"\nreadonly {line}\n" in text, f"install.sh lacks `readonly {line}`"


def test_systemd_analyze_verify():
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze is not installed")
    result = subprocess.run(["systemd-analyze", "verify", str(SYSTEMD / "hearth.service")],
                            capture_output=True, text=True, timeout=60)
    # On a build machine the one acceptable complaint is that /opt/hearth is not installed.
    problems = [ln for ln in (result.stdout + result.stderr).splitlines() if ln and "/opt/hearth/" not in ln]
    assert not problems, "\n".join(problems)


# --- container image -----------------------------------------------------------------------------
def test_llama_cpp_builds_with_the_makefile_cmake_args():
    make = re.search(r"^LLAMA_CMAKE_ARGS := (.+?)(?<!\\)$", (ROOT / "Makefile").read_text(), re.M | re.S)
    expected = make.group(1).replace("\\\n", " ").split()
    [builder] = [i for i in range(1, len(stages()) - 1) if any("pip install" in a for a in instr("RUN", i))]
    [arg] = [a for a in instr("ARG", builder) if a.startswith("CMAKE_ARGS=")]
    assert shlex.split(arg.partition("=")[2])[0].split() == expected, "Containerfile CMAKE_ARGS drifted"
    installer = re.search(r'^readonly LLAMA_CMAKE_ARGS="([^"]+)"$', (SYSTEMD / "install.sh").read_text(), re.M)
    assert installer and installer.group(1).split() == expected, "install.sh LLAMA_CMAKE_ARGS drifted"
    assert re.search(r"\b(build-essential|gcc)\b.*\bcmake\b", " ".join(instr("RUN", builder))), "no compiler"


# --- Kubernetes ----------------------------------------------------------------------------------
@pytest.mark.parametrize("kind, keys", [("Deployment", ["selector", "matchLabels"]), ("Service", ["selector"]),
                                       ("PodDisruptionBudget", ["selector", "matchLabels"])])
def test_selector_matches_the_pod_labels(kind, keys):
    selector, labels = functools.reduce(dict.get, keys, k8s(kind)["spec"]), pod()["metadata"]["labels"]
    assert selector and selector.items() <= labels.items(), f"{kind} selects {selector}, pods carry {labels}"


def test_several_replicas_and_the_hpa_scales_the_deployment():
    deployment, hpa, pdb = k8s("Deployment"), k8s("HorizontalPodAutoscaler"), k8s("PodDisruptionBudget")
    target = hpa["spec"]["scaleTargetRef"]
    assert target == {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment["metadata"]["name"]}
    assert deployment["spec"]["replicas"] >= 2 and 2 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
    assert pdb["spec"]["minAvailable"] < hpa["spec"]["minReplicas"], "the PDB would block every drain"
    assert container()["resources"]["requests"]["cpu"], "a CPU Utilization target needs a CPU request"


def test_pod_runs_as_the_image_user_on_a_read_only_root(tmp_path):
    users = instr("USER")
    assert users, "the runtime stage of the Containerfile has no USER: the image would run as root"
    uid = int(users[-1].split(":")[0])  # numeric, so that Kubernetes' runAsNonRoot can check it
    pod_security, security = pod()["spec"]["securityContext"], container()["securityContext"]
    assert uid != 0 and pod_security["runAsNonRoot"] is True and pod_security["runAsUser"] == uid
    assert security["allowPrivilegeEscalation"] is False and security["readOnlyRootFilesystem"] is True
    mounts = {m["mountPath"]: m for m in container()["volumeMounts"]}
    volumes = {v["name"]: v for v in pod()["spec"]["volumes"]}
    for path in (pod_env()["HEARTH_DATA_DIR"], "/tmp"):  # writable scratch
        assert "emptyDir" in volumes[mounts[path]["name"]] and not mounts[path].get("readOnly"), path
    read_only = [path for path, m in mounts.items() if m.get("readOnly")]
    limit = float(container()["resources"]["limits"]["cpu"])
    for model in load_as_deployed("kubernetes", tmp_path).models:
        assert model.path.startswith("embedded:") or any(model.path.startswith(p + "/") for p in read_only)
        assert model.n_threads <= limit, f"{model.name}: n_threads {model.n_threads} > CPU limit {limit}"


# --- graceful stop ---------------------------------------------------------------------------------
# After the drain: CUT_GRACE_S to cancel what is left, then the engines are freed and the process
# exits (about a second for a 7B model). The supervisor must wait at least this long after it.
STOP_MARGIN_S = 5
DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|us|h|hr|min|m|sec|s)?")
UNIT_SECONDS = {"us": 1e-6, "ms": 1e-3, "s": 1, "sec": 1, None: 1, "m": 60, "min": 60, "h": 3600, "hr": 3600}


def seconds(value: str | int) -> float:
    """A systemd or Compose duration ("45", "45s", "1min 30s", "1m30s") in seconds."""
    parts = DURATION.findall(str(value).strip())
    assert parts and DURATION.sub("", str(value)).strip() == "", f"not a duration: {value!r}"
    return sum(float(n) * UNIT_SECONDS[u or None] for n, u in parts)


def stop_window(name: str) -> float:
    """Seconds from the SIGTERM that starts the drain to the supervisor's SIGKILL, per deployment."""
    if name.startswith("systemd"):
        service = unit()
        assert service.get("KillSignal", ["SIGTERM"])[-1] in ("SIGTERM", "SIGINT", "15", "2")
        return seconds((service.get("TimeoutStopSec") or service["TimeoutSec"])[-1])
    if name.startswith("compose"):
        assert compose().get("stop_signal", "SIGTERM") in ("SIGTERM", "SIGINT")
        return seconds(compose().get("stop_grace_period", "10s"))  # Compose's default is 10 s
    # Kubernetes: the grace period counts from the start of preStop; SIGTERM comes after it.
    grace = pod()["spec"].get("terminationGracePeriodSeconds", 30)
    command = container().get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", ["sleep", "0"])
    assert command[0] == "sleep", f"preStop {command}: only a sleep has a known length"
    return grace - seconds(command[1])


@pytest.mark.parametrize("name", ["systemd as installed", "systemd + hearth.yaml.example",
                                  "systemd + hearth.env.example", "compose", "compose + hearth.env.example",
                                  "kubernetes"])
def test_drain_ends_before_the_supervisor_kills(name, tmp_path):
    """SIGTERM drains for drain_timeout_s, then exits 0: every stop timeout must leave room for it,
    or in-flight generations that the drain promised to finish are SIGKILLed."""
    assert instr("STOPSIGNAL") in ([], ["SIGTERM"]), "the image must stop with SIGTERM"
    drain = load_as_deployed(name, tmp_path).drain_timeout_s
    window = stop_window(name)
    assert drain + CUT_GRACE_S + STOP_MARGIN_S <= window, (
        f"{name}: drain {drain} s + {CUT_GRACE_S + STOP_MARGIN_S} s does not fit in the {window} s before SIGKILL")


def test_deployment_sets_the_drain_timeout_next_to_its_grace_period():
    env = {e["name"]: e.get("value") for e in container().get("env", [])}
    assert "HEARTH_DRAIN_TIMEOUT_S" in env, "set HEARTH_DRAIN_TIMEOUT_S in deployment.yaml, beside its grace period"
    assert (seconds("45"), seconds("45s"), seconds("1min 30s"), seconds("1m30s"), seconds(5)) == (45, 45, 90, 90, 5)
    with pytest.raises(AssertionError):
        seconds("forever")


# --- the checks above can fail -------------------------------------------------------------------
def test_the_checkers_reject_broken_input(routes):
    bad = {"models": [{"name": "m", "n_thread": 4}], "sql": {"few_shots": 3}, "hostname": "x"}
    assert unknown_keys(bad) == ["models[0].n_thread", "sql.few_shots", "hostname"]
    assert {"HEARTH_API_KEY", "HEARTH_SQL__FEW_SHOTS", "HEARTH_MODEL"}.isdisjoint(env_names())
    assert "/healthz" not in routes and routes["/v1/chat/completions"] == {"POST"}
    with pytest.raises(SystemExit):
        serve(["hearth", "serve", "--prot", "8000"])
    for name, source in EXTRA_ENV.items():  # a stale EXTRA_ENV entry would hide a dead variable
        assert name in source.read_text() and name.removeprefix("HEARTH_").lower() not in ServerSettings.model_fields
