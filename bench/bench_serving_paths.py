"""The served paths against the engine (issue 10: P2s, P3, P4): what a client gets from each way in.

    .venv/bin/python bench/bench_serving_paths.py [--quick] [--packages builtin,ref] [--sessions 1,64]
                                                  [--repeats 3] [--work /tmp/npc-bench] [--out serving_paths]

Packages: the shipped built-in dialogue model, and the reference model (../shared/bench/ref-llama-32m.json,
random weights, exported int4, cached under --work as bench_engine.py does). Every path does the same work
per session: the same prompt (a user message in the model's chat template: OpenSession's apply_chat_template,
as the chat completion renders it), then N greedy tokens (EOS ignored), prefill included, timed from the first
request to the last token at the client. What only SSE pays: an HTTP request per reply, and a session opened
and closed per request (the OpenAI API is stateless; Tick and Generate sessions are opened beforehand):
    engine tick     in this process, `Engine.tick` with one token per tick (no server; the ceiling)
    gRPC Tick       `npcrt serve` in a subprocess, one TickRequest for every session, one token per tick
    gRPC Generate   one server stream per session, all concurrent (grpc.aio client)
    HTTP SSE        one OpenAI chat completion stream per session, all concurrent (a raw asyncio client,
                    so the client's own parsing costs as little as possible)
Repeats are interleaved (tick, generate, sse, tick, ...) and the best of each path is kept, so the ratios
come from one run under the same load. Tick latency: 64 (and 1) sessions ticked with budgets 4, 8, 16 ms
and no token cap; per tick the client's round trip, the engine's own time (TickStats.tick_ms) and the
overhead (round trip - engine time); each budget twice: sent as given, and as a round-trip budget (the
client takes its measured transport time off it, as the Unity and Unreal clients do: RoundTripBudget).
Finished sessions are re-opened between ticks (not timed).
Writes bench/results/NAME.json and prints the tables.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
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

from bench.common import print_table, result_metadata, versions, write_json  # noqa: E402
from npc_proto.v1 import runtime_pb2 as pb  # noqa: E402
from npc_proto.v1 import runtime_pb2_grpc  # noqa: E402

BUILTIN = ROOT / "runtime" / "npc_runtime" / "builtin_packages" / "npc-dialogue"
LISTENING = re.compile(r"listening grpc=\S+:(\d+) http=\S+:(\d+)")
BUDGETS_MS = (4.0, 8.0, 16.0)
LONG = 100_000   # max_new_tokens of every bench session: the token count N ends a turn, never the limit


def prompt(i: int) -> str:
    return f"Player {i}: good morning, what news from the northern gate?"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def spread(prefix: str, values: list[float]) -> dict:
    return {f"{prefix}_p50_ms": percentile(values, 50), f"{prefix}_p99_ms": percentile(values, 99)}


# -- packages and the server ------------------------------------------------------------------------------------
def reference_int4(work: Path) -> Path:
    from bench.bench_engine import export_ref, make_ref_hf_dir

    return export_ref(make_ref_hf_dir(work / "hf"), work / "pkg-int4", "int4")


def engine_table(args) -> str:
    """[engine] keys other than the product defaults that a run asks for (thread experiments)."""
    return (f"intra_op_threads = {args.threads}\n" if args.threads else "") + \
        (f'intra_op_spinning = "{args.spinning}"\n' if args.spinning else "")


def server_table(args) -> str:
    """[server] keys other than the product defaults that a run asks for."""
    return f"stream_interval_ms = {args.stream_interval_ms}\n" if args.stream_interval_ms is not None else ""


def start_server(package: Path, sessions: int, data_dir: Path, engine_extra: str = "",
                 switch_interval_ms: float = 0.0, server_extra: str = "") -> tuple[subprocess.Popen, int, int]:
    """`npcrt serve` with the product defaults, except: sessions, EOS ignored, long turns, no agent.
    `switch_interval_ms` > 0: the server's GIL switch interval (an experiment; 0 = Python's 5 ms)."""
    config = data_dir / "npcrt.toml"
    config.write_text(f'[server]\nhost = "127.0.0.1"\nlog_level = "WARNING"\nagent_service = false\n'
                      f'data_dir = "{data_dir}"\n{server_extra}'
                      f'[engine]\nmax_sessions = {sessions}\nverify_hashes = false\n{engine_extra}'
                      f'[engine.default_sampling]\nignore_eos = true\n'
                      f'[engine.default_limits]\nmax_new_tokens = {LONG}\n')
    launcher = ["-m", "npc_runtime.cli"] if not switch_interval_ms else [
        "-c", "import sys; sys.setswitchinterval(float(sys.argv.pop(1)) / 1000); "
              "from npc_runtime.cli import main; sys.exit(main())", str(switch_interval_ms)]
    proc = subprocess.Popen([sys.executable, *launcher, "serve", "--model", str(package),
                             "--config", str(config), "--port", "0", "--http-port", "0"],
                            stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    line = proc.stdout.readline()
    match = LISTENING.search(line)
    if not match:
        proc.kill()
        raise SystemExit(f"bench_serving_paths: the server did not start: {line!r}")
    return proc, int(match.group(1)), int(match.group(2))


# -- the engine alone -----------------------------------------------------------------------------------------
def engine_tick(package: Path, sessions: int, tokens: int, threads: int = 0, spinning: str | None = None) -> float:
    """tok/s of `Engine.tick`, one token per tick, in this process."""
    from npc_runtime.config import EngineConfig, SessionLimits
    from npc_runtime.decode.sampling import SamplingParams
    from npc_runtime.sessions import Engine, OpenRequest, TickRequest

    engine = Engine.from_packages([package], config=EngineConfig(
        max_sessions=sessions, verify_hashes=False, default_sampling=SamplingParams(ignore_eos=True),
        intra_op_threads=threads, **({"intra_op_spinning": spinning} if spinning else {}),
        default_limits=SessionLimits(max_new_tokens=LONG)))
    best = 0.0
    for _ in range(2):   # the first run warms the engine up
        sids = [engine.open(OpenRequest(prompt=prompt(i), apply_chat_template=True)).session_id
                for i in range(sessions)]
        got = dict.fromkeys(sids, 0)
        t0 = time.perf_counter()
        while min(got.values()) < tokens:
            for r in engine.tick([TickRequest(s, 1e4, 1) for s in sids if got[s] < tokens]):
                got[r.session_id] += len(r.token_ids)
        best = max(best, sum(got.values()) / (time.perf_counter() - t0))
        for s in sids:
            engine.close_session(s)
    return best


# -- served paths ---------------------------------------------------------------------------------------------
def open_sessions(stub, sessions: int) -> list[str]:
    return [stub.OpenSession(open_request(i)).session_id for i in range(sessions)]


def open_request(i: int) -> pb.OpenSessionRequest:
    """Session i's prompt as a chat user message (the model's template), as the SSE path sends it, so that
    every path prefills the same tokens."""
    return pb.OpenSessionRequest(prompt=prompt(i), apply_chat_template=True)


def timed_tick(stub, request: pb.TickRequest, samples: dict) -> pb.TickResponse:
    """One Tick; appends its round trip, the servicer's time (TickResponse.tick_ms) and the engine's, ms."""
    t = time.perf_counter()
    reply = stub.Tick(request)
    samples["rtt"].append((time.perf_counter() - t) * 1000.0)
    samples["handler"].append(reply.tick_ms)
    samples["engine"].append(max(r.stats.tick_ms for r in reply.results))
    for r in reply.results:
        if r.error:
            raise SystemExit(f"bench: a Tick failed: {r.error}")
    return reply


def grpc_tick(stub, sessions: int, tokens: int) -> dict:
    """tok/s of served Tick (one token per tick), and each tick's round trip, servicer and engine time."""
    sids = open_sessions(stub, sessions)
    got = dict.fromkeys(sids, 0)
    samples = {"rtt": [], "handler": [], "engine": []}
    t0 = time.perf_counter()
    while min(got.values()) < tokens:
        reply = timed_tick(stub, pb.TickRequest(entries=[pb.TickEntry(session_id=s, budget_ms=10_000, max_tokens=1)
                                                         for s in sids if got[s] < tokens]), samples)
        for r in reply.results:
            got[r.session_id] += len(r.token_ids)
    seconds = time.perf_counter() - t0
    for s in sids:
        stub.CloseSession(pb.CloseSessionRequest(session_id=s))
    return {"tok_s": sum(got.values()) / seconds, "tokens": sum(got.values()), "seconds": seconds, **samples}


