"""Streamed NPC decisions over gRPC: time to action and time to first sentence of `NpcAgent.StepStream`, and
decisions per second through the served `Play` stream vs the in-process `AgentRuntime` on the same steps.

    .venv/bin/python -m bench.bench_agent_stream [--rounds-1 40] [--rounds-64 4] [--updates 20]

The system under test is the product's own assembly (`assembly.build_system`: the built-in npc-dialogue and
npc-policy packages, the default `local` escalation provider, budgets, SQLite memory in a temporary data
dir) served by `System.server()` on 127.0.0.1 with OS-chosen ports; the client is grpc.aio in the same
process. Every talk step is a player line to a guard, so the local dialogue model speaks (or the escalation
provider, when the policy is unsure or the line is novel; the source mix is reported).

Peers, same run, same server, same kind of steps:
  StepStream  first chunk (the action), first `sentence_end` delta, last chunk (done), client-side
  Step        the whole Decision (what a game waits for without streaming)
  Play / in-process: U updates x N NPCs, quiet steps (FSM + policy) and talk steps (dialogue model); the
  in-process peer calls `AgentRuntime` the way the servicer does (quiet steps batched in one policy call,
  talk steps concurrently on a pool of the servicer's size), so the difference is gRPC and protobuf;
  the two alternate `--trials` times and the median run of each is kept.
Writes bench/results/agent_stream.json.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import grpc

from bench.common import print_table, versions, write_json
from npc_proto.v1 import agent_pb2 as pb
from npc_proto.v1 import agent_pb2_grpc

LINES = ("Good morning, guard. Any news from the gate?", "Have you seen a thief around here?",
         "Can I pass through the north gate tonight?", "Where can I buy bread in this village?",
         "The blacksmith says wolves came down from the hills.", "Do you know who stole the baker's apples?",
         "I am looking for work. Does the captain need help?", "Why is the market closed today?")


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q / 100 * (len(s) - 1))))]


def talk(npc_id: str, k: int, t: float) -> pb.StepRequest:
    return pb.StepRequest(npc_id=npc_id, observation=pb.Observation(
        game_time_s=t, values={"player_distance": 2.0}, tags={"location": "gate"}, player_utterance=LINES[k % len(LINES)]))


def quiet(npc_id: str, t: float, k: int) -> pb.StepRequest:
    return pb.StepRequest(npc_id=npc_id, observation=pb.Observation(
        game_time_s=t, values={"player_distance": 6.0 + k % 5}, tags={"location": "market"}))


def register(npc_id: str) -> pb.RegisterNpcRequest:
    return pb.RegisterNpcRequest(npc_id=npc_id, persona=pb.Persona(name="Bram", role="guard", traits=["stern"]),
                                 fsm_name="guard", memories=[pb.MemorySeed(text="I guard the north gate.")])


def build(data_dir: str):
    from npc_runtime.assembly import build_system
    from npc_runtime.demo.models import default_cache_dir, ensure_packages
    from npc_runtime.settings import load_settings

    found = ensure_packages(default_cache_dir(), progress=False)   # exports the built-ins once if missing
    if found.dialogue is None:
        raise SystemExit(f"bench_agent_stream: no built-in dialogue package: {found.notes}")
    settings = load_settings(env={}, flags={"server.port": 0, "server.http_port": 0, "server.data_dir": data_dir,
                                            "server.log_level": "WARNING"})
    return build_system(settings), settings


# ---- StepStream / Step latency ------------------------------------------------------------------------
async def one_stream(stub, request) -> dict:
    t0 = time.perf_counter()
    out = {"action": None, "sentence": None, "done": None, "source": None, "deltas": 0}
    async for chunk in stub.StepStream(request):
        now = (time.perf_counter() - t0) * 1000
        kind = chunk.WhichOneof("chunk")
        if kind == "action":
            out["action"] = now
        elif kind == "dialogue":
            out["deltas"] += 1
            if chunk.dialogue.sentence_end and out["sentence"] is None:
                out["sentence"] = now
        else:
            out["done"] = now
            out["source"] = pb.DecisionSource.Name(chunk.done.source).removeprefix("DECISION_SOURCE_").lower()
    return out


async def one_step(stub, request) -> dict:
    t0 = time.perf_counter()
    d = await stub.Step(request)
    return {"done": (time.perf_counter() - t0) * 1000,
            "source": pb.DecisionSource.Name(d.source).removeprefix("DECISION_SOURCE_").lower()}


async def latency(stub, npcs: int, rounds: int, prefix: str, clock: list[float]) -> list[dict]:
    """`rounds` rounds; in each, all `npcs` NPCs are spoken to at once (StepStream), then a second set of NPCs
    in the same states gets the same lines through Step. Rows: all steps, then by decision source."""
    s_ids = [f"{prefix}-s{i}" for i in range(npcs)]
    u_ids = [f"{prefix}-u{i}" for i in range(npcs)]
    for npc in s_ids + u_ids:
        await stub.RegisterNpc(register(npc))
    streams, steps = [], []
    for r in range(rounds + 1):   # round 0 warms up (sessions, prefix cache, thread pool)
        clock[0] += 30.0
        got = await asyncio.gather(*(one_stream(stub, talk(n, r * 7 + i, clock[0])) for i, n in enumerate(s_ids)))
        whole = await asyncio.gather(*(one_step(stub, talk(n, r * 7 + i, clock[0])) for i, n in enumerate(u_ids)))
        if r:
            streams += got
            steps += whole
    rows = [latency_row(npcs, "all", streams, steps)]
    for source in sorted({s["source"] for s in streams}):
        rows.append(latency_row(npcs, source, [s for s in streams if s["source"] == source],
                                [s for s in steps if s["source"] == source]))
    return rows


def latency_row(npcs: int, source: str, streams: list[dict], steps: list[dict]) -> dict:
    row = {"npcs": npcs, "source": source, "steps": len(streams)}
    for key in ("action", "sentence", "done"):
        vals = [s[key] for s in streams if s[key] is not None]
        row[f"{key}_p50_ms"], row[f"{key}_p99_ms"] = pct(vals, 50), pct(vals, 99)
    whole = [s["done"] for s in steps]
    row["step_p50_ms"], row["step_p99_ms"], row["step_samples"] = pct(whole, 50), pct(whole, 99), len(whole)
    row["deltas_per_line_mean"] = statistics.mean(s["deltas"] for s in streams) if streams else None
    return row


# ---- Play vs in-process -------------------------------------------------------------------------------
def updates(ids: list[str], n_updates: int, kind: str, t0: float) -> list[list[pb.StepRequest]]:
    make = (lambda n, i, u, t: talk(n, u * 3 + i, t)) if kind == "talk" else (lambda n, i, u, t: quiet(n, t, u + i))
    return [[make(n, i, u, t0 + (u + 1) * (30.0 if kind == "talk" else 0.1)) for i, n in enumerate(ids)]
            for u in range(n_updates)]


async def served_play(stub, plan: list[list[pb.StepRequest]]) -> tuple[float, int]:
    queue: asyncio.Queue = asyncio.Queue()

    async def requests():
        for seq, steps in enumerate(plan, 1):
            yield pb.PlayRequest(seq=seq, steps=steps)
            await queue.get()   # a game server sends the next update when it has the answers (one tick)

    decisions = 0
    t0 = time.perf_counter()
    async for response in stub.Play(requests()):
        decisions += len(response.decisions)
        assert not response.errors, response.errors
        queue.put_nowait(None)
    return time.perf_counter() - t0, decisions


def in_process(runtime, pool: ThreadPoolExecutor, plan: list[list[pb.StepRequest]]) -> tuple[float, int]:
    from npc_runtime.serving.agent_servicer import step_from_pb

    decisions = 0
    t0 = time.perf_counter()
    for steps in plan:   # what AgentServicer._play_one does, minus gRPC and protobuf out
        parsed = [(s.npc_id, *step_from_pb(s)) for s in steps]
        quiet_items = [(n, p) for n, p, e, _ in parsed if runtime.is_quiet(p, e)]
        talk_items = [(n, p, e, d) for n, p, e, d in parsed if not runtime.is_quiet(p, e)]
        futures = [pool.submit(runtime.step, n, p, e, deadline_ms=d) for n, p, e, d in talk_items]
        if quiet_items:
            decisions += sum(1 for d in runtime.step_quiet_batch(quiet_items) if not isinstance(d, Exception))
        decisions += sum(1 for f in futures if f.result() is not None)
    return time.perf_counter() - t0, decisions


def shifted(plan: list[list[pb.StepRequest]], offset_s: float) -> list[list[pb.StepRequest]]:
    """The same updates later in game time (the game clock only moves forward)."""
    out = []
    for steps in plan:
        copies = []
        for step in steps:
            c = pb.StepRequest()
            c.CopyFrom(step)
            c.observation.game_time_s += offset_s
            copies.append(c)
        out.append(copies)
    return out


def median_run(runs: list[tuple[float, int]]) -> tuple[float, int]:
    return sorted(runs, key=lambda r: r[1] / r[0])[len(runs) // 2]


async def throughput(stub, runtime, workers: int, npcs: int, n_updates: dict[str, int], clock: list[float],
                     trials: int) -> list[dict]:
    rows = []
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="bench-inproc")
    try:
        for kind in ("quiet", "talk"):
            served_ids = [f"play-{kind}-{i}" for i in range(npcs)]
            local_ids = [f"inproc-{kind}-{i}" for i in range(npcs)]
            for npc in served_ids + local_ids:
                await stub.RegisterNpc(register(npc))
            clock[0] += 60.0
            warm = 2 if kind == "quiet" else 1
            plan_s = updates(served_ids, n_updates[kind] + warm, kind, clock[0])
            plan_l = updates(local_ids, n_updates[kind] + warm, kind, clock[0])
            await served_play(stub, plan_s[:warm])
            await asyncio.get_running_loop().run_in_executor(None, in_process, runtime, pool, plan_l[:warm])
            served, local = [], []
            for trial in range(trials):   # alternated, so a load change on the shared machine hits both
                t_off = trial * (plan_s[-1][0].observation.game_time_s - clock[0] + 60.0)
                served.append(await served_play(stub, shifted(plan_s[warm:], t_off)))
                local.append(await asyncio.get_running_loop().run_in_executor(
                    None, in_process, runtime, pool, shifted(plan_l[warm:], t_off)))
                clock[0] = max(clock[0], plan_s[-1][0].observation.game_time_s + t_off)
            (wall_s, dec_s), (wall_l, dec_l) = median_run(served), median_run(local)
            rows.append({"steps": kind, "npcs": npcs, "updates": n_updates[kind], "trials": trials,
                         "play_decisions_per_s": dec_s / wall_s, "inprocess_decisions_per_s": dec_l / wall_l,
                         "play_vs_inprocess": (dec_s / wall_s) / (dec_l / wall_l),
                         "play_ms_per_update": wall_s / n_updates[kind] * 1000,
                         "inprocess_ms_per_update": wall_l / n_updates[kind] * 1000})
    finally:
        pool.shutdown()
    return rows


async def run(args) -> dict:
    tmp = tempfile.TemporaryDirectory(prefix="bench-agent-stream-")
    system, settings = build(tmp.name)
    server = system.server()
    await server.start()
    clock = [0.0]
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
            stub = agent_pb2_grpc.NpcAgentStub(channel)
            lat = [*await latency(stub, 1, args.rounds_1, "one", clock),
                   *await latency(stub, 64, args.rounds_64, "many", clock)]
            thr = await throughput(stub, system.agent, settings.agent.step_workers, args.play_npcs,
                                   {"quiet": args.updates_quiet, "talk": args.updates_talk}, clock, args.trials)
    finally:
        await server.stop(grace=1.0)
        await system.shutdown()
        tmp.cleanup()
    return {"latency": lat, "throughput": thr, "models": list(system.models), "policy": system.policy_package,
            "escalation_provider": settings.agent.escalation.provider,
            "default_deadline_ms": settings.agent.default_deadline_ms, "step_workers": settings.agent.step_workers,
            "engine": {"max_sessions": settings.engine.max_sessions, "intra_op_threads": settings.engine.intra_op_threads}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds-1", type=int, default=40, help="StepStream rounds with 1 NPC")
    parser.add_argument("--rounds-64", type=int, default=4, help="StepStream rounds with 64 NPCs at once")
    parser.add_argument("--play-npcs", type=int, default=64)
    parser.add_argument("--updates-quiet", type=int, default=50)
    parser.add_argument("--updates-talk", type=int, default=4)
    parser.add_argument("--trials", type=int, default=3, help="alternating Play / in-process runs (median kept)")
    args = parser.parse_args(argv)
    load = os.getloadavg()[0]
    result = asyncio.run(run(args))
    result.update(machine={"python": sys.version.split()[0], "platform": platform.platform(),
                           "cores_visible": os.cpu_count(), "load_average_1m_at_start": load,
                           "load_average_1m_at_end": os.getloadavg()[0]},
                  versions=versions("onnxruntime", "grpc", "numpy"), command=" ".join(["python -m bench.bench_agent_stream",
                                                                                          *(argv or sys.argv[1:])]))
    print_table(result["latency"], [
        ("npcs", "NPCs at once"), ("source", "decided by"), ("steps", "steps"), ("action_p50_ms", "action p50"),
        ("action_p99_ms", "action p99"), ("sentence_p50_ms", "1st sentence p50"), ("sentence_p99_ms", "1st sentence p99"),
        ("done_p50_ms", "done p50"), ("done_p99_ms", "done p99"), ("deltas_per_line_mean", "deltas/line"),
        ("step_samples", "Step steps"), ("step_p50_ms", "Step p50"), ("step_p99_ms", "Step p99")],
        title="StepStream over gRPC, client-side ms from the call; Step (the whole Decision) for the same lines")
    print_table(result["throughput"], [
        ("steps", "steps"), ("npcs", "NPCs"), ("updates", "updates"), ("trials", "trials"), ("play_decisions_per_s", "Play decisions/s"),
        ("inprocess_decisions_per_s", "in-process decisions/s"), ("play_vs_inprocess", "Play / in-process"),
        ("play_ms_per_update", "Play ms/update"), ("inprocess_ms_per_update", "in-process ms/update")],
        title="decisions per second: served Play stream vs in-process AgentRuntime, same steps")
    path = write_json("agent_stream", result)
    print(f"\nload average {load:.2f} at start, {result['machine']['load_average_1m_at_end']:.2f} at end; wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
