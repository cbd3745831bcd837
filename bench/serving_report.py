"""The served paths' blocks of docs/performance.md and README (rendered by `bench.report`, `make bench-report`).

Sources: `bench/results/**/serving_paths.json` (bench/bench_serving_paths.py: engine tick in-process, served
gRPC `Tick`, `Generate` streams and OpenAI SSE streams; Tick at budgets, measured at the client) and
`bench/results/**/cpp_tick.json` (bench/bench_cpp_tick.py: the same Tick figures through the game's own C++
client beside the Python one). Only files with exactly these names are the current figures; other
`serving_paths-*.json` files are earlier experiments kept for the record. Targets are issue 10's: P2s streams
≥ 0.9 × served Tick, P3 Tick p99 ≤ budget + 0.5 ms at the client, P4 Tick overhead p50 ≤ 0.3 ms at 1 session
and ≤ 0.6 ms at 64 (overhead = round trip − the engine's own time).
"""

from __future__ import annotations

P2S_TARGET = 0.9
P3_SLACK_MS = 0.5
P4_TARGET_MS = {1: 0.3, 64: 0.6}
MISS = "▼"


def _current(results, name: str) -> list:
    """The newest result named `name`.json per machine, fewest cores first."""
    chosen = {}
    for r in results:
        if r.path.name != f"{name}.json":
            continue
        old = chosen.get(r.machine)
        if old is None or r.data.get("timestamp", "") > old.data.get("timestamp", ""):
            chosen[r.machine] = r
    return sorted(chosen.values(), key=lambda r: (r.data["machine"].get("cores_physical") or 0, r.machine))


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def _title(run) -> str:
    m = run.data["machine"]
    load = m.get("load_avg_before"), m.get("load_avg_after")
    busy = f", load {load[0][0]:.1f} → {load[1][0]:.1f}" if all(load) else ""
    return f"**{run.machine}**{busy} (`{run.rel}`)"


def _vs(value: float, target: float) -> str:
    text = f"{value:.3f}×"
    return f"**{text} {MISS}**" if value < target else text


def _ms(value: float, target: float | None) -> str:
    text = f"{value:.2f} ms"
    return f"**{text} {MISS}**" if target is not None and value > target else text


def block_serving_paths(results) -> str:
    runs = _current(results, "serving_paths")
    if not runs:
        return "No `serving_paths.json` yet: run `python bench/bench_serving_paths.py`, then `make bench-report`.\n"
    parts = []
    for run in runs:
        spin = run.data.get("engine_spinning", "?")
        throughput = [[row["package"], str(row["sessions"]), f"{row['engine_tick_tok_s']:,.0f} tok/s",
                       f"{row['grpc_tick_tok_s']:,.0f} tok/s",
                       _vs(row["generate_vs_tick"], P2S_TARGET), _vs(row["sse_vs_tick"], P2S_TARGET),
                       _ms(row["tick_overhead_p50_ms"], P4_TARGET_MS.get(row["sessions"])),
                       f"{row['tick_overhead_p99_ms']:.2f} ms", f"{row['noop_rpc_p50_ms']:.2f} ms"]
                      for row in run.data["throughput"]]
        latency = [[row["package"], str(row["sessions"]), f"{row['budget_ms']:g} ms",
                    "round trip" if row.get("round_trip_budget") else "server",
                    f"{row['rtt_p50_ms']:.2f} ms", _ms(row["rtt_p99_ms"], row["budget_ms"] + P3_SLACK_MS),
                    f"{row['engine_p99_ms']:.2f} ms", f"{100 * row['over_budget_0_5']:.1f} %",
                    f"{row['tokens_per_tick']:.1f}"]
                   for row in run.data["latency"]]
        parts.append(
            f"{_title(run)}, engine threads: {run.data.get('engine_threads') or 'all cores'}, spinning: {spin}\n\n"
            + _table(["package", "sessions", "engine tick (in-process)", "served gRPC `Tick`",
                      "`Generate` ÷ `Tick` (P2s ≥ 0.9)", "SSE ÷ `Tick` (P2s ≥ 0.9)",
                      "`Tick` overhead p50 (P4)", "overhead p99", "no-op RPC p50"], throughput)
            + "\n\n"
            + _table(["package", "sessions", "Tick budget", "budget counted as", "round trip p50", "round trip p99 (P3 ≤ budget + 0.5)",
                      "engine p99", "ticks over budget + 0.5 ms", "tokens per tick"], latency))
    return ("\n\n".join(parts) + f"\n\nThroughput rows: prompt, then N greedy tokens per session, prefill "
            f"included, one token per `Tick`; overhead = round trip at the client − the engine's own time; "
            f"{MISS} = target missed. Python clients (grpc, raw asyncio HTTP) on the same machine. Budget counted as "
            f"\"server\": sent as given (the server's budget counts from when it receives the call); \"round trip\": "
            f"the client takes its measured transport time off it first, as the Unity and Unreal clients do.\n")


def block_cpp_tick(results) -> str:
    runs = _current(results, "cpp_tick")
    if not runs:
        return "No `cpp_tick.json` yet: run `python bench/bench_cpp_tick.py`, then `make bench-report`.\n"
    parts = []
    for run in runs:
        rows = []
        for row in run.data["rows"]:
            budget = row.get("budget_ms")
            target = (budget + P3_SLACK_MS) if budget else None
            rows.append([row["package"], str(row["sessions"]), row["client"],
                         f"{budget:g} ms" if budget else "1 token per tick",
                         f"{row['rtt_p50_ms']:.2f} ms", _ms(row["rtt_p99_ms"], target),
                         _ms(row["overhead_p50_ms"], None if budget else P4_TARGET_MS.get(row["sessions"])),
                         f"{row['overhead_p99_ms']:.2f} ms", f"{row['server_p50_ms']:.2f} ms",
                         f"{row['client_transport_p50_ms']:.2f} ms",
                         f"{100 * row['over_budget_0_5']:.1f} %" if budget else "",
                         f"{row['noop_p50_ms']:.2f} ms" if row.get("noop_p50_ms") is not None else ""])
        parts.append(_title(run) + "\n\n" + _table(
            ["package", "sessions", "client", "ticks", "round trip p50", "round trip p99", "overhead p50",
             "overhead p99", "server (reply − engine) p50", "client + transport p50", "over budget + 0.5 ms",
             "no-op RPC p50"], rows))
    return ("\n\n".join(parts) + "\n\nOverhead = round trip − the engine's own time (`TickStats.tick_ms`); server = "
            "the servicer's time (`TickResponse.tick_ms`) − the engine's; client + transport = round trip − the "
            f"servicer's time. {MISS} = target missed. `C++` is `npc::NpcRuntimeClient` (unreal_client/core), "
            "the client the Unreal plugin uses.\n")


BLOCKS = {"serving-paths": block_serving_paths, "cpp-tick": block_cpp_tick}
