"""Scale-out assets: deploy/k8s (KEDA ScaledObject, the fallback HPA, deploy/k8s/gateway's InferencePool
and endpoint picker) and the Helm chart deploy/helm/hearth. They parse, point at the Deployment, pods
and ports they mean, and every metric they query is on a live server's /metrics, where the load
gauges move under load. The chart is rendered by helm where installed, else by tests/deploy/helm_render.py
(and by both, compared, where helm is installed)."""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from server import cli
from server.metrics import LOAD_GAUGES, VLLM_LOAD_GAUGES
from server.settings import load_settings
from server.sql.settings import DatabaseConfig
from tests.conftest import start_server, stop_server
from tests.deploy.helm_render import ChartError, Renderer, deep_merge, render

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
CHART = ROOT / "deploy" / "helm" / "hearth"
KEY = "scaleout-test-key-0123456789"
METRIC_FLAG = re.compile(r"^--[a-z-]+-metric=(.*)$")
METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*(?=\s*(?:\{|\[|\)|$))")
PROMQL_WORDS = {"sum", "avg", "max", "min", "count", "rate", "irate", "by", "without", "on", "ignoring"}
# The chart's choices: each rendering must hold together.
CHOICES = {
    "defaults": {"apiKeys": [KEY]},
    "hpa fallback": {"apiKeys": [KEY], "autoscaling": {"keda": {"enabled": False}}},
    "gateway": {"apiKeys": [KEY], "inferencePool": {"enabled": True}, "vllmMetrics": True},
    "own secret, embedded model": {"existingSecret": "my-hearth", "modelsClaim": "",
                                   "model": {"path": "embedded:smollm2", "n_ctx": 2048}},
    "databases": {"apiKeys": [KEY], "databases": [{"name": "sales", "url": "postgresql://ro:pw@db:5432/sales"}]},
}


def manifests() -> list[dict]:
    return [d for p in sorted(K8S.rglob("*.yaml")) for d in yaml.safe_load_all(p.read_text()) if d]


def helm_template(overrides: dict, tmp_path: Path) -> list[dict]:
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump(overrides))
    out = subprocess.run(["helm", "template", "hearth", str(CHART), "--namespace", "hearth", "-f", str(values)],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def chart(overrides: dict, tmp_path: Path) -> list[dict]:
    docs = render(CHART, overrides)
    if shutil.which("helm"):
        assert _by_key(helm_template(overrides, tmp_path)) == _by_key(docs), "helm and helm_render.py disagree"
    return docs


def _by_key(docs: list[dict]) -> dict:
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


def one(docs: list[dict], kind: str, name: str | None = None) -> dict:
    found = [d for d in docs if d["kind"] == kind and name in (None, d["metadata"]["name"])]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def queried_metrics(docs: list[dict]) -> set[str]:
    """Metric names the autoscalers and the endpoint picker read: ScaledObject Prometheus queries, HPA
    Pods/External metrics, and the EPP's --*-metric= flags."""
    names = set()
    for doc in docs:
        if doc["kind"] == "ScaledObject":
            for trigger in doc["spec"]["triggers"]:
                if trigger["type"] == "prometheus":
                    query = re.sub(r"\{[^}]*\}", "{}", trigger["metadata"]["query"])
                    names |= {n for n in METRIC_NAME.findall(query) if n not in PROMQL_WORDS}
        elif doc["kind"] == "HorizontalPodAutoscaler":
            for metric in doc["spec"].get("metrics", []):
                if metric["type"] in ("Pods", "External", "Object"):
                    names.add(metric[metric["type"].lower()]["metric"]["name"])
        elif doc["kind"] == "Deployment":
            for container in doc["spec"]["template"]["spec"]["containers"]:
                names |= {m.group(1) for a in container.get("args", []) if (m := METRIC_FLAG.match(a)) and m.group(1)}
    return names


# --- everything parses and points where it should --------------------------------------------------------
@pytest.mark.parametrize("path", sorted(K8S.rglob("*.yaml")), ids=lambda p: str(p.relative_to(K8S)))
def test_every_manifest_parses(path):
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    assert docs
    for doc in docs:
        assert doc["apiVersion"] and doc["kind"] and doc["metadata"]["name"], doc


def test_keda_scales_the_deployment_on_queue_depth_and_the_hpa_stays_as_fallback():
    docs = manifests()
    deployment, scaled, hpa = one(docs, "Deployment", "hearth"), one(docs, "ScaledObject"), one(docs, "HorizontalPodAutoscaler")
    target = {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment["metadata"]["name"]}
    assert scaled["spec"]["scaleTargetRef"] == target == hpa["spec"]["scaleTargetRef"]
    assert 2 <= scaled["spec"]["minReplicaCount"] < scaled["spec"]["maxReplicaCount"]
    assert one(docs, "PodDisruptionBudget")["spec"]["minAvailable"] < scaled["spec"]["minReplicaCount"]
    [trigger] = scaled["spec"]["triggers"]
    assert trigger["type"] == "prometheus" and "hearth_requests_waiting" in trigger["metadata"]["query"]
    text = (K8S / "hpa.yaml").read_text() + (K8S / "keda-scaledobject.yaml").read_text()
    assert text.count("never both") == 2, "both files must say that only one of them is applied"


def check_gateway(docs: list[dict], release: str) -> None:
    """The InferencePool selects the Hearth pods on their port; its endpoint picker is the EPP
    Deployment (by Service and port) for that pool, with a plugin config that names declared plugins."""
    pool = one(docs, "InferencePool")
    server = one(docs, "Deployment", release)
    pod = server["spec"]["template"]
    assert pool["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    ports = {p["containerPort"] for c in pod["spec"]["containers"] for p in c["ports"]}
    assert [p["number"] for p in pool["spec"]["targetPorts"]] == [8000] and 8000 in ports
    ref = pool["spec"]["endpointPickerRef"]
    service = one(docs, "Service", ref["name"])
    assert [p["port"] for p in service["spec"]["ports"]] == [ref["port"]["number"]]
    epp = next(d for d in docs if d["kind"] == "Deployment" and d is not server
               and service["spec"]["selector"].items() <= d["spec"]["template"]["metadata"]["labels"].items())
    [container] = epp["spec"]["template"]["spec"]["containers"]
    assert f"--pool-name={pool['metadata']['name']}" in container["args"]
    assert ref["port"]["number"] in {p["containerPort"] for p in container["ports"]}
    config_path = next(a.split("=", 1)[1] for a in container["args"] if a.startswith("--config-file="))
    [mount] = [m for m in container["volumeMounts"] if Path(config_path).parent == Path(m["mountPath"])]
    [volume] = [v for v in epp["spec"]["template"]["spec"]["volumes"] if v["name"] == mount["name"]]
    config = yaml.safe_load(one(docs, "ConfigMap", volume["configMap"]["name"])["data"][Path(config_path).name])
    assert config["kind"] == "EndpointPickerConfig"
    declared = {p.get("name", p["type"]) for p in config["plugins"]}
    used = {ref["pluginRef"] for profile in config["schedulingProfiles"] for ref in profile["plugins"]}
    assert used <= declared and "prefix-cache-scorer" in used
    role = one(docs, "Role", epp["spec"]["template"]["spec"]["serviceAccountName"])
    assert any("inferencepools" in rule["resources"] for rule in role["rules"])
    route = one(docs, "HTTPRoute")
    assert {"kind": "InferencePool", "name": pool["metadata"]["name"]}.items() <= route["spec"]["rules"][0]["backendRefs"][0].items()


def test_the_inference_pool_routes_to_the_hearth_pods():
    check_gateway(manifests(), "hearth")


def serve_argv(container: dict) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="hearth serve", allow_abbrev=False)
    cli.add_arguments(parser)
    return parser.parse_args(container["args"])  # the image's ENTRYPOINT supplies `hearth serve --host --port`


@pytest.mark.parametrize("choice", sorted(CHOICES))
def test_the_chart_renders_and_holds_together(choice, tmp_path, monkeypatch):
    overrides = CHOICES[choice]
    docs = chart(overrides, tmp_path)
    values = deep_merge(yaml.safe_load((CHART / "values.yaml").read_text()), overrides)
    deployment = one(docs, "Deployment", "hearth")
    pod = deployment["spec"]["template"]
    labels = pod["metadata"]["labels"]
    for kind in ("Service", "PodDisruptionBudget"):
        selector = one(docs, kind, "hearth")["spec"]["selector"]
        assert selector.get("matchLabels", selector).items() <= labels.items(), kind
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    scalers = [d for d in docs if d["kind"] in ("ScaledObject", "HorizontalPodAutoscaler")]
    assert [d["kind"] for d in scalers] == ["ScaledObject" if values["autoscaling"]["keda"]["enabled"]
                                            else "HorizontalPodAutoscaler"]
    assert scalers[0]["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    if values["inferencePool"]["enabled"]:
        check_gateway(docs, "hearth")
    else:
        assert not [d for d in docs if d["kind"] == "InferencePool"]
    # The pod's settings load as `hearth serve` would load them: flags, env, the mounted hearth.yaml.
    [container] = pod["spec"]["containers"]
    args = serve_argv(container)
    [mount] = [m for m in container["volumeMounts"] if Path(m["mountPath"]) == Path(args.config).parent]
    [volume] = [v for v in pod["spec"]["volumes"] if v["name"] == mount["name"]]
    config_text = one(docs, "ConfigMap", volume["configMap"]["name"])["data"][Path(args.config).name]
    (tmp_path / "hearth.yaml").write_text(config_text)
    secret_name = container["envFrom"][0]["secretRef"]["name"]
    secret = next((d for d in docs if d["kind"] == "Secret" and d["metadata"]["name"] == secret_name), None)
    env = {e["name"]: e["value"] for e in container["env"]} | (secret or {}).get("stringData", {})
    if secret is None:
        assert secret_name == values["existingSecret"], "the pods read a Secret the chart does not make"
        env["HEARTH_API_KEYS"] = json.dumps([KEY])  # what the operator's own Secret holds
    for name in [n for n in os.environ if n.startswith("HEARTH_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("HEARTH_DATA_DIR", str(tmp_path))
    settings = load_settings(tmp_path / "hearth.yaml", host="0.0.0.0", port=8000)  # the image's flags
    assert settings.all_api_keys() and settings.vllm_metrics is values["vllmMetrics"]
    assert [m.name for m in settings.models] == [values["model"]["name"]] == [settings.default_model]
    assert settings.models[0].n_threads <= float(container["resources"]["limits"]["cpu"])
    if values["databases"]:
        assert [d.name for d in settings.databases] == [d["name"] for d in values["databases"]]
        assert all(isinstance(d, DatabaseConfig) for d in settings.databases)
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    path = settings.models[0].path
    assert path.startswith("embedded:") or ("/models" in mounts and path.startswith("/models/"))
    grace = pod["spec"]["terminationGracePeriodSeconds"]
    assert settings.drain_timeout_s + 5 + 5 <= grace, "the drain and the preStop sleep must fit in the grace period"


def test_the_chart_refuses_to_render_without_api_keys(tmp_path):
    with pytest.raises(ChartError, match="apiKeys"):
        render(CHART, {})
    if shutil.which("helm"):
        with pytest.raises(subprocess.CalledProcessError):
            helm_template({}, tmp_path)


def test_the_renderer_refuses_what_it_does_not_implement():
    renderer = Renderer(CHART, {"a": "x"})
    for text in ('{{ include "x" . }}', "{{ .Values.a | upper }}", "{{ range .Values.a }}{{ end }}", "{{ if .Values.a }}"):
        with pytest.raises(ChartError):
            renderer.render_text(text)
    assert renderer.render_text("a {{- .Values.a | quote }} {{ if not .Values.b }}y{{ else }}n{{ end -}} \n z") == 'a"x" yz'


def test_every_query_names_a_metric():
    docs = manifests() + render(CHART, CHOICES["gateway"]) + render(CHART, {"apiKeys": [KEY]})
    assert queried_metrics(docs) == {"hearth_requests_waiting", "hearth_requests_running", "hearth_kv_cache_usage_ratio"}


# --- against a live server ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def busy_server(tmp_path_factory):
    """One slot, so that a second request waits; vLLM's names on."""
    tmp = tmp_path_factory.mktemp("scaleout")
    server = start_server(tmp, "--api-keys", KEY, "--n-slots", "1", "--n-ctx", "512", "--max-queue", "8",
                          "--vllm-metrics", env={"HEARTH_DATA_DIR": str(tmp)})
    yield server
    stop_server(server)


def scrape(server) -> dict[str, float]:
    """name -> value of every gauge sample (one model is served)."""
    families = text_string_to_metric_families(httpx.get(server.base_url + "/metrics", timeout=10).text)
    return {s.name: s.value for f in families for s in f.samples}


@pytest.mark.model
def test_every_metric_a_manifest_or_the_chart_queries_is_on_a_live_server(busy_server):
    docs = manifests() + render(CHART, CHOICES["gateway"]) + render(CHART, CHOICES["hpa fallback"])
    exported = scrape(busy_server)
    wanted = queried_metrics(docs) | set(LOAD_GAUGES) | set(VLLM_LOAD_GAUGES)
    missing = sorted(wanted - set(exported))
    assert not missing, f"queried but not exported: {missing}"


@pytest.mark.model
def test_the_load_gauges_move_under_load(busy_server):
    idle = scrape(busy_server)
    assert (idle["hearth_requests_waiting"], idle["hearth_requests_running"], idle["hearth_kv_cache_usage_ratio"]) == (0, 0, 0)
    done = []

    def complete(i: int) -> None:
        body = {"model": "smollm2-135m-instruct", "prompt": f"Count: {i}, {i + 1}, {i + 2},", "max_tokens": 24,
                "temperature": 0, "stream": True}
        with httpx.stream("POST", busy_server.base_url + "/v1/completions", json=body, timeout=300,
                          headers={"Authorization": f"Bearer {KEY}"}) as response:
            done.append((response.status_code, "".join(response.iter_text())))

    threads = [threading.Thread(target=complete, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    seen, deadline = [], time.monotonic() + 300  # a ceiling for a hung server, not a speed bound
    while any(t.is_alive() for t in threads) and time.monotonic() < deadline:
        seen.append(scrape(busy_server))
        time.sleep(0.25)
    for t in threads:
        t.join(timeout=300)
    assert [status for status, _ in done] == [200] * 3 and all("[DONE]" in text for _, text in done)
    full = [s for s in seen if s["hearth_requests_running"] == 1 and s["hearth_requests_waiting"] >= 1]
    assert full, f"never saw the slot busy with a queue: {[(s['hearth_requests_running'], s['hearth_requests_waiting']) for s in seen]}"
    assert all(0 < s["hearth_kv_cache_usage_ratio"] <= 1 for s in full)
    assert max(s["hearth_requests_waiting"] for s in seen) <= 2  # three requests, one slot
    for sample in seen:  # vLLM's names carry the same values, scrape by scrape
        for theirs, ours in VLLM_LOAD_GAUGES.items():
            assert sample[theirs] == sample[ours]
    after = scrape(busy_server)
    assert (after["hearth_requests_waiting"], after["hearth_requests_running"], after["hearth_kv_cache_usage_ratio"]) == (0, 0, 0)