async def grpc_generate(port: int, sessions: int, tokens: int) -> dict:
    """tok/s of concurrent Generate streams (one per session), and messages per stream."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = runtime_pb2_grpc.NpcRuntimeStub(channel)
        sids = [(await stub.OpenSession(open_request(i))).session_id
                for i in range(sessions)]

        async def one(sid: str) -> tuple[int, int]:
            n = messages = 0
            async for chunk in stub.Generate(pb.GenerateRequest(session_id=sid, max_tokens=tokens)):
                n += len(chunk.token_ids)
                messages += 1
            return n, messages

        t0 = time.perf_counter()
        done = await asyncio.gather(*(one(s) for s in sids))
        seconds = time.perf_counter() - t0
        for s in sids:
            await stub.CloseSession(pb.CloseSessionRequest(session_id=s))
    return {"tok_s": sum(n for n, _ in done) / seconds, "messages": sum(m for _, m in done) / len(done)}


async def _sse_one(port: int, i: int, tokens: int) -> tuple[int, int]:
    body = json.dumps({"messages": [{"role": "user", "content": prompt(i)}], "max_tokens": tokens,
                       "temperature": 0, "ignore_eos": True, "stream": True,
                       "stream_options": {"include_usage": True}}).encode()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
                 b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    await writer.drain()
    parts = []
    while data := await reader.read(1 << 16):
        parts.append(data)
    writer.close()
    text = b"".join(parts).decode()
    usage = re.search(r'"completion_tokens":(\d+)', text)
    if not text.startswith("HTTP/1.1 200") or usage is None:
        raise SystemExit(f"bench_serving_paths: an SSE stream failed: {text[:400]!r}")
    return int(usage.group(1)), text.count("data: ")


async def http_sse(port: int, sessions: int, tokens: int) -> dict:
    """tok/s of concurrent OpenAI chat completion streams (each opens, prefills and closes its session)."""
    t0 = time.perf_counter()
    done = await asyncio.gather(*(_sse_one(port, i, tokens) for i in range(sessions)))
    seconds = time.perf_counter() - t0
    return {"tok_s": sum(n for n, _ in done) / seconds, "messages": sum(m for _, m in done) / len(done)}


class RoundTripBudget:
    """What the game clients do with a frame budget (unity_client RoundTripBudget.cs, the C++ client's
    round_trip_budget): the budget covers the whole round trip, so the time spent outside the server (round
    trip − TickResponse.tick_ms: mean + 2 deviations, running) is taken off each entry's budget_ms."""

    WEIGHT, MIN_MS = 0.1, 0.05

    def __init__(self) -> None:
        self.mean = self.dev = 0.0
        self.seeded = False

    def server_budget(self, budget_ms: float) -> float:
        allowance = self.mean + 2.0 * self.dev if self.seeded else 0.0
        return max(self.MIN_MS, budget_ms - allowance)

    def observe(self, rtt_ms: float, server_ms: float) -> None:
        outside = max(0.0, rtt_ms - max(0.0, server_ms))
        if not self.seeded:
            self.mean, self.seeded = outside, True
            return
        delta = outside - self.mean
        self.mean += self.WEIGHT * delta
        self.dev += self.WEIGHT * (abs(delta) - self.dev)


