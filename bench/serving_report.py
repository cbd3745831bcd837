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

from bench.doc_blocks import LOSS, table

P2S_TARGET = 0.9
P3_SLACK_MS = 0.5
P4_TARGET_MS = {1: 0.3, 64: 0.6}


def current(results, name: str) -> list:
    """The newest result named `name`.json per machine, fewest cores first."""
    chosen = {}
    for r in results:
        if r.path.name != f"{name}.json":
            continue
        old = chosen.get(r.machine)
        if old is None or r.data.get("timestamp", "") > old.data.get("timestamp", ""):
            chosen[r.machine] = r
    return sorted(chosen.values(), key=lambda r: (r.data["machine"].get("cores_physical") or 0, r.machine))


def _title(run) -> str:
    m = run.data["machine"]
    load = m.get("load_avg_before"), m.get("load_avg_after")
    busy = f", load {load[0][0]:.1f} → {load[1][0]:.1f}" if all(load) else ""
    return f"**{run.machine}**{busy} (`{run.rel}`)"


def _vs(value: float, target: float) -> str:
    text = f"{value:.3f}×"
    return f"**{text} {LOSS}**" if value < target else text


def _ms(value: float, target: float | None) -> str:
    text = f"{value:.2f} ms"
    return f"**{text} {LOSS}**" if target is not None and value > target else text


