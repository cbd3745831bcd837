"""Served gRPC `Tick` measured with the game's own C++ client beside the Python client (issue 10: P3, P4).

    .venv/bin/python bench/bench_cpp_tick.py [--quick] [--packages builtin,ref] [--sessions 1,64]
                                             [--repeats 3] [--ticks 100] [--work /tmp/npc-bench] [--out cpp_tick]

The Unreal plugin talks to the server through unreal_client/core (`npc::NpcRuntimeClient`, C++ over system
libgrpc++); bench/bench_serving_paths.py times Tick with a Python grpc client, whose own cost is a large part
of the "overhead" it reports. This bench builds bench/cpp (`npc_tick_client`, -O2, linked against npc_core;
cmake rebuilds only what changed, under --work/cpp-build) and, against one `npcrt serve` per package and
session count (the same server settings as bench_serving_paths: EOS ignored, long turns, no agent), runs
both clients in turn (Python, C++, then C++, Python, ...; every repeat's samples pooled):
    tokens   every session ticked with max_tokens=1 until it got N tokens (prefill included): tok/s (best
             repeat), and per tick the round trip at the client (RTT), the server handler's time
             (TickResponse.tick_ms) and the engine's (max of the results' stats.tick_ms)
    budget   ticks of all sessions at budget_ms 4, 8, 16 and no token cap, after a prefill (finished sessions
             are replaced between ticks, not timed): RTT p50/p99 and the share of ticks over budget + 0.5 ms.
             Budgets go as given (the server counts them from when it receives the call); where npc_core
             has round-trip budgets (ClientOptions::round_trip_budget, the game's default), a third client
             "cpp round-trip" lets the C++ client take its measured transport time off each budget first
    no-op    Handshake round trips (no engine work): the floor of one unary RPC through each client; the
             Python client's grpc health Check too (bench_serving_paths' no-op)
Per tick: overhead = RTT - engine; client + transport = RTT - handler; server = handler - engine (the server's
own Python work around the engine call; its gRPC framework cost before the handler runs counts as transport).
Writes bench/results/NAME.json (rows per package, sessions, client, mode, budget) and prints the tables.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # bench scripts run as files
    sys.path.insert(0, str(ROOT))

from npc_proto.v1 import runtime_pb2 as pb
from npc_proto.v1 import runtime_pb2_grpc

from bench.bench_serving_paths import (
    BUDGETS_MS,
    BUILTIN,
    budget_ticks,
    grpc_tick,
    percentile,
    reference_int4,
    start_server,
)
from bench.common import print_table, result_metadata, versions, write_json

CPP_SOURCE = ROOT / "bench" / "cpp"
TOOL = "npc_tick_client"
TOOLS = ("cmake", "g++", "pkg-config", "protoc", "grpc_cpp_plugin")
APT = "apt-get install cmake g++ pkg-config protobuf-compiler protobuf-compiler-grpc libgrpc++-dev libprotobuf-dev"
OVER_BUDGET_MS = 0.5   # issue 10 P3: p99 <= budget + 0.5 ms
# the C++ client with round-trip budgets (its measured transport time taken off each budget), where npc_core has them
CPP_ROUND_TRIP = "cpp round-trip"


def missing_toolchain() -> str | None:
    """None when the C++ client can be built here, else what is missing and the packages that provide it."""
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        return f"C++ toolchain missing: {', '.join(missing)} ({APT})"
    probe = subprocess.run(["pkg-config", "--exists", "grpc++", "protobuf"], capture_output=True, check=False)
    if probe.returncode != 0:
        return f"pkg-config finds no grpc++/protobuf ({APT})"
    return None


def build_tool(build_dir: Path, *, build_type: str = "Release", quiet: bool = False) -> Path:
    """Configures and builds bench/cpp into build_dir (cmake skips what is up to date); the executable."""
    problem = missing_toolchain()
    if problem:
        raise SystemExit(f"bench_cpp_tick: {problem}")
    steps = (["cmake", "-S", str(CPP_SOURCE), "-B", str(build_dir), f"-DCMAKE_BUILD_TYPE={build_type}"],
             ["cmake", "--build", str(build_dir), "-j2"])
    for step in steps:
        if not quiet:
            print(f"bench_cpp_tick: {' '.join(step)}", flush=True)
        done = subprocess.run(step, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"bench_cpp_tick: `{' '.join(step)}` failed:\n{(done.stdout + done.stderr)[-4000:]}")
    return build_dir / TOOL


def run_tool(binary: Path, port: int, sessions: int, mode: str, *, ticks: int = 0, budget_ms: float = 8.0,
             tokens: int = 1, noop: int = 0, round_trip: bool = False) -> dict:
    """One npc_tick_client run against 127.0.0.1:port; its JSON record. round_trip: the client takes its
    measured transport time off each budget (ClientOptions::round_trip_budget), else budgets go as given."""
    cmd = [str(binary), "--target", f"127.0.0.1:{port}", "--sessions", str(sessions), "--mode", mode,
           "--ticks", str(ticks), "--budget-ms", str(budget_ms), "--tokens", str(tokens), "--noop", str(noop),
           "--budget-counted", "round-trip" if round_trip else "server"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        raise SystemExit(f"bench_cpp_tick: {' '.join(cmd)} failed (exit {done.returncode}): {done.stderr.strip()}")
    return json.loads(done.stdout)


def tool_features(binary: Path) -> dict:
    """What the npc_core the tool was built against offers: {"round_trip_budget": bool}."""
    done = subprocess.run([str(binary), "--features"], capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        raise SystemExit(f"bench_cpp_tick: {binary} --features failed: {done.stderr.strip()}")
    return json.loads(done.stdout)


# -- the Python client: the same work, the same record ---------------------------------------------------------
def _record() -> dict:
    return {"rtt_ms": [], "handler_ms": [], "engine_ms": [], "tokens": 0, "seconds": 0.0, "noop_ms": []}


def _as_record(samples: dict) -> dict:
    """bench_serving_paths' samples (rtt, handler, engine) in this bench's record layout."""
    return {**_record(), "rtt_ms": samples["rtt"], "handler_ms": samples["handler"],
            "engine_ms": samples["engine"], "tokens": samples["tokens"], "seconds": samples.get("seconds", 0.0)}


def py_tokens(stub, sessions: int, tokens: int) -> dict:
    """bench_serving_paths.grpc_tick: one token per tick until every session has `tokens`."""
    return _as_record(grpc_tick(stub, sessions, tokens))


def py_budget(stub, sessions: int, budget_ms: float, ticks: int) -> dict:
    """bench_serving_paths.budget_ticks: budgets counted by the server, as the C++ tool's "server" mode."""
    return _as_record(budget_ticks(stub, sessions, budget_ms, ticks))


