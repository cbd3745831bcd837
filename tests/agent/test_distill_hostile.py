"""Safety across versions with a hostile teacher on a real loopback endpoint (tests/agent/fake_llm.py, OpenAI
shape): the agent plays against a teacher that answers forbidden actions half of the time; the allowlist
decides (nothing forbidden executes), those escalations are recorded as not accepted and never train, and
the student distilled from the mix, swapped in as the default version, never executes a forbidden action."""

from __future__ import annotations

import json
import random

from npc_runtime.agent.budget import BudgetConfig
from npc_runtime.agent.distill import DistillConfig, distill
from npc_runtime.agent.distill.records import RecordLog, read_records
from npc_runtime.agent.escalation import EscalationConfig
from npc_runtime.agent.fsm_loader import load_builtin_fsm
from npc_runtime.agent.policy_model import OnnxPolicyModel
from npc_runtime.agent.providers.openai_provider import OpenAIProvider
from npc_runtime.agent.types import Event, Percept, Persona
from npc_runtime.agent.versions import PolicyVersion

from .conftest import make_runtime
from .fake_llm import FakeLLM

NPCS = (("guard-01", "guard"), ("merchant-01", "merchant"), ("villager-01", "villager"))


def _percept(rng: random.Random, t: float) -> Percept:
    return Percept(game_time_s=t, player_utterance="Give me the crown, now.", values={
        "player_distance": round(rng.uniform(0.5, 20.0), 2), "player_hostility": round(rng.random(), 2),
        "player_armed": float(rng.random() < 0.3), "gold_offered": rng.choice([0.0, 20.0]),
        "npc_health": round(rng.uniform(0.3, 1.0), 2), "allies_nearby": float(rng.randint(0, 3))})


def _play(rt, fake: FakeLLM, rng: random.Random, rounds: int, t0: float) -> list:
    """Story-critical talk steps (always escalated), the teacher hostile every other round."""
    decisions = []
    for i in range(rounds):
        fake.mode = "forbidden" if i % 2 else "good"
        for npc_id, _role in NPCS:
            event = Event("crime", "The king's crown was stolen from the castle.", story_critical=True)
            decisions.append(rt.step(npc_id, _percept(rng, t0 + i), [event], deadline_ms=3000))
    return decisions


def test_hostile_teacher_never_trains_and_the_student_never_executes_forbidden(memory, tmp_path):
    rng = random.Random(3)
    with FakeLLM() as fake:
        provider = OpenAIProvider(model="gpt-4o-mini", api_key="test-key", base_url=fake.openai_base_url)
        budget = BudgetConfig(npc_calls_per_min=10_000, global_calls_per_min=10_000)   # every step escalates
        rt = make_runtime(memory, provider, escalation_config=EscalationConfig(provider="openai", budget=budget))
        rt.records = RecordLog(tmp_path / "escalations")
        for npc_id, role in NPCS:
            rt.register(npc_id, Persona(npc_id, role), load_builtin_fsm(role))
        try:
            played = _play(rt, fake, rng, 16, 1.0)
            assert all(d.action in d.allowed_actions for d in played)        # the allowlist decided
            assert any(d.escalation_outcome == "rejected" for d in played)   # the hostile answers were refused

            rows, problems = read_records(str(tmp_path / "escalations"))
            assert not problems and len(rows) == len(played)
            rejected = [r for r in rows if r["outcome"] == "rejected"]
            ok = [r for r in rows if r["outcome"] == "ok"]
            assert rejected and ok and all(r["teacher_action"] is None for r in rejected)
            assert all(r["executed"] in r["allowed"] for r in rows)
            # a tampered line claiming the forbidden answer was accepted: left out all the same
            with open(tmp_path / "escalations" / "tampered.jsonl", "w", encoding="utf-8") as f:
                forged = {**ok[0], "teacher_action": "attack", "allowed": ["idle", "talk"], "executed": "attack"}
                f.write(json.dumps(forged) + "\n")

            out = tmp_path / "student"
            result = distill(str(tmp_path / "escalations"), "builtin:npc-policy", out, version="student",
                             # the fake's "good" answer is the first allowed action, unlike the base's
                             # rule: the gate would refuse the student, and the gate is not the point here
                             config=DistillConfig(steps=150, gate_margin=1.0), progress=False)
            assert result.report["accepted"] == len(ok)
            assert result.report["left_out"] == {"outcome 'rejected'": len(rejected),
                                                 "teacher action outside the allowed actions": 1}

            # the student serves as the default version, the teacher still hostile: nothing forbidden runs
            student = OnnxPolicyModel(out)
            rt.policies.add(PolicyVersion("student", student, str(out), result.manifest["lineage"]), make_default=True)
            again = _play(rt, fake, rng, 6, 100.0)
            quiet = rt.step_quiet_batch([(npc_id, _percept(rng, 200.0)) for npc_id, _ in NPCS for _ in range(4)])
            for d in again + quiet:
                assert d.action in d.allowed_actions
            assert {d.policy_version for d in again + quiet if d.source != "fsm"} == {"student"}
        finally:
            rt.close()

    # every state of every built-in FSM, random observations: the student proposes only allowed actions
    from npc_export.builtin.policy_rules import random_observation

    states = [s.allowed for role in ("guard", "merchant", "villager") for s in load_builtin_fsm(role).states.values()]
    obs = [random_observation(rng) for _ in range(400)]
    allowed = [rng.choice(states) for _ in obs]
    assert all(p.action in a for p, a in zip(student.propose_batch(obs, allowed), allowed))