def block_serving_paths(results) -> str:
    runs = current(results, "serving_paths")
    if not runs:
        return "No `serving_paths.json` yet: run `python bench/bench_serving_paths.py`, then `make bench-report`.\n"
    parts = []
    for run in runs:
        spin = run.data.get("engine_spinning", "?")
        throughput = [[row["package"], str(row["sessions"]), f"{row['engine_tick_tok_s']:,.0f} tok/s",
                       f"{row['grpc_tick_tok_s']:,.0f} tok/s",
                       _vs(row["generate_vs_tick"], P2S_TARGET), _vs(row["sse_vs_tick"], P2S_TARGET),
                       f"{row['grpc_generate_tok_s'] / row['engine_tick_tok_s']:.2f}× / "
                       f"{row['http_sse_tok_s'] / row['engine_tick_tok_s']:.2f}×",
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
            + table(["package", "sessions", "engine tick (in-process)", "served gRPC `Tick`",
                      "`Generate` ÷ `Tick` (P2s ≥ 0.9)", "SSE ÷ `Tick` (P2s ≥ 0.9)",
                      "`Generate` / SSE ÷ engine",
                      "`Tick` overhead p50 (P4)", "overhead p99", "no-op RPC p50"], throughput)
            + "\n\n"
            + table(["package", "sessions", "Tick budget", "budget counted as", "round trip p50",
                     "round trip p99 (P3 ≤ budget + 0.5)", "engine p99", "ticks over budget + 0.5 ms",
                     "tokens per tick"], latency))
    return ("\n\n".join(parts) + f"\n\nThroughput rows: prompt, then N greedy tokens per session, prefill "
            f"included, one token per `Tick`; overhead = round trip at the client − the engine's own time; "
            f"{LOSS} = target missed. Python clients (grpc, raw asyncio HTTP) on the same machine. Budget counted as "
            f"\"server\": sent as given (the server's budget counts from when it receives the call); \"round trip\": "
            f"the client takes its measured transport time off it first, as the Unity and Unreal clients do.\n")


def block_cpp_tick(results) -> str:
    runs = current(results, "cpp_tick")
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
        parts.append(_title(run) + "\n\n" + table(
            ["package", "sessions", "client", "ticks", "round trip p50", "round trip p99", "overhead p50",
             "overhead p99", "server (reply − engine) p50", "client + transport p50", "over budget + 0.5 ms",
             "no-op RPC p50"], rows))
    return ("\n\n".join(parts) + "\n\nOverhead = round trip − the engine's own time (`TickStats.tick_ms`); server = "
            "the servicer's time (`TickResponse.tick_ms`) − the engine's; client + transport = round trip − the "
            f"servicer's time. {LOSS} = target missed. `C++` is `npc::NpcRuntimeClient` (unreal_client/core), "
            "the client the Unreal plugin uses.\n")


BLOCKS = {"serving-paths": block_serving_paths, "cpp-tick": block_cpp_tick}


# -- issue 10's targets, one row each, from the result files above and bench/results/engine.json ----------------
def _comparison(run, case: str, sessions: int, mode: str, precision: str = "int4"):
    for c in run.data["comparisons"] if run else ():
        if (c["case"], c["sessions"], c["peer_mode"], c["precision"]) == (case, sessions, mode, precision):
            return c
    return None


def _served(run, package: str, sessions: int, key: str):
    rows = [r for r in run.data["throughput"] if (r["package"], r["sessions"]) == (package, sessions)] if run else []
    return rows[0][key] if rows else None


def _budgets(rows) -> str:
    if not rows:
        return "not run"
    cells = [_ms(r["rtt_p99_ms"], r["budget_ms"] + P3_SLACK_MS) for r in sorted(rows, key=lambda r: r["budget_ms"])]
    return " / ".join(cells)


def block_issue10(results, engine) -> str:
    """`engine`: the engine comparison to read P1 / P2 from (bench.report.first_full_run), or None."""
    served = (current(results, "serving_paths") or [None])[0]
    cpp = (current(results, "cpp_tick") or [None])[0]
    pkg = "ref"   # the reference model, int4: the package the engine comparison uses too
    rows = []

    single = _comparison(engine, "single", 1, "batched")
    rows.append(["P1", "1 session, int4: engine ÷ genai `Generator` (same package, same threads)", "≥ 1.0×",
                 _vs(single["ratio"], 1.0) if single else "not run"])
    batched = _comparison(engine, "aggregate", 64, "batched")
    tick_vs_engine = _served(served, pkg, 64, "tick_vs_engine")
    p2 = (_vs(batched["ratio"], 2.0) if batched else "not run") + (
        f"; served `Tick` ÷ in-process engine {tick_vs_engine:.3f}×" if tick_vs_engine else "")
    rows.append(["P2", "64 sessions, int4: engine ÷ genai batched (2 × 32 rows)", "≥ 2.0×", p2])
    for sessions in (1, 64):
        gen, sse = _served(served, pkg, sessions, "generate_vs_tick"), _served(served, pkg, sessions, "sse_vs_tick")
        rows.append(["P2s", f"{sessions} session{'s' * (sessions > 1)}: `Generate` ÷ `Tick`, SSE ÷ `Tick`", "≥ 0.9×",
                     f"{_vs(gen, P2S_TARGET)}, {_vs(sse, P2S_TARGET)}" if gen else "not run"])
    latency = [r for r in served.data["latency"] if r["package"] == pkg and r["sessions"] == 64] if served else []
    rows.append(["P3", "64 sessions, `Tick` round trip p99 at budgets 4 / 8 / 16 ms, Python client, budget as given",
                 "≤ budget + 0.5 ms", _budgets([r for r in latency if not r.get("round_trip_budget")])])
    rows.append(["P3", "… the same, round-trip budgets (the client takes its transport time off)", "≤ budget + 0.5 ms",
                 _budgets([r for r in latency if r.get("round_trip_budget")])])
    cpp_rows = [r for r in cpp.data["rows"] if r["package"] == pkg] if cpp else []
    rows.append(["P3", "… the same through the C++ client (Unreal), round-trip budgets", "≤ budget + 0.5 ms",
                 _budgets([r for r in cpp_rows if r["client"] == "cpp round-trip" and r["sessions"] == 64])])
    for client, label in (("python", "Python client"), ("cpp", "C++ client")):
        cells = []
        for sessions in (1, 64):
            row = next((r for r in cpp_rows if (r["client"], r["mode"], r["sessions"]) == (client, "tokens", sessions)),
                       None)
            cells.append(_ms(row["overhead_p50_ms"], P4_TARGET_MS[sessions]) + f" (no-op RPC {row['noop_p50_ms']:.2f})"
                         if row else "not run")
        rows.append(["P4", f"`Tick` overhead p50 (round trip − engine), 1 / 64 sessions, {label}", "≤ 0.3 / 0.6 ms",
                     " / ".join(cells)])
    sources = ", ".join(f"`{r.rel}`" for r in (engine, served, cpp) if r is not None)
    return (table(["target", "measure (reference model, int4; ratios within one run)", "goal", "result"], rows)
            + f"\n\n{LOSS} = missed. Sources: {sources}.\n")




def block_served_summary(results) -> str:
    """README's served-path figures: a table of its own (a comment line inside a Markdown table ends it)."""
    served = (current(results, "serving_paths") or [None])[0]
    cpp = (current(results, "cpp_tick") or [None])[0]
    rows = []
    if cpp is not None:
        ref = [r for r in cpp.data["rows"] if r["package"] == "ref"]
        budget = sorted((r for r in ref if r["client"] == "cpp round-trip" and r["sessions"] == 64),
                        key=lambda r: r["budget_ms"])
        if budget:
            budgets = " / ".join(f"{r['budget_ms']:g}" for r in budget)
            rows.append([f"`Tick` round trip p99, 64 sessions, budgets {budgets} ms, the Unreal C++ client "
                         "(round-trip budgets)",
                         " / ".join(_ms(r["rtt_p99_ms"], r["budget_ms"] + P3_SLACK_MS) for r in budget),
                         "≤ budget + 0.5 ms", f"[performance](docs/performance.md), `{cpp.rel}`"])
        overhead = {s: next((r for r in ref if (r["client"], r["mode"], r["sessions"]) == ("cpp", "tokens", s)), None)
                    for s in (1, 64)}
        if all(overhead.values()):
            rows.append(["gRPC `Tick` overhead (round trip − engine time) p50, 1 / 64 sessions, C++ client",
                         " / ".join(_ms(overhead[s]["overhead_p50_ms"], P4_TARGET_MS[s]) for s in (1, 64))
                         + f" (a no-op RPC: {overhead[1]['noop_p50_ms']:.2f} ms)",
                         "≤ 0.3 / 0.6 ms", f"[performance](docs/performance.md), `{cpp.rel}`"])
    if served is not None:
        row = next((r for r in served.data["throughput"] if (r["package"], r["sessions"]) == ("ref", 64)), None)
        if row:
            rows.append([f"streams vs served `Tick`, 64 sessions, {row['tokens_per_session']} tokens each: "
                         "`Generate` ÷ `Tick`, SSE ÷ `Tick`",
                         f"{_vs(row['generate_vs_tick'], P2S_TARGET)}, {_vs(row['sse_vs_tick'], P2S_TARGET)}",
                         "≥ 0.9 ×", f"[performance](docs/performance.md), `{served.rel}`"])
    header = "| served paths (issue 10) | result | target | where |\n|---|---|---|---|\n"
    return header + "".join("| " + " | ".join(r) + " |\n" for r in rows)


BLOCKS["served-summary"] = block_served_summary