def tick_latency(stub, sessions: int, budget_ms: float, ticks: int, *, round_trip: bool = False) -> dict:
    """Budget-bound ticks (no token cap): round trip, engine time, overhead, tokens per tick. `round_trip`:
    the budget is a round-trip budget (RoundTripBudget), as the Unity and Unreal clients send it."""
    samples = budget_ticks(stub, sessions, budget_ms, ticks, round_trip=round_trip)
    rtt, engine = samples["rtt"], samples["engine"]
    overhead = [r - e for r, e in zip(rtt, engine)]
    return {"sessions": sessions, "budget_ms": budget_ms, "round_trip_budget": round_trip, "ticks": ticks,
            "tokens_per_tick": samples["tokens"] / ticks,
            **spread("rtt", rtt), **spread("engine", engine), **spread("overhead", overhead),
            "rtt_max_ms": max(rtt), "over_budget_0_5": sum(r > budget_ms + 0.5 for r in rtt) / ticks}


def budget_ticks(stub, sessions: int, budget_ms: float, ticks: int, *, round_trip: bool = False) -> dict:
    """`ticks` Ticks of every session at `budget_ms`, after their prefill: each tick's round trip, servicer and
    engine time (ms), and the tokens they returned."""
    sids = open_sessions(stub, sessions)
    # prefill first (steady state is what a game sees frame after frame)
    waiting = set(sids)
    while waiting:
        reply = stub.Tick(pb.TickRequest(entries=[pb.TickEntry(session_id=s, budget_ms=10_000, max_tokens=1)
                                                  for s in waiting]))
        waiting -= {r.session_id for r in reply.results if r.token_ids}
    samples = {"rtt": [], "handler": [], "engine": [], "tokens": 0}
    allowance = RoundTripBudget() if round_trip else None
    for _ in range(ticks):
        sent = allowance.server_budget(budget_ms) if allowance else budget_ms
        reply = timed_tick(stub, pb.TickRequest(entries=[pb.TickEntry(session_id=s, budget_ms=sent) for s in sids]),
                           samples)
        if allowance:
            allowance.observe(samples["rtt"][-1], reply.tick_ms)
        for k, r in enumerate(reply.results):
            samples["tokens"] += len(r.token_ids)
            if r.finished:   # context full: a fresh session takes its place (its prefill is ticked too)
                stub.CloseSession(pb.CloseSessionRequest(session_id=r.session_id))
                sids[k] = open_sessions(stub, 1)[0]
    for s in sids:
        stub.CloseSession(pb.CloseSessionRequest(session_id=s))
    return samples


