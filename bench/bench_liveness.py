"""Liveness while heavy or hostile requests are processed (issue 9, docs/limits.md): what a liveness probe
(gRPC Health.Check and GET /healthz, back to back) and another game client (a gRPC Tick loop on its own
session) see while clients send the largest requests the entrance allows, on a real `npcrt serve`.

    .venv/bin/python -m bench.bench_liveness [--seconds 6] [--clients 1] [--out liveness]
    .venv/bin/python -m bench.bench_liveness --tree /tmp/old-checkout --out liveness-before   # another tree

Scenarios (each runs --seconds, the probe and the Tick client throughout):
    idle            nothing else: the floor of the probes' latency in this run
    max_legal_body  --clients loops POSTing the largest legal body: 256 messages, max_prompt_chars characters
                    outside the BMP, JSON-escaped (~3 MB, under max_request_bytes): parsed on the worker
                    pool, refused (413) from its length, over the context, without rendering or tokenizing
    max_tokenized   --clients loops POSTing the longest prompt the cheap bound lets through (context x the
                    tokenizer's max characters per token): rendered and tokenized on the worker pool
    body_10mb       the issue's 10 MB body (200 x 50,000 characters): 413 from Content-Length
    unauth_100mb    100 MB POSTs without the token: 401 from the headers, the upload never read
Goal: liveness p99 <= 100 ms in every scenario, no probe failing (health: no answer within 2 s; Tick: 5 s).
A table can be re-printed from a result file: `--show bench/results/liveness.json`.
Writes bench/results/NAME.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a file: the shared test helpers live under tests/
    sys.path.insert(0, str(ROOT))

from bench.common import print_table, result_metadata, write_json  # noqa: E402
from tests.helpers import raw_http  # noqa: E402
from tests.helpers.liveness import LivenessProbe, percentile  # noqa: E402
from tests.helpers.serve_process import ServeProcess  # noqa: E402

TOKEN = "liveness-bench-token"
GOAL_P99_MS = 100.0
MAX_MESSAGES = 256
MAX_PROMPT_CHARS = 262_144


def _body(messages: int, chars_each: int, pattern: str = "The guard looks at the gate. ") -> bytes:
    content = (pattern * (chars_each // len(pattern) + 1))[:chars_each]
    return json.dumps({"messages": [{"role": "user", "content": content}] * messages, "max_tokens": 1}).encode()


def _cheap_bound_chars() -> int:
    """The longest prompt the built-in model's cheap bound lets through (context x max chars per token)."""
    from npc_runtime.builtin_packages import locate
    from npc_runtime.config import EngineConfig
    from npc_runtime.decode.package import load_package
    from npc_runtime.decode.tokenizer import TextTokenizer

    package = load_package(locate("npc-dialogue"), verify_hashes=False)
    per_token = TextTokenizer.from_package(package).max_chars_per_token() or 16
    context = EngineConfig().max_context
    if package.architecture is not None:
        context = min(context, package.architecture.context_length)
    return context * per_token - 1


class TickClient:
    """Another game client: one session, Tick (budget 2 ms, 1 token) back to back; re-opens when done."""

    def __init__(self, server: ServeProcess) -> None:
        self.server = server
        self.ms: list[float] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="tick-client")

    def __enter__(self) -> "TickClient":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _open(self, stub, pb) -> str:
        return stub.OpenSession(pb.OpenSessionRequest(prompt="The smith looks up.",
                                                      limits=pb.SessionLimits(max_new_tokens=64)),
                                metadata=self.server.metadata(), timeout=10).session_id

    def _run(self) -> None:
        import grpc

        from npc_proto.v1 import runtime_pb2 as pb
        from npc_proto.v1 import runtime_pb2_grpc

        with grpc.insecure_channel(self.server.grpc_target) as channel:
            stub = runtime_pb2_grpc.NpcRuntimeStub(channel)
            sid = self._open(stub, pb)
            while not self._stop.is_set():
                start = time.monotonic()
                try:
                    reply = stub.Tick(pb.TickRequest(entries=[pb.TickEntry(session_id=sid, budget_ms=2, max_tokens=1)]),
                                      metadata=self.server.metadata(), timeout=5)
                except grpc.RpcError as exc:
                    self.failures.append(f"{exc.code().name}: {exc.details()}")
                    self._stop.wait(0.05)
                    continue
                self.ms.append((time.monotonic() - start) * 1000)
                result = reply.results[0]
                if result.finished or result.error:
                    stub.CloseSession(pb.CloseSessionRequest(session_id=sid), metadata=self.server.metadata(),
                                      timeout=10)
                    sid = self._open(stub, pb)
                self._stop.wait(0.01)