def py_noop(channel, stub, calls: int) -> tuple[list[float], list[float]]:
    """Round trips of Handshake and of the grpc health Check, ms."""
    health = health_pb2_grpc.HealthStub(channel)
    handshake, check = [], []
    for _ in range(calls):
        t = time.perf_counter()
        stub.Handshake(pb.HandshakeRequest(client_name="bench_cpp_tick"))
        handshake.append((time.perf_counter() - t) * 1000.0)
        t = time.perf_counter()
        health.Check(health_pb2.HealthCheckRequest())
        check.append((time.perf_counter() - t) * 1000.0)
    return handshake, check


# -- rows -------------------------------------------------------------------------------------------------------
def pooled(records: list[dict]) -> dict:
    out = _record()
    for rec in records:
        for key in ("rtt_ms", "handler_ms", "engine_ms", "noop_ms"):
            out[key] += rec[key]
        out["tokens"] += rec["tokens"]
        out["seconds"] += rec["seconds"]
    return out


def spreads(rec: dict) -> dict:
    """p50/p99 of the round trip, its parts and the overhead, over every tick of `rec`."""
    rtt, handler, engine = rec["rtt_ms"], rec["handler_ms"], rec["engine_ms"]
    series = {"rtt": rtt, "handler": handler, "engine": engine,
              "overhead": [r - e for r, e in zip(rtt, engine)],
              "client_transport": [r - h for r, h in zip(rtt, handler)],
              "server": [h - e for h, e in zip(handler, engine)]}
    return {f"{name}_{q}_ms": percentile(values, int(q[1:])) for name, values in series.items()
            for q in ("p50", "p99")} | {"ticks": len(rtt)}


