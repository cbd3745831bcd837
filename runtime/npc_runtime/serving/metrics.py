"""Prometheus metrics of one server, in a registry of its own (several servers may share a process in
tests). Exposed on the HTTP port at /metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

# tick wall time, seconds: frame budgets are 1-16 ms, so the buckets are dense there
_TICK_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.004, 0.006, 0.008, 0.012, 0.016, 0.025, 0.05, 0.1, 0.25, 1.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
_RPC_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)

CONTENT_TYPE = CONTENT_TYPE_LATEST


class ServingMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.tokens = Counter("npc_tokens_generated", "Tokens decoded and returned to clients (rate() = tokens/s)",
                              ["api"], registry=r)
        self.tick_latency = Histogram("npc_tick_latency_seconds", "Server-side wall time of one Tick call",
                                      buckets=_TICK_BUCKETS, registry=r)
        self.batch_size = Histogram("npc_tick_batch_size", "Largest batch (sessions per forward pass) in a Tick",
                                    buckets=_BATCH_BUCKETS, registry=r)
        self.active_sessions = Gauge("npc_active_sessions", "Open decode sessions", registry=r)
        self.errors = Counter("npc_errors", "Errors returned to clients, by gRPC status code name",
                              ["method", "code"], registry=r)
        self.rpc_latency = Histogram("npc_rpc_latency_seconds", "Wall time of unary RPCs / HTTP requests",
                                     ["method"], buckets=_RPC_BUCKETS, registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)
