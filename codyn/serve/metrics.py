"""Prometheus metrics of ``codyn serve`` (``GET /metrics``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (
    *(0.001, 0.0025, 0.005, 0.01, 0.015, 0.025, 0.05),
    *(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)


class Metrics:
    """The metrics in a registry of this app's own (tests start several apps)."""

    def __init__(self):
        self.registry = r = CollectorRegistry()
        self.requests = Counter(
            "codyn_requests", "HTTP requests", ["endpoint", "status"], registry=r
        )
        self.routed = Counter(
            "codyn_served", "Chat calls answered, by model", ["model", "routed"], registry=r
        )
        self.failures = Counter(
            "codyn_upstream_failures", "Failed upstream attempts", ["model", "reason"], registry=r
        )
        self.fallbacks = Counter(
            "codyn_fallbacks", "Calls answered by a model other than the first choice", registry=r
        )
        self.latency = Histogram(
            "codyn_request_seconds", "Chat call latency", buckets=LATENCY_BUCKETS, registry=r
        )
        self.routing = Histogram(
            "codyn_routing_seconds",
            "Router scoring time per call",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.upstream = Histogram(
            "codyn_upstream_seconds",
            "Upstream latency",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.batch = Histogram(
            "codyn_router_batch_size",
            "Prompts per router call",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128),
            registry=r,
        )
        self.in_flight = Gauge("codyn_in_flight_requests", "Chat calls being handled", registry=r)
        self.tokens = Counter("codyn_tokens", "Tokens", ["model", "direction"], registry=r)
        self.cost = Counter("codyn_cost_usd", "Upstream cost in USD", ["model"], registry=r)

    def answered(self, model: str, completion) -> None:
        """Tokens and dollars of one upstream answer (when the backend reports them)."""
        for direction in ("input", "output"):
            n = getattr(completion, f"{direction}_tokens", None)
            if isinstance(n, int):
                self.tokens.labels(model, direction).inc(n)
        cost = getattr(completion, "cost_usd", None)
        if isinstance(cost, int | float):
            self.cost.labels(model).inc(cost)
