"""Prometheus metrics, one registry per app (two apps in one process never share counters)."""

from __future__ import annotations

from typing import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

from .engine.base import EngineStats

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
TTFT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "hearth_requests", "HTTP requests by route and status", ["route", "method", "status"], registry=r
        )
        self.latency = Histogram(
            "hearth_request_seconds", "HTTP request latency", ["route"], buckets=LATENCY_BUCKETS, registry=r
        )
        self.in_flight = Gauge("hearth_requests_in_flight", "HTTP requests being served", registry=r)
        self.ttft = Histogram(
            "hearth_time_to_first_token_seconds", "Time from request to first token", ["model"],
            buckets=TTFT_BUCKETS, registry=r,
        )
        self.prompt_tokens = Counter("hearth_prompt_tokens", "Prompt tokens processed", ["model"], registry=r)
        self.completion_tokens = Counter(
            "hearth_completion_tokens", "Completion tokens generated", ["model"], registry=r
        )
        self.cached_tokens = Counter(
            "hearth_prompt_cached_tokens", "Prompt tokens reused from the prefix cache", ["model"], registry=r
        )
        self.tokens_per_second = Histogram(
            "hearth_decode_tokens_per_second", "Per-request decode speed", ["model"],
            buckets=(1, 5, 10, 20, 40, 60, 80, 100, 150, 200, 300), registry=r,
        )
        self.model_load = Gauge("hearth_model_load_seconds", "Time taken to load each model", ["model"], registry=r)
        self.sql_requests = Counter(
            "hearth_sql_requests", "Text-to-SQL requests by database and outcome", ["database", "outcome"], registry=r
        )
        self.sql_validations = Counter(
            "hearth_sql_validations", "SQL statements validated, by database and failing rule ('passed' if none)",
            ["database", "rule"], registry=r,
        )
        # Per API key, labelled by key id (server/keys.py: a hash, never the key); server/limits.py.
        self.key_requests = Counter("hearth_key_requests", "Requests admitted, by API key id", ["key_id"], registry=r)
        self.key_rate_limited = Counter(
            "hearth_key_rate_limited", "Requests refused with 429 by a per-key limit (requests, tokens, concurrent)",
            ["key_id", "limit"], registry=r,
        )
        self.key_tokens = Counter(
            "hearth_key_tokens", "Prompt + completion tokens used, by API key id", ["key_id"], registry=r
        )
        self.key_in_flight = Gauge("hearth_key_requests_in_flight", "Requests in flight, by API key id", ["key_id"],
                                   registry=r)
        self.audit_records = Counter(
            "hearth_audit_records", "Audit log lines written or failed (server/audit.py)", ["outcome"], registry=r
        )

    def watch_engines(self, engines: Callable[[], Iterable[tuple[str, EngineStats]]], vllm_names: bool = False) -> None:
        """Slots, queue depth, load gauges and prefix-cache counters, read from the engines at scrape
        time; with `vllm_names` the load gauges also under vLLM's names (VLLM_LOAD_GAUGES)."""
        self.registry.register(_EngineCollector(engines, vllm_names))

    def record_generation(self, model: str, prompt: int, completion: int, cached: int,
                          ttft: float | None, decode_seconds: float) -> None:
        self.prompt_tokens.labels(model).inc(prompt)
        self.completion_tokens.labels(model).inc(completion)
        self.cached_tokens.labels(model).inc(cached)
        if ttft is not None:
            self.ttft.labels(model).observe(ttft)
        if completion > 1 and decode_seconds > 0:
            self.tokens_per_second.labels(model).observe((completion - 1) / decode_seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)


# The load gauges that routers and autoscalers read: name -> (EngineStats field, help). Hearth's own
# names follow Prometheus' conventions (a 0-1 fraction ends in _ratio).
LOAD_GAUGES = {
    "hearth_requests_waiting": ("queue_depth", "Requests waiting for a slot"),
    "hearth_requests_running": ("slots_in_use", "Requests generating in a slot"),
    "hearth_kv_cache_usage_ratio": ("kv_cache_usage", "KV cells held by running requests, 0-1"),
}
# The same gauges under the names vLLM exports, which the Gateway API Inference Extension's endpoint
# picker, KEDA recipes and vLLM's production-stack router read by default (sources cited in
# deploy/README.md). Label `model_name`, as vLLM's. vLLM renamed gpu_cache_usage_perc to
# kv_cache_usage_perc; the production-stack router still reads the old name, so both are exported.
VLLM_LOAD_GAUGES = {
    "vllm:num_requests_waiting": "hearth_requests_waiting",
    "vllm:num_requests_running": "hearth_requests_running",
    "vllm:kv_cache_usage_perc": "hearth_kv_cache_usage_ratio",
    "vllm:gpu_cache_usage_perc": "hearth_kv_cache_usage_ratio",
}


class _EngineCollector:
    def __init__(self, engines: Callable[[], Iterable[tuple[str, EngineStats]]], vllm_names: bool = False):
        self._engines = engines
        self._vllm_names = vllm_names

    def collect(self):
        gauges = {
            "slots_total": GaugeMetricFamily("hearth_slots_total", "Batch slots per model", labels=["model"]),
            "slots_in_use": GaugeMetricFamily("hearth_slots_in_use", "Slots generating now", labels=["model"]),
            "queue_depth": GaugeMetricFamily("hearth_queue_depth", "Requests waiting for a slot", labels=["model"]),
            "prefix_cache_hits": GaugeMetricFamily(
                "hearth_prefix_cache_hits", "Requests that reused cached prefix KV cells", labels=["model"]),
            "prefix_cache_lookups": GaugeMetricFamily(
                "hearth_prefix_cache_lookups", "Requests placed in a slot", labels=["model"]),
        }
        hit_rate = GaugeMetricFamily("hearth_prefix_cache_hit_rate", "Prefix-cache hit rate", labels=["model"])
        load = {name: GaugeMetricFamily(name, help_, labels=["model"]) for name, (_, help_) in LOAD_GAUGES.items()}
        vllm = {name: GaugeMetricFamily(name, f"{LOAD_GAUGES[ours][1]} (= {ours})", labels=["model_name"])
                for name, ours in VLLM_LOAD_GAUGES.items()} if self._vllm_names else {}
        for name, stats in self._engines():
            for key, family in gauges.items():
                family.add_metric([name], float(getattr(stats, key)))
            lookups = stats.prefix_cache_lookups
            hit_rate.add_metric([name], stats.prefix_cache_hits / lookups if lookups else 0.0)
            for metric, family in load.items():
                family.add_metric([name], float(getattr(stats, LOAD_GAUGES[metric][0])))
            for metric, family in vllm.items():
                family.add_metric([name], float(getattr(stats, LOAD_GAUGES[VLLM_LOAD_GAUGES[metric]][0])))
        yield from gauges.values()
        yield hit_rate
        yield from load.values()
        yield from vllm.values()