def _senders(server: ServeProcess, clients: int, seconds: float, body: bytes | None, *, token: bool = True,
             body_len: int = 0) -> tuple[Counter, list[float], list[str]]:
    """`clients` threads POSTing `body` back to back for `seconds` (body None: body_len bytes streamed)."""
    statuses: Counter = Counter()
    times: list[float] = []
    messages: list[str] = []
    deadline = time.monotonic() + seconds
    headers = {"authorization": f"Bearer {TOKEN}"} if token else {}

    def pieces():
        block = b"x" * (1 << 20)
        for _ in range(body_len >> 20):
            yield block

    def loop() -> None:
        while time.monotonic() < deadline:
            reply = raw_http.post("127.0.0.1", server.http_port, "/v1/chat/completions",
                                  body if body is not None else pieces(), body_len=body_len or None,
                                  headers=headers, timeout=120)
            statuses[str(reply.status)] += 1
            times.append(reply.elapsed_s * 1000)
            if len(messages) < 1:
                messages.append(reply.text[:200])

    threads = [threading.Thread(target=loop, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return statuses, times, messages


def _scenario(server: ServeProcess, name: str, seconds: float, work) -> dict:
    rss_before = server.rss_kib()
    with LivenessProbe(server.grpc_target, server.http_url) as probe, TickClient(server) as ticks:
        start = time.monotonic()
        statuses, times, messages = work() if work else (Counter(), [], [])
        if not work:
            time.sleep(seconds)
        elapsed = time.monotonic() - start
    health = probe.summary()
    liveness_p99 = max(x for x in (health["p99_ms"], percentile(ticks.ms, 99), 0.0) if x is not None)
    return {
        "scenario": name, "seconds": round(elapsed, 2), "requests": sum(statuses.values()),
        "statuses": dict(statuses), "request_p50_ms": _r(percentile(times, 50)),
        "request_max_ms": _r(max(times) if times else None),
        "health_probes": health["probes"], "health_p50_ms": health["p50_ms"], "health_p99_ms": health["p99_ms"],
        "health_max_ms": health["max_ms"], "health_failures": health["failures"],
        "ticks": len(ticks.ms), "tick_p50_ms": _r(percentile(ticks.ms, 50)), "tick_p99_ms": _r(percentile(ticks.ms, 99)),
        "tick_max_ms": _r(max(ticks.ms) if ticks.ms else None), "tick_failures": len(ticks.failures),
        "liveness_p99_ms": _r(liveness_p99), "goal_met": liveness_p99 <= GOAL_P99_MS and not ticks.failures
        and not health["failures"],
        "rss_before_mib": round(rss_before / 1024, 1), "rss_after_mib": round(server.rss_kib() / 1024, 1),
        "first_answer": messages[0] if messages else "",
    }


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=6.0, help="duration of each scenario")
    parser.add_argument("--clients", type=int, default=1, help="concurrent senders of heavy requests (1: one such request in flight at all times)")
    parser.add_argument("--out", default="liveness", help="bench/results/OUT.json")
    parser.add_argument("--tree", help="serve the runtime from another checkout (its runtime/, proto/, package/ "
                                       "first on PYTHONPATH), e.g. a worktree of an older commit")
    parser.add_argument("--only", help="comma-separated scenario names")
    parser.add_argument("--show", metavar="JSON", help="print the table of an earlier result file and exit")
    args = parser.parse_args(argv)
    if args.show:
        data = json.loads(Path(args.show).read_text())
        _table(data["rows"], f"{args.show} ({data['clients']} senders, {data['seconds']:g} s each, tree {data['tree']})")
        return 0
    meta = result_metadata()
    env = {}
    if args.tree:
        tree = Path(args.tree).resolve()
        env["PYTHONPATH"] = os.pathsep.join(str(tree / d) for d in ("runtime", "proto", "package", "export")
                                            if (tree / d).is_dir())
    tokenized_chars = _cheap_bound_chars()
    per_message = max(1, tokenized_chars // 8)
    # outside the BMP: one character, 12 bytes once JSON-escaped (what json.dumps writes by default)
    largest = _body(MAX_MESSAGES, MAX_PROMPT_CHARS // MAX_MESSAGES, "\U0001f5e1")
    assert len(largest) < 4 << 20, len(largest)
    scenarios = {
        "idle": None,
        "max_legal_body": lambda s: _senders(s, args.clients, args.seconds, largest),
        "max_tokenized": lambda s: _senders(s, args.clients, args.seconds, _body(8, per_message)),
        "body_10mb": lambda s: _senders(s, 1, args.seconds, _body(200, 50_000)),
        "unauth_100mb": lambda s: _senders(s, args.clients, args.seconds, None, token=False, body_len=100 << 20),
    }
    wanted = args.only.split(",") if args.only else list(scenarios)
    rows = []
    with ServeProcess(token=TOKEN, env=env) as server:
        for name in wanted:
            work = scenarios[name]
            rows.append(_scenario(server, name, args.seconds, (lambda w=work: w(server)) if work else None))
            print(f"{name}: done", file=sys.stderr, flush=True)
        server.stop()
    _table(rows, f"liveness under heavy requests ({args.clients} senders, {args.seconds:g} s each, "
                 f"tree {args.tree or 'this checkout'})")
    path = write_json(args.out, {"tree": args.tree or "this checkout", "clients": args.clients,
                                 "seconds": args.seconds, "goal_p99_ms": GOAL_P99_MS,
                                 "max_tokenized_chars": per_message * 8, "rows": rows}, meta=meta)
    print(f"wrote {path}")
    return 0


def _table(rows: list[dict], title: str) -> None:
    print_table(rows, [("scenario", "scenario"), ("requests", "requests"), ("statuses", "statuses"),
                       ("request_p50_ms", "req p50 ms"), ("health_p50_ms", "health p50"),
                       ("health_p99_ms", "health p99"), ("health_max_ms", "health max"),
                       ("tick_p50_ms", "tick p50"), ("tick_p99_ms", "tick p99"), ("tick_max_ms", "tick max"),
                       ("health_failures", "health fails"), ("tick_failures", "tick fails"),
                       ("liveness_p99_ms", "liveness p99"), ("goal_met", f"p99<={GOAL_P99_MS:g}"),
                       ("rss_before_mib", "RSS MiB before"), ("rss_after_mib", "after")], title=title)


if __name__ == "__main__":
    raise SystemExit(main())
