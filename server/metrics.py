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

    def watch_engines(self, engines: Callable[[], Iterable[tuple[str, EngineStats]]]) -> None:
        """Slots, queue depth and prefix-cache counters, read from the engines at scrape time."""
        self.registry.register(_EngineCollector(engines))

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


class _EngineCollector:
    def __init__(self, engines: Callable[[], Iterable[tuple[str, EngineStats]]]):
        self._engines = engines

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
        for name, stats in self._engines():
            for key, family in gauges.items():
                family.add_metric([name], float(getattr(stats, key)))
            lookups = stats.prefix_cache_lookups
            hit_rate.add_metric([name], stats.prefix_cache_hits / lookups if lookups else 0.0)
        yield from gauges.values()
        yield hit_rate