def noop_rtt(channel, calls: int) -> list[float]:
    health = health_pb2_grpc.HealthStub(channel)
    out = []
    for _ in range(calls):
        t = time.perf_counter()
        health.Check(health_pb2.HealthCheckRequest())
        out.append((time.perf_counter() - t) * 1000.0)
    return out


# -- one package ----------------------------------------------------------------------------------------------
def run_package(label: str, package: Path, args) -> tuple[list[dict], list[dict]]:
    throughput, latency = [], []
    for sessions in args.sessions:
        tokens = args.tokens_1 if sessions == 1 else args.tokens_n
        load_before = os.getloadavg()[0]
        engine_tok_s = engine_tick(package, sessions, tokens, args.threads, args.spinning)
        with tempfile.TemporaryDirectory(prefix="npc-sp-") as tmp:
            proc, grpc_port, http_port = start_server(package, sessions, Path(tmp), engine_table(args),
                                                      args.switch_interval_ms, server_table(args))
            try:
                with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
                    stub = runtime_pb2_grpc.NpcRuntimeStub(channel)
                    grpc_tick(stub, sessions, 4)                             # warm-up, every path
                    asyncio.run(grpc_generate(grpc_port, sessions, 4))
                    asyncio.run(http_sse(http_port, sessions, 4))
                    best = {"tick": {"tok_s": 0.0}, "generate": {"tok_s": 0.0}, "sse": {"tok_s": 0.0}}
                    for _ in range(args.repeats):
                        runs = {"tick": grpc_tick(stub, sessions, tokens),
                                "generate": asyncio.run(grpc_generate(grpc_port, sessions, tokens)),
                                "sse": asyncio.run(http_sse(http_port, sessions, tokens))}
                        best = {k: max(best[k], v, key=lambda r: r["tok_s"]) for k, v in runs.items()}
                    tick = best["tick"]
                    overhead = [r - e for r, e in zip(tick["rtt"], tick["engine"])]
                    noop = noop_rtt(channel, args.ticks)
                    for budget in BUDGETS_MS:
                        for round_trip in (False, True):
                            latency.append({"package": label, **tick_latency(stub, sessions, budget, args.ticks,
                                                                             round_trip=round_trip)})
            finally:
                proc.terminate()
                proc.wait(timeout=60)
        served = best["tick"]["tok_s"]
        throughput.append({
            "package": label, "sessions": sessions, "tokens_per_session": tokens,
            "engine_tick_tok_s": engine_tok_s, "grpc_tick_tok_s": served,
            "grpc_generate_tok_s": best["generate"]["tok_s"], "http_sse_tok_s": best["sse"]["tok_s"],
            "generate_vs_tick": best["generate"]["tok_s"] / served, "sse_vs_tick": best["sse"]["tok_s"] / served,
            "tick_vs_engine": served / engine_tok_s,
            "generate_messages_per_stream": best["generate"]["messages"],
            "sse_events_per_stream": best["sse"]["messages"],
            **spread("tick_overhead", overhead), **spread("noop_rpc", noop),
            "load_avg_1m": max(load_before, os.getloadavg()[0])})
    return throughput, latency


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path("/tmp/npc-bench"), help="where packages are cached")
    ap.add_argument("--packages", default="builtin,ref", help="builtin (shipped dialogue), ref (ref-llama-32m int4)")
    ap.add_argument("--sessions", default="1,64")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--ticks", type=int, default=200, help="ticks per latency run")
    ap.add_argument("--quick", action="store_true", help="1 repeat, 60 ticks, fewer tokens")
    ap.add_argument("--threads", type=int, default=0, help="engine intra-op threads (0: the default, all cores)")
    ap.add_argument("--spinning", choices=("step", "always", "never"), default=None,
                    help="engine intra_op_spinning (default: the product default, \"step\")")
    ap.add_argument("--switch-interval-ms", type=float, default=0.0,
                    help="experiment: the server's GIL switch interval (0: Python's default, 5 ms)")
    ap.add_argument("--stream-interval-ms", type=float, default=None,
                    help="the server's [server] stream_interval_ms (default: the product default)")
    ap.add_argument("--tokens-n", dest="tokens_n_override", type=int, default=0,
                    help="tokens per session above 1 session (default 48, an NPC line; --quick 16)")
    ap.add_argument("--out", default="serving_paths", help="results name: bench/results/NAME.json")
    args = ap.parse_args()
    meta = result_metadata()   # now, so that the load average "before" is before the run
    args.sessions = [int(x) for x in args.sessions.split(",")]
    args.tokens_1, args.tokens_n = (128, 16) if args.quick else (256, 48)
    if args.tokens_n_override:
        args.tokens_n = args.tokens_n_override
    if args.quick:
        args.repeats, args.ticks = 1, 60
    packages = {"builtin": BUILTIN, "ref": None}
    throughput, latency = [], []
    for label in args.packages.split(","):
        package = packages[label] or reference_int4(args.work)
        t, lat = run_package(label, package, args)
        throughput += t
        latency += lat
    t_cols = [("package", "package"), ("sessions", "sessions"), ("engine_tick_tok_s", "engine tick tok/s"),
              ("grpc_tick_tok_s", "gRPC Tick tok/s"), ("grpc_generate_tok_s", "Generate tok/s"),
              ("http_sse_tok_s", "SSE tok/s"), ("generate_vs_tick", "Generate/Tick"), ("sse_vs_tick", "SSE/Tick"),
              ("tick_overhead_p50_ms", "Tick overhead p50 ms"), ("tick_overhead_p99_ms", "p99 ms"),
              ("noop_rpc_p50_ms", "no-op RPC p50 ms"), ("load_avg_1m", "load")]
    l_cols = [("package", "package"), ("sessions", "sessions"), ("budget_ms", "budget ms"),
              ("round_trip_budget", "round-trip budget"),
              ("rtt_p50_ms", "RTT p50 ms"), ("rtt_p99_ms", "RTT p99 ms"), ("engine_p99_ms", "engine p99 ms"),
              ("overhead_p50_ms", "overhead p50 ms"), ("overhead_p99_ms", "overhead p99 ms"),
              ("over_budget_0_5", "share > budget+0.5"), ("tokens_per_tick", "tokens/tick")]
    t_table = print_table(throughput, t_cols, title="Served paths: tok/s (prefill + N greedy tokens per session)")
    l_table = print_table(latency, l_cols, title="Tick at a budget, measured at the client (round trip)")
    path = write_json(args.out, {
        "command": " ".join([Path(sys.executable).name, *sys.argv]), "versions": versions("grpc", "onnxruntime"),
        "server_switch_interval_ms": args.switch_interval_ms or 5.0,
        "stream_interval_ms": args.stream_interval_ms, "engine_threads": args.threads,
        "engine_spinning": args.spinning or "step (default)",
        "packages": {k: str(v or reference_int4(args.work)) for k, v in packages.items()
                     if k in args.packages.split(",")},
        "throughput": throughput, "latency": latency, "tables": [t_table, l_table]}, meta=meta)
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
