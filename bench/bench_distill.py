"""Distillation loop, measured: does the on-device policy need its teacher less, day after day?

    python -m bench.bench_distill [--days 5] [--day-seconds 240] [--speed 8] [--moments 600]

Two parts, one result file (bench/results/distill.json):

1. scenario: `npcrt demo --days N` itself (the built-in village, the real server, the `rules` teacher), each
   day `--day-seconds` of game time played at `--speed` game seconds per wall second, so a day holds a few
   hundred interactions and the held-out split is not empty. Per day: interactions, escalations by trigger
   class (policy-driven = low_confidence + low_margin, novelty, story_critical), the distilled student's
   held-out agreement with the teacher, base held-out accuracy, distillation seconds.
2. simulation: the policy alone on `--moments` random game moments a day (the built-in policy's generator,
   a random state of a random role's FSM): the escalation manager's policy-driven trigger decides, escalated
   moments go to the `rules` teacher, and the next day plays with the student distilled from every record so
   far. Random moments reach the rule's boundaries the scripted village rarely visits: the harder test of
   agreement on held-out escalations.

Plus a forbidden-action check (a student distilled from a hostile teacher's forbidden labels never executes
them). `summary.targets` holds each target of issue 12 with the measured figure and whether it is met.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

from bench.common import finish_metadata, result_metadata

RESULTS = Path(__file__).resolve().parent / "results" / "distill.json"
ROLES = ("guard", "merchant", "villager")


def _states():
    from npc_runtime.agent.fsm_loader import load_builtin_fsm

    return {role: [s.allowed for s in load_builtin_fsm(role).states.values()] for role in ROLES}


def _moments(rng: random.Random, count: int, states) -> list[tuple[dict, tuple[str, ...]]]:
    from npc_export.builtin.policy_rules import random_observation

    out = []
    for _ in range(count):
        obs = random_observation(rng)
        role = next(r for r in ROLES if obs[f"npc_is_{r}"] > 0.5)
        out.append((obs, rng.choice(states[role])))
    return out


def play_day(policy, moments, escalation, version: str, day: int) -> list[dict]:
    """The day's escalations as agent records (brain.py's format)."""
    from npc_runtime.agent.providers.rules_provider import teacher_action

    proposals = policy.propose_batch([m[0] for m in moments], [m[1] for m in moments])
    records = []
    for i, ((obs, allowed), p) in enumerate(zip(moments, proposals)):
        trigger = escalation.trigger(confidence=p.confidence, margin=p.margin, novelty_similarity=None,
                                     story_critical=False)
        if trigger is None:
            continue
        teacher = teacher_action(obs, allowed)
        records.append({"observation": obs, "allowed": list(allowed), "local_action": p.action,
                        "local_confidence": p.confidence, "policy_version": version, "trigger": trigger,
                        "outcome": "ok", "teacher_action": teacher, "executed": teacher,
                        "wall_time_unix": 1.8e9 + day * 86400 + i, "npc_id": f"npc-{i % 50}"})
    return records


def forbidden_check(base: str, work: Path) -> dict:
    """Records from a hostile teacher that always answers `attack`, forbidden in the state: none may train
    (accepted() drops them). A student trained on them anyway (labels forced in) still never executes it."""
    from npc_runtime.agent.distill.records import accepted
    from npc_runtime.agent.policy_model import OnnxPolicyModel

    rng = random.Random(7)
    states = _states()
    rows = []
    for obs, allowed in _moments(rng, 200, states):
        allowed = tuple(a for a in allowed if a != "attack") or ("idle",)
        rows.append({"observation": obs, "allowed": list(allowed), "outcome": "ok", "teacher_action": "attack"})
    kept, skipped = accepted(rows)
    policy = OnnxPolicyModel(base)
    executed = [p.action for p in policy.propose_batch([r["observation"] for r in rows],
                                                       [tuple(r["allowed"]) for r in rows])]
    return {"hostile_records": len(rows), "accepted": len(kept), "left_out": skipped,
            "forbidden_executed": sum(1 for a, r in zip(executed, rows) if a not in r["allowed"])}


def run_scenario(args, work: Path) -> list[dict]:
    """`npcrt demo --days N` in this process (the same Demo object the CLI runs); its `days` rows."""
    from npc_runtime.demo.cli_demo import Demo, add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    demo_args = parser.parse_args(["--days", str(args.days), "--seconds", str(args.day_seconds), "--speed",
                                   str(args.speed), "--fps", str(args.fps), "--npcs", str(args.npcs), "--no-live",
                                   "--out", str(work / "demo")])
    demo = Demo(demo_args)
    try:
        summary = demo.run()
    finally:
        demo.close()
    if summary.get("error_count"):
        print(f"scenario errors: {summary['errors'][:3]}", file=sys.stderr)
    # every decision passed the runtime's allowlist check (brain._check_allowed: a forbidden action would be
    # an InternalError answered as an NPC error, counted here), not only the escalated ones
    return [{**d, "wall_seconds_played": summary["seconds"], "run_errors": summary["error_count"],
             "run_decisions": summary["decisions"]} for d in summary["days"]]


def run_simulation(args, work: Path) -> tuple[list[dict], str]:
    from npc_runtime.agent.distill import distill_records
    from npc_runtime.agent.escalation import EscalationConfig, EscalationManager
    from npc_runtime.agent.policy_model import OnnxPolicyModel
    from npc_runtime.agent.providers.rules_provider import RulesProvider
    from npc_runtime.builtin_packages import locate

    escalation = EscalationManager(RulesProvider(), config=EscalationConfig())
    states = _states()
    rng = random.Random(0)
    days, current, version, seen = [], str(locate("npc-policy")), "base", []
    try:
        for day in range(1, args.days + 1):
            moments = _moments(rng, args.moments, states)
            records = play_day(OnnxPolicyModel(current), moments, escalation, version, day)
            seen.extend(records)     # every day trains on all the records so far, as the demo's DayLoop
            t0 = time.perf_counter()
            result = distill_records(seen, current, work / f"sim-day-{day}", version=f"day-{day}", force=True,
                                     progress=False)
            seconds = time.perf_counter() - t0
            s, b = result.report["student"], result.report["base"]
            days.append({"day": day, "moments": len(moments), "escalations": len(records),
                         "escalation_rate": round(len(records) / len(moments), 4), "policy_version": version,
                         "distilled": result.version, "distill_seconds": round(seconds, 2),
                         "records": result.report["accepted"],
                         "heldout_escalations": result.report["heldout_escalations"],
                         "agreement_with_teacher_student": s["agreement_with_teacher"],
                         "agreement_with_teacher_before": b["agreement_with_teacher"],
                         "base_heldout_accuracy_student": s["base_heldout_accuracy_clean_rule"],
                         "base_heldout_ece_student": s["base_heldout_ece"],
                         "escalation_ece_student": s["escalation_ece"]})
            print(f"simulation day {day}: {len(records):4d}/{len(moments)} escalated "
                  f"({len(records) / len(moments) * 100:5.1f} %) with {version:6s}; distilled {result.version} from "
                  f"{result.report['accepted']} records in {seconds:5.1f} s: held-out agreement "
                  f"{b['agreement_with_teacher']} -> {s['agreement_with_teacher']} "
                  f"(n={result.report['heldout_escalations']}), base accuracy {s['base_heldout_accuracy_clean_rule']}",
                  flush=True)
            current, version = str(work / f"sim-day-{day}"), f"day-{day}"
    finally:
        escalation.close()
    return days, current


def _ratio(last: float, first: float) -> float | None:
    return round(last / first, 3) if first > 0 else None


def targets(scenario: list[dict], simulation: list[dict], base_acc: float, safety: dict) -> dict:
    """Issue 12's targets against the figures (scenario = the demo's built-in village, the headline)."""
    first, last = scenario[0], scenario[-1]
    dist = [d["distilled"] for d in scenario if d.get("distilled", {}).get("version")]
    final = dist[-1] if dist else {}
    policy_ratio = _ratio(last["policy_escalation_rate"], first["policy_escalation_rate"])
    overall_ratio = _ratio(last["escalation_rate"], first["escalation_rate"])
    accuracy = final.get("base_heldout_accuracy")
    agreement = final.get("agreement_with_teacher")
    sim_agreement = simulation[-1]["agreement_with_teacher_student"] if simulation else None
    sim_ratio = _ratio(simulation[-1]["escalation_rate"], simulation[0]["escalation_rate"]) if simulation else None
    forbidden = sum(d["forbidden_actions"] for d in scenario) + safety["forbidden_executed"]
    errors = scenario[-1].get("run_errors", 0)
    seconds = max([d["seconds"] for d in dist] + [d["distill_seconds"] for d in simulation] or [0.0])
    return {
        "policy_escalation_rate_ratio": {"value": policy_ratio, "target": "<= 0.5",
                                         "met": policy_ratio is not None and policy_ratio <= 0.5},
        "overall_escalation_rate_ratio": {"value": overall_ratio, "target": "<= 0.5",
                                          "met": overall_ratio is not None and overall_ratio <= 0.5},
        "simulation_escalation_rate_ratio": {"value": sim_ratio, "target": "<= 0.5",
                                             "met": sim_ratio is not None and sim_ratio <= 0.5},
        "heldout_agreement_scenario": {"value": agreement, "n": final.get("heldout_escalations"), "target": ">= 0.9",
                                       "met": agreement is not None and agreement >= 0.9},
        "heldout_agreement_simulation": {"value": sim_agreement,
                                         "n": simulation[-1]["heldout_escalations"] if simulation else None,
                                         "target": ">= 0.9", "met": sim_agreement is not None and sim_agreement >= 0.9},
        "base_heldout_accuracy_delta_points": {
            "value": None if accuracy is None else round((accuracy - base_acc) * 100, 2), "target": ">= -1",
            "met": accuracy is not None and accuracy - base_acc >= -0.01},
        "forbidden_actions_executed": {"value": forbidden, "target": "0", "met": forbidden == 0},
        "decisions_refused_by_the_allowlist_check": {"value": errors, "of": scenario[-1].get("run_decisions"),
                                                     "target": "0", "met": errors == 0},
        "max_distill_seconds": {"value": seconds, "target": "< 60", "met": seconds < 60},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=5)
    parser.add_argument("--day-seconds", type=float, default=240.0, help="game seconds per scenario day")
    parser.add_argument("--speed", type=float, default=8.0, help="game seconds per wall second (scenario)")
    parser.add_argument("--fps", type=int, default=15, help="scenario frames per game second")
    parser.add_argument("--npcs", type=int, default=8, help="scenario NPCs")
    parser.add_argument("--moments", type=int, default=600, help="simulation: game moments per day")
    parser.add_argument("--skip-scenario", action="store_true", help="the simulation only (seconds, not minutes)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    meta = result_metadata(argv)

    from npc_runtime.builtin_packages import locate

    base = str(locate("npc-policy"))
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-distill-") as tmp:
        scenario = [] if args.skip_scenario else run_scenario(args, Path(tmp))
        scenario_seconds = round(time.perf_counter() - started, 1)
        simulation, final = run_simulation(args, Path(tmp))
        safety = forbidden_check(final, Path(tmp))
    base_acc = float(json.loads((Path(base) / "policy.json").read_text())["training"]["heldout_accuracy_clean_rule"])
    summary = {"base_model_heldout_accuracy": base_acc, "scenario_wall_seconds": scenario_seconds,
               "total_wall_seconds": round(time.perf_counter() - started, 1),
               "settings": {k: getattr(args, k) for k in ("days", "day_seconds", "speed", "fps", "npcs", "moments")}}
    if scenario:
        summary["targets"] = targets(scenario, simulation, base_acc, safety)
    print(json.dumps(summary, indent=1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(finish_metadata({**meta, "scenario": scenario, "simulation": simulation,
                                                    "summary": summary, "safety": safety}), indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
