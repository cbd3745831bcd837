"""gRPC overhead of `Tick` (issue 3, benchmark 4): round trip on loopback minus the engine's own time.

    .venv/bin/python bench/bench_grpc.py [--quick] [--work /tmp/npc-bench] [--package DIR] [--ticks N]
                                         [--no-spinning] [--threads N] [--out NAME]

Runs `npcrt serve` in a subprocess on the reference model (../shared/bench/ref-llama-32m.json, fp32, random
weights; packages cached under --work, shared with bench_engine.py) and a synchronous Python gRPC client in
this process. Each Tick asks for one token per session with a generous budget, so every tick does the same
work. Per tick it records:
    rtt        client-side round trip of the Tick call
    server_ms  TickResponse.tick_ms (the servicer's wall time: translation + engine thread hop + engine)
    engine_ms  TickResult.stats.tick_ms (the engine's own tick)
    overhead   rtt - engine_ms: everything gRPC and the serving layer add
Peer in the same run: the round trip of a no-op unary RPC (grpc.health.v1 Health/Check) on the same server
and channel, the floor of any Python gRPC call here. Writes bench/results/NAME.json (default grpc) and prints
a table. A tiny package's context (256) fits at most ~230 ticks: pass --ticks 200 with it.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from npc_proto.v1 import runtime_pb2 as pb
from npc_proto.v1 import runtime_pb2_grpc

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # bench scripts run as files; reuse bench_engine's package cache
    sys.path.insert(0, str(ROOT))

from bench.common import physical_cores, print_table, result_metadata, write_json

LISTENING = re.compile(r"listening grpc=\S+:(\d+)")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def start_server(package: Path, sessions: int, threads: int, spinning: bool) -> tuple[subprocess.Popen, int]:
    config = Path(tempfile.mkstemp(suffix=".toml")[1])
    config.write_text(f'[server]\nhost = "127.0.0.1"\nlog_level = "WARNING"\nagent_service = false\n'
                      f'[engine]\nmax_sessions = {sessions}\nverify_hashes = false\nintra_op_threads = {threads}\n'
                      f'intra_op_spinning = {"true" if spinning else "false"}\n'
                      '[engine.default_sampling]\nignore_eos = true\n')
    proc = subprocess.Popen([sys.executable, "-m", "npc_runtime.cli", "serve", "--model", str(package),
                             "--config", str(config), "--port", "0", "--http-port", "-1"],
                            stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    line = proc.stdout.readline()
    match = LISTENING.search(line)
    if not match:
        proc.kill()
        raise SystemExit(f"bench_grpc: the server did not start: {line!r}")
    return proc, int(match.group(1))


def measure(port: int, sessions: int, ticks: int) -> dict:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = runtime_pb2_grpc.NpcRuntimeStub(channel)
        health = health_pb2_grpc.HealthStub(channel)
        ids = [stub.OpenSession(pb.OpenSessionRequest(
            prompt=f"Player {i}: good morning, what news from the northern gate?",
            limits=pb.SessionLimits(max_new_tokens=100_000))).session_id for i in range(sessions)]
        # prefill everybody first (several ticks on a slow machine): the measured ticks are steady-state decode
        waiting = set(ids)
        while waiting:
            reply = stub.Tick(pb.TickRequest(entries=[pb.TickEntry(session_id=s, budget_ms=10_000, max_tokens=1)
                                                      for s in sorted(waiting)]))
            waiting -= {r.session_id for r in reply.results if r.token_ids}
        request = pb.TickRequest(entries=[pb.TickEntry(session_id=s, budget_ms=1_000, max_tokens=1) for s in ids])
        rtt, server, engine, tokens = [], [], [], 0
        for _ in range(ticks):
            t0 = time.perf_counter()
            reply = stub.Tick(request)
            rtt.append((time.perf_counter() - t0) * 1000.0)
            server.append(reply.tick_ms)
            engine.append(reply.results[0].stats.tick_ms)
            if any(r.error for r in reply.results):
                raise SystemExit(f"bench_grpc: a Tick failed: {reply.results}")
            tokens += sum(len(r.token_ids) for r in reply.results)
        noop = []
        for _ in range(ticks):
            t0 = time.perf_counter()
            health.Check(health_pb2.HealthCheckRequest())
            noop.append((time.perf_counter() - t0) * 1000.0)
        for s in ids:
            stub.CloseSession(pb.CloseSessionRequest(session_id=s))
    overhead = [r - e for r, e in zip(rtt, engine)]
    transport = [r - s for r, s in zip(rtt, server)]
    row = {"sessions": sessions, "ticks": ticks, "tokens_per_tick": tokens / ticks}
    for name, values in (("rtt", rtt), ("engine", engine), ("overhead", overhead), ("transport", transport),
                         ("noop", noop)):
        row[f"{name}_p50_ms"] = percentile(values, 50)
        row[f"{name}_p99_ms"] = percentile(values, 99)
    row["overhead_vs_noop_p50"] = row["overhead_p50_ms"] / row["noop_p50_ms"]
    row["overhead_mean_ms"] = statistics.fmean(overhead)
    return row


def reference_package(work: Path) -> Path:
    from bench.ref import export_ref, make_ref_hf_dir

    return export_ref(make_ref_hf_dir(work / "hf"), work / "pkg-fp32", "fp32")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path("/tmp/npc-bench"), help="where packages are cached")
    ap.add_argument("--package", type=Path, help="serve this package instead of the reference model")
    ap.add_argument("--sessions", default="1,64")
    ap.add_argument("--ticks", type=int, default=300)
    ap.add_argument("--quick", action="store_true", help="100 ticks")
    ap.add_argument("--out", default="grpc", help="results name: bench/results/NAME.json")
    ap.add_argument("--out-dir", type=Path, default=None, help="folder of NAME.json (default bench/results/)")
    ap.add_argument("--threads", type=int, default=physical_cores(),
                    help="engine intra-op threads, set explicitly (default: physical cores, here %(default)s)")
    ap.add_argument("--no-spinning", action="store_true", help="engine: idle ORT threads sleep instead of spinning")
    args = ap.parse_args()
    if args.threads < 1:
        ap.error("--threads must be >= 1 (the server gets exactly this many intra-op threads)")
    meta = result_metadata()
    package = args.package or reference_package(args.work)
    ticks = 100 if args.quick else args.ticks
    rows = []
    for sessions in (int(x) for x in args.sessions.split(",")):
        load_before = os.getloadavg()[0]
        proc, port = start_server(package, sessions, args.threads, not args.no_spinning)
        try:
            rows.append({**measure(port, sessions, ticks), "load_avg_1m": max(load_before, os.getloadavg()[0])})
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    columns = [("sessions", "sessions"), ("rtt_p50_ms", "RTT p50 ms"), ("rtt_p99_ms", "RTT p99 ms"),
               ("engine_p50_ms", "engine p50 ms"), ("overhead_p50_ms", "overhead p50 ms"),
               ("overhead_p99_ms", "overhead p99 ms"), ("noop_p50_ms", "no-op RPC p50 ms"),
               ("overhead_vs_noop_p50", "overhead / no-op"), ("load_avg_1m", "load avg")]
    table = print_table(rows, columns, title="Tick gRPC overhead on loopback (RTT - engine time)")
    path = write_json(args.out, {"model": str(package), "engine_threads": args.threads,
                               "engine_spinning": not args.no_spinning, "rows": rows,
                               "table": table}, meta=meta, results_dir=args.out_dir)
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
