"""Distillation loop, measured: does the on-device policy need its teacher less, day after day?

    python -m bench.bench_distill [--days 5] [--moments 600]

Each simulated day, NPCs of the three built-in FSMs (guard, merchant, villager) meet `--moments` game
moments drawn from the built-in policy's generator, each in a random state of the NPC's FSM. The runtime's
own code decides: the policy package (OnnxPolicyModel) proposes over the state's allowed actions and the
escalation manager's trigger (confidence < 0.45 or margin < 0.10, the [escalation] defaults) says whether
the moment escalates. Escalated moments go to the `rules` teacher (the offline provider of the demo),
become records in the format the agent writes, and at the end of the day `distill_records` trains the next
version from the current one, which the next day plays with. Only the policy-driven triggers are
simulated (novelty and story-critical events escalate whatever the policy knows; see docs/agent.md).

Writes bench/results/distill.json: per day the escalation rate, the student's held-out agreement with the
teacher, base held-out accuracy (vs the built-in model), ECE, distillation seconds; plus a forbidden-action
check (a student distilled from a hostile teacher's forbidden labels never executes them).
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=5)
    parser.add_argument("--moments", type=int, default=600, help="game moments per day")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    meta = result_metadata(argv)

    from npc_runtime.agent.distill import distill_records
    from npc_runtime.agent.escalation import EscalationConfig, EscalationManager
    from npc_runtime.agent.policy_model import OnnxPolicyModel
    from npc_runtime.agent.providers.rules_provider import RulesProvider
    from npc_runtime.builtin_packages import locate

    base = str(locate("npc-policy"))
    escalation = EscalationManager(RulesProvider(), config=EscalationConfig())
    states = _states()
    rng = random.Random(0)
    days, current, version = [], base, "base"
    with tempfile.TemporaryDirectory(prefix="bench-distill-") as tmp:
        for day in range(1, args.days + 1):
            moments = _moments(rng, args.moments, states)
            records = play_day(OnnxPolicyModel(current), moments, escalation, version, day)
            t0 = time.perf_counter()
            result = distill_records(records, current, Path(tmp) / f"day-{day}", version=f"day-{day}",
                                     force=True, progress=False)
            seconds = time.perf_counter() - t0
            s, b = result.report["student"], result.report["base"]
            days.append({"day": day, "moments": len(moments), "escalations": len(records),
                         "escalation_rate": round(len(records) / len(moments), 4), "policy_version": version,
                         "distilled": result.version, "distill_seconds": round(seconds, 2),
                         "heldout_escalations": result.report["heldout_escalations"],
                         "agreement_with_teacher_student": s["agreement_with_teacher"],
                         "agreement_with_teacher_before": b["agreement_with_teacher"],
                         "base_heldout_accuracy_student": s["base_heldout_accuracy_clean_rule"],
                         "base_heldout_ece_student": s["base_heldout_ece"],
                         "escalation_ece_student": s["escalation_ece"]})
            print(f"day {day}: {len(records):4d}/{len(moments)} escalated ({len(records) / len(moments) * 100:5.1f} %) "
                  f"with {version:6s}; distilled {result.version} in {seconds:5.1f} s: held-out agreement "
                  f"{b['agreement_with_teacher']} -> {s['agreement_with_teacher']}, base accuracy "
                  f"{s['base_heldout_accuracy_clean_rule']}", flush=True)
            current, version = str(Path(tmp) / f"day-{day}"), f"day-{day}"
        safety = forbidden_check(current, Path(tmp))
    escalation.close()
    base_acc = float(json.loads((Path(base) / "policy.json").read_text())["training"]["heldout_accuracy_clean_rule"])
    summary = {
        "escalation_rate_day1": days[0]["escalation_rate"], "escalation_rate_last": days[-1]["escalation_rate"],
        "escalation_rate_ratio": round(days[-1]["escalation_rate"] / max(days[0]["escalation_rate"], 1e-9), 3),
        "base_model_heldout_accuracy": base_acc,
        "last_heldout_accuracy": days[-1]["base_heldout_accuracy_student"],
        "min_agreement_with_teacher": min(d["agreement_with_teacher_student"] or 0 for d in days),
        "max_distill_seconds": max(d["distill_seconds"] for d in days),
        "forbidden_executed": safety["forbidden_executed"],
    }
    print(json.dumps(summary, indent=1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(finish_metadata({**meta, "days": days, "summary": summary, "safety": safety}),
                                   indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