def tokens_row(base: dict, runs: list[dict], noop: list[float], health: list[float] | None) -> dict:
    return {**base, "mode": "tokens", "budget_ms": None,
            "tok_s": max(r["tokens"] / r["seconds"] for r in runs), **spreads(pooled(runs)),
            # noop_p50_ms: the same no-op for both clients (Handshake), the floor bench/serving_report.py shows
            "noop_p50_ms": percentile(noop, 50), "noop_p99_ms": percentile(noop, 99),
            "noop_health_p50_ms": percentile(health, 50) if health else None}


def budget_row(base: dict, budget: float, runs: list[dict]) -> dict:
    rec = pooled(runs)
    rtt = rec["rtt_ms"]
    return {**base, "mode": "budget", "budget_ms": budget, **spreads(rec), "rtt_max_ms": max(rtt),
            "over_budget_0_5": sum(r > budget + OVER_BUDGET_MS for r in rtt) / len(rtt),
            "tokens_per_tick": rec["tokens"] / len(rtt)}


# -- one server -------------------------------------------------------------------------------------------------
def run_server(label: str, package: Path, sessions: int, binary: Path, args) -> list[dict]:
    tokens = args.tokens_1 if sessions == 1 else args.tokens_n
    with tempfile.TemporaryDirectory(prefix="npc-cpp-") as tmp:
        proc, port, _ = start_server(package, sessions, Path(tmp))
        try:
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = runtime_pb2_grpc.NpcRuntimeStub(channel)
                clients = {"python": lambda mode, **kw: (py_tokens(stub, sessions, kw["tokens"]) if mode == "tokens"
                                                         else py_budget(stub, sessions, kw["budget_ms"], kw["ticks"])),
                           "cpp": lambda mode, **kw: run_tool(binary, port, sessions, mode, **kw),
                           CPP_ROUND_TRIP: lambda mode, **kw: run_tool(binary, port, sessions, mode, round_trip=True,
                                                                       **kw)}
                py_tokens(stub, sessions, 4)                                 # warm-up, both clients
                run_tool(binary, port, sessions, "tokens", tokens=4)

                def alternate(mode: str, names: tuple[str, ...], **kw) -> dict[str, list[dict]]:
                    runs = {name: [] for name in names}
                    for repeat in range(args.repeats):   # who goes first rotates too
                        for k in range(len(names)):
                            name = names[(repeat + k) % len(names)]
                            runs[name].append(clients[name](mode, **kw))
                    return runs

                print(f"bench_cpp_tick: {label}, {sessions} session(s): 1-token ticks", flush=True)
                tok = alternate("tokens", ("python", "cpp"), tokens=tokens)
                noop_py, health_py = py_noop(channel, stub, args.noop)
                noop_cpp = run_tool(binary, port, 1, "tokens", tokens=1, noop=args.noop)["noop_ms"]
                base = {"package": label, "sessions": sessions}
                rows = [tokens_row({**base, "client": "python"}, tok["python"], noop_py, health_py),
                        tokens_row({**base, "client": "cpp"}, tok["cpp"], noop_cpp, None)]
                for budget in BUDGETS_MS:
                    print(f"bench_cpp_tick: {label}, {sessions} session(s): budget {budget:g} ms", flush=True)
                    names = ("python", "cpp", CPP_ROUND_TRIP) if args.round_trip else ("python", "cpp")
                    runs = alternate("budget", names, budget_ms=budget, ticks=args.ticks)
                    rows += [budget_row({**base, "client": name, "round_trip_budget": name == CPP_ROUND_TRIP},
                                        budget, runs[name]) for name in names]
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path("/tmp/npc-bench"), help="packages and the C++ build (cpp-build)")
    ap.add_argument("--packages", default="builtin,ref", help="builtin (shipped dialogue), ref (ref-llama-32m int4)")
    ap.add_argument("--sessions", default="1,64")
    ap.add_argument("--repeats", type=int, default=3, help="runs per client and case, alternating; samples pooled")
    ap.add_argument("--ticks", type=int, default=100, help="ticks per budget run (x repeats per client)")
    ap.add_argument("--noop", type=int, default=300, help="no-op RPCs per client")
    ap.add_argument("--quick", action="store_true", help="1 repeat, 40 ticks, fewer tokens")
    ap.add_argument("--out", default="cpp_tick", help="results name: bench/results/NAME.json")
    args = ap.parse_args()
    meta = result_metadata()   # now, so that the load average "before" is before the run
    args.sessions = [int(x) for x in args.sessions.split(",")]
    args.tokens_1, args.tokens_n = (64, 16) if args.quick else (256, 48)
    if args.quick:
        args.repeats, args.ticks, args.noop = 1, 40, 100
    binary = build_tool(args.work / "cpp-build")
    args.round_trip = tool_features(binary)["round_trip_budget"]
    packages = {"builtin": BUILTIN, "ref": None}
    labels = args.packages.split(",")
    unknown = [x for x in labels if x not in packages]
    if unknown:
        raise SystemExit(f"bench_cpp_tick: unknown package {unknown}: use builtin and/or ref")
    resolved = {label: packages[label] or reference_int4(args.work) for label in labels}
    rows = []
    for label, package in resolved.items():
        for sessions in args.sessions:
            load_before = os.getloadavg()[0]
            found = run_server(label, package, sessions, binary, args)
            load = max(load_before, os.getloadavg()[0])
            rows += [{**row, "load_avg_1m": load} for row in found]
    tokens = [r for r in rows if r["mode"] == "tokens"]
    budget = [r for r in rows if r["mode"] == "budget"]
    who = [("package", "package"), ("sessions", "sessions"), ("client", "client")]
    t_cols = [*who, ("tok_s", "tok/s"), ("rtt_p50_ms", "RTT p50"), ("rtt_p99_ms", "RTT p99"),
              ("engine_p50_ms", "engine p50"), ("overhead_p50_ms", "overhead p50"), ("overhead_p99_ms", "p99"),
              ("client_transport_p50_ms", "client+transport p50"), ("client_transport_p99_ms", "p99"),
              ("server_p50_ms", "server p50"), ("server_p99_ms", "p99"),
              ("noop_p50_ms", "no-op Handshake p50"), ("noop_health_p50_ms", "health p50"),
              ("ticks", "ticks"), ("load_avg_1m", "load")]
    b_cols = [*who, ("budget_ms", "budget"), ("round_trip_budget", "round-trip budget"), ("rtt_p50_ms", "RTT p50"),
              ("rtt_p99_ms", "RTT p99"),
              ("engine_p99_ms", "engine p99"), ("overhead_p50_ms", "overhead p50"), ("overhead_p99_ms", "p99"),
              ("client_transport_p50_ms", "client+transport p50"), ("server_p50_ms", "server p50"),
              ("over_budget_0_5", "share > budget+0.5"), ("tokens_per_tick", "tokens/tick"), ("ticks", "ticks")]
    t_table = print_table(tokens, t_cols, title="Tick, 1 token per tick: Python vs C++ client (ms)")
    b_table = print_table(budget, b_cols, title="Tick at a budget, round trip at the client (ms)")
    path = write_json(args.out, {
        "command": " ".join([Path(sys.executable).name, *sys.argv]), "versions": versions("grpc", "onnxruntime"),
        "cpp_client": {"source": "bench/cpp/tick_client.cpp", "build": "CMake Release, -O2",
                       "grpcpp": _pkg_version("grpc++"), "protobuf": _pkg_version("protobuf"),
                       "round_trip_budget_available": args.round_trip},
        "packages": {k: str(v) for k, v in resolved.items()},
        "repeats": args.repeats, "ticks_per_budget_run": args.ticks,
        "tokens_per_session": {"1": args.tokens_1, "n": args.tokens_n},
        "rows": rows, "tables": [t_table, b_table]}, meta=meta)
    print(f"\nwrote {path}")
    return 0


def _pkg_version(name: str) -> str | None:
    done = subprocess.run(["pkg-config", "--modversion", name], capture_output=True, text=True, check=False)
    return done.stdout.strip() or None


if __name__ == "__main__":
    sys.exit(main())
