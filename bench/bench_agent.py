"""Agent benchmark: FSM ticks for 500 NPCs at 10 Hz on one core, agent decisions per second, and the
escalation rate and cost per NPC-hour in the demo's village scenario.

    .venv/bin/python -m bench.bench_agent [--npcs 500] [--hz 10] [--seconds 10] [--scenario-seconds 120]

Peers compared in the same run: FSM tick alone, FSM + policy model per NPC, FSM + policy batched over all
NPCs, and the full agent `step` (perceive, FSM, policy, memory) for quiet steps. Ratios are against the
real-time need (npcs x hz ticks per second). Writes bench/results/agent.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections import Counter
from pathlib import Path

from npc_runtime.agent.brain import AgentRuntime
from npc_runtime.agent.config import AgentConfig
from npc_runtime.agent.escalation import EscalationConfig, EscalationManager
from npc_runtime.agent.expressions import GuardContext
from npc_runtime.agent.fsm import FsmInstance
from npc_runtime.agent.fsm_loader import load_builtin_fsm
from npc_runtime.agent.memory import MemoryStore, estimate_tokens
from npc_runtime.agent.policy_model import OnnxPolicyModel, UniformPolicy
from npc_runtime.agent.providers.base import ProviderReply
from npc_runtime.agent.types import Event, Percept, Persona
from npc_runtime.builtin_packages import package_dir
from npc_runtime.demo.village import Village

RESULTS = Path(__file__).resolve().parent / "results" / "agent.json"
PRICED_MODEL = "gpt-4o-mini"


def pin_one_core() -> str:
    if hasattr(os, "sched_setaffinity"):
        core = sorted(os.sched_getaffinity(0))[0]
        os.sched_setaffinity(0, {core})
        return f"pinned to core {core}"
    return "not pinned (no sched_setaffinity)"


def load_policy(tmp: Path):
    """The shipped built-in npc-policy (npc_runtime.builtin_packages); else a stand-in linear ONNX policy with the
    same I/O (its cost is ONNX Runtime's per-call overhead, which dominates for a model this small)."""
    pkg = package_dir("npc-policy")
    if pkg is not None:
        return OnnxPolicyModel(pkg, intra_op_threads=1), f"built-in npc-policy ({pkg})"
    try:
        from tests.agent.policy_factory import build_policy_package
    except ImportError as exc:
        return None, f"no policy: npc-policy not exported and the stand-in needs onnx and `python -m bench.bench_agent` ({exc})"
    return (OnnxPolicyModel(build_policy_package(tmp / "policy"), intra_op_threads=1),
            "stand-in linear ONNX policy (tests/agent/policy_factory.py): npc-policy not exported yet")


def world(village: Village, t: float, dt: float):
    return village.frame(t, dt)


def bench_ticks(npcs: int, hz: float, seconds: float, policy) -> dict:
    """Simulated game time: every NPC ticks `hz` times a game second; wall time is measured."""
    village = Village(npcs)
    fsms = [FsmInstance(load_builtin_fsm(n.role)) for n in village.npcs]
    frames = int(seconds * hz)
    percepts = [world(village, (f + 1) / hz, 1 / hz) for f in range(frames)]   # prepared outside the timing
    ctxs = [[GuardContext(values=p[n.npc_id].values, tags=p[n.npc_id].tags,
                          events=frozenset(e["kind"] for e in p[n.npc_id].events), said=bool(p[n.npc_id].utterance))
             for n in village.npcs] for p in percepts]
    out = {}

    start = time.perf_counter()
    for f in range(frames):
        t = (f + 1) / hz
        for fsm, ctx in zip(fsms, ctxs[f]):
            fsm.tick(ctx, t)
    out["fsm"] = time.perf_counter() - start

    if policy is not None:
        fsms = [FsmInstance(load_builtin_fsm(n.role)) for n in village.npcs]
        start = time.perf_counter()
        for f in range(frames):
            t = (f + 1) / hz
            for fsm, ctx in zip(fsms, ctxs[f]):
                fsm.tick(ctx, t)
                policy.propose(ctx.values, fsm.spec.allowed)
        out["fsm+policy"] = time.perf_counter() - start

        fsms = [FsmInstance(load_builtin_fsm(n.role)) for n in village.npcs]
        start = time.perf_counter()
        for f in range(frames):
            t = (f + 1) / hz
            for fsm, ctx in zip(fsms, ctxs[f]):
                fsm.tick(ctx, t)
            policy.propose_batch([c.values for c in ctxs[f]], [fsm.spec.allowed for fsm in fsms])
        out["fsm+policy batched"] = time.perf_counter() - start

    runtime = AgentRuntime(config=AgentConfig(memory_db=":memory:"), memory=MemoryStore(":memory:"),
                           policy=policy or UniformPolicy())
    for n in village.npcs:
        runtime.register(n.npc_id, Persona(n.name, n.role), load_builtin_fsm(n.role))
    quiet = [[Percept(game_time_s=(f + 1) / hz, values=p[n.npc_id].values, tags=p[n.npc_id].tags) for n in village.npcs]
             for f, p in enumerate(percepts)]
    start = time.perf_counter()
    for f in range(frames):
        for n, percept in zip(village.npcs, quiet[f]):
            runtime.step(n.npc_id, percept)
    out["agent step (quiet)"] = time.perf_counter() - start

    ids = [n.npc_id for n in village.npcs]
    start = time.perf_counter()
    for f in range(frames):
        runtime.step_quiet_batch(list(zip(ids, quiet[f])))
    out["agent step_quiet_batch (all NPCs per call)"] = time.perf_counter() - start

    ticks = npcs * frames
    need = npcs * hz
    rows = {}
    for name, wall in out.items():
        per_s = ticks / wall
        rows[name] = {"us_per_tick": wall / ticks * 1e6, "ticks_per_s": per_s, "realtime_ratio": per_s / need,
                      "core_fraction_at_target": need / per_s}
    return rows


class PricedInstantProvider:
    """Answers at once with a valid decision, and usage like a cloud model (prompt tokens estimated, 60 out):
    measures how often the scenario escalates and what it would cost at PRICED_MODEL prices."""

    name = "priced-instant"
    model = PRICED_MODEL

    def complete(self, request, *, timeout_s):
        action = (request.local_hint or request.allowed_actions)[0]
        return ProviderReply(text=json.dumps({"action": action, "arguments": {}, "dialogue": "Hm."}),
                             input_tokens=estimate_tokens(request.system + request.user), output_tokens=60,
                             model=PRICED_MODEL)


def bench_scenario(npcs: int, hz: float, seconds: float, policy) -> dict:
    """The demo's village (scripted player), agent steps at `hz` per NPC plus every interaction."""
    village = Village(npcs)
    memory = MemoryStore(":memory:")
    esc = EscalationManager(PricedInstantProvider(), config=EscalationConfig(), memory=memory)
    runtime = AgentRuntime(config=AgentConfig(memory_db=":memory:"), memory=memory, policy=policy or UniformPolicy(),
                           escalation=esc)
    for n in village.npcs:
        runtime.register(n.npc_id, Persona(n.name, n.role), load_builtin_fsm(n.role))
    fps = 60
    every = max(1, round(fps / hz))
    start = time.perf_counter()
    for frame in range(1, int(seconds * fps) + 1):
        t = frame / fps
        perceptions = village.frame(t, 1 / fps)
        for i, n in enumerate(village.npcs):
            p = perceptions[n.npc_id]
            if not p.interesting and (frame + i) % every:
                continue
            runtime.step(n.npc_id, Percept(t, p.values, p.tags, p.utterance),
                         [Event(e["kind"], e["description"], e.get("importance", 0), e.get("story_critical", False))
                          for e in p.events], deadline_ms=1000)
    wall = time.perf_counter() - start
    npc_hours = npcs * seconds / 3600
    s, e = runtime.stats, esc.stats
    return {
        "game_seconds": seconds, "npcs": npcs, "wall_s": wall, "decisions": s.decisions,
        "interactions": s.by_source["local_model"] + s.by_source["cloud"] + s.by_source["fallback"],
        "escalations": e.attempted, "escalations_denied_budget": e.denied_budget,
        "escalation_rate_per_decision": e.attempted / max(1, s.decisions),
        "escalation_rate_per_interaction": e.attempted / max(1, s.by_source["local_model"] + s.by_source["cloud"]
                                                             + s.by_source["fallback"]),
        "escalations_per_npc_hour": e.attempted / npc_hours,
        "cost_usd": e.cost_usd, "cost_usd_per_npc_hour": e.cost_usd / npc_hours,
        "priced_as": PRICED_MODEL, "price_per_escalation_usd": e.cost_usd / max(1, e.attempted),
        "by_source": dict(s.by_source),
        "escalation_triggers": dict(Counter(r.trigger for r in memory.escalations() if r.outcome == "ok")),
        "policy": getattr(policy, "name", "uniform (no policy package)") if policy else "uniform (no policy package)",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--npcs", type=int, default=500)
    parser.add_argument("--hz", type=float, default=10.0)
    parser.add_argument("--seconds", type=float, default=10.0, help="simulated game seconds for the tick bench")
    parser.add_argument("--scenario-npcs", type=int, default=8)
    parser.add_argument("--scenario-seconds", type=float, default=120.0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    pinned = pin_one_core()
    import tempfile

    tmp = tempfile.TemporaryDirectory(prefix="bench-agent-")
    policy, policy_note = load_policy(Path(tmp.name))
    ticks = bench_ticks(args.npcs, args.hz, args.seconds, policy)
    scenario = bench_scenario(args.scenario_npcs, args.hz, args.scenario_seconds, policy)
    result = {
        "machine": {"python": sys.version.split()[0], "platform": platform.platform(), "cpu": platform.processor(),
                    "cores_visible": os.cpu_count(), "affinity": pinned,
                    "load_average_1m_at_start": os.getloadavg()[0]},
        "policy": policy_note, "npcs": args.npcs, "hz": args.hz, "game_seconds": args.seconds,
        "need_ticks_per_s": args.npcs * args.hz, "ticks": ticks, "scenario": scenario,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{args.npcs} NPCs at {args.hz:g} Hz on one core ({pinned}); need {args.npcs * args.hz:.0f} ticks/s; "
          f"policy: {policy_note}")
    print(f"| peer | µs per NPC tick | ticks/s | × real time | core share at {args.npcs}×{args.hz:g} Hz |")
    print("|---|---:|---:|---:|---:|")
    for name, row in ticks.items():
        print(f"| {name} | {row['us_per_tick']:.1f} | {row['ticks_per_s']:,.0f} | {row['realtime_ratio']:.1f} | "
              f"{row['core_fraction_at_target'] * 100:.1f}% |")
    sc = scenario
    print(f"\nscenario: {sc['npcs']} NPCs, {sc['game_seconds']:.0f} game s, {sc['decisions']} decisions, "
          f"{sc['interactions']} interactions, {sc['escalations']} escalations "
          f"({sc['escalation_rate_per_interaction'] * 100:.1f}% of interactions, "
          f"{sc['escalations_per_npc_hour']:.0f} per NPC-hour), {sc['escalations_denied_budget']} refused by budget; "
          f"cost ${sc['cost_usd_per_npc_hour']:.4f} per NPC-hour at {sc['priced_as']} prices "
          f"(${sc['price_per_escalation_usd']:.6f} per escalation); triggers {sc['escalation_triggers']}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
