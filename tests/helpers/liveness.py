"""What another client sees while a hostile request is processed: a thread that probes gRPC Health.Check and
GET /healthz back to back from its own connection, as a liveness probe would, and records each answer's
latency (or its failure: an error or no answer within the probe timeout)."""

from __future__ import annotations

import threading
import time
import urllib.request

# A probe that takes longer than this counts as failed: Kubernetes' liveness probe timeout defaults to 1 s;
# 2 s leaves room for a loaded 2-core CI machine while still catching the multi-second stalls of issue 9.
PROBE_TIMEOUT_S = 2.0
PROBE_INTERVAL_S = 0.05


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


class LivenessProbe:
    """with LivenessProbe(grpc_target, http_url) as probe: ...; then probe.summary() / probe.failures."""

    def __init__(self, grpc_target: str, http_url: str | None, *, timeout_s: float = PROBE_TIMEOUT_S,
                 interval_s: float = PROBE_INTERVAL_S) -> None:
        self.grpc_target, self.http_url = grpc_target, http_url
        self.timeout_s, self.interval_s = timeout_s, interval_s
        self.grpc_ms: list[float] = []
        self.http_ms: list[float] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="liveness-probe")

    def __enter__(self) -> "LivenessProbe":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=self.timeout_s * 3)

    def _run(self) -> None:
        import grpc
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        with grpc.insecure_channel(self.grpc_target) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            while not self._stop.is_set():
                self._probe("grpc", self.grpc_ms,
                            lambda: health.Check(health_pb2.HealthCheckRequest(), timeout=self.timeout_s))
                if self.http_url:
                    self._probe("http", self.http_ms, self._healthz)
                self._stop.wait(self.interval_s)

    def _healthz(self) -> None:
        with urllib.request.urlopen(self.http_url + "/healthz", timeout=self.timeout_s) as reply:
            if reply.status != 200:
                raise RuntimeError(f"/healthz answered {reply.status}")

    def _probe(self, what: str, into: list[float], call) -> None:
        start = time.monotonic()
        try:
            call()
        except Exception as exc:  # noqa: BLE001 - any failure is what we record
            self.failures.append(f"{what} after {time.monotonic() - start:.2f} s: {type(exc).__name__}: "
                                 f"{str(exc)[:200]}")
            return
        elapsed = time.monotonic() - start
        if elapsed > self.timeout_s:
            self.failures.append(f"{what} answered after {elapsed:.2f} s (probe timeout {self.timeout_s} s)")
        into.append(elapsed * 1000)

    def summary(self) -> dict:
        both = self.grpc_ms + self.http_ms
        return {"probes": len(both) + len(self.failures), "failures": len(self.failures),
                "p50_ms": _round(percentile(both, 50)), "p99_ms": _round(percentile(both, 99)),
                "max_ms": _round(max(both) if both else None)}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)
