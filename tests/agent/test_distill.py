"""npcrt distill: records filtering (hostile teachers), the written package, determinism, the gate."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from npc_runtime.agent.distill import DistillConfig, GateRefused, distill_records
from npc_runtime.agent.distill.records import RecordLog, accepted, read_records
from npc_runtime.agent.policy_model import OnnxPolicyModel

FAST = DistillConfig(steps=200)


def _records(n: int, *, seed: int = 1, teacher=None) -> list[dict]:
    from npc_export.builtin.policy_rules import ACTIONS, random_observation, rule_action
    from npc_runtime.agent.providers.rules_provider import teacher_action

    rng = random.Random(seed)
    rows = []
    for i in range(n):
        obs = random_observation(rng)
        # the rule's own action is allowed (as in most FSM states): a teacher consistent with the base data
        allowed = sorted(set(rng.sample(ACTIONS, rng.randint(2, 5))) | {rule_action(obs)}, key=ACTIONS.index)
        rows.append({"observation": obs, "allowed": allowed, "outcome": "ok",
                     "teacher_action": teacher or teacher_action(obs, allowed), "local_action": allowed[0],
                     "wall_time_unix": 1.8e9 + i})
    return rows


def test_forbidden_and_failed_teacher_answers_never_train():
    rows = _records(20)
    rows[0]["teacher_action"] = "attack"; rows[0]["allowed"] = ["idle", "greet"]       # forbidden in its state
    rows[1]["teacher_action"] = "launch_missiles"; rows[1]["allowed"] = ["launch_missiles", "idle"]  # unknown
    rows[2]["outcome"] = "rejected"
    rows[3]["observation"] = {"player_distance": float("nan")}
    kept, skipped = accepted(rows)
    assert len(kept) == 16
    assert skipped["teacher action outside the allowed actions"] == 2
    assert all(e.teacher in e.allowed for e in kept)


def test_student_trained_on_forbidden_labels_never_executes_them(tmp_path):
    """Even a student whose labels were forced to a forbidden action proposes only allowed ones."""
    rows = _records(60, teacher="attack")
    for r in rows:
        r["allowed"] = sorted(set(r["allowed"]) | {"attack"})
    lax = DistillConfig(steps=200, gate_margin=1.0)     # the gate is not what this test is about
    distill_records(rows, "builtin:npc-policy", tmp_path / "pkg", config=lax, progress=False)
    policy = OnnxPolicyModel(tmp_path / "pkg")
    without = [tuple(a for a in r["allowed"] if a != "attack") or ("idle",) for r in rows]
    proposals = policy.propose_batch([r["observation"] for r in rows], without)
    assert all(p.action in allowed for p, allowed in zip(proposals, without))


def test_package_lineage_report_and_determinism(tmp_path):
    rows = _records(80)
    a = distill_records(rows, "builtin:npc-policy", tmp_path / "a", config=FAST, progress=False)
    b = distill_records(rows, "builtin:npc-policy", tmp_path / "b", config=FAST, progress=False)
    assert (tmp_path / "a" / "model.onnx").read_bytes() == (tmp_path / "b" / "model.onnx").read_bytes()
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert manifest["kind"] == "policy" and manifest["validation"]["passed"]
    lineage = manifest["lineage"]
    assert lineage["base_version"] == "npc-policy" and lineage["records"] == 80 and lineage["generation"] == 1
    assert lineage["time_range_unix"] == [1.8e9, 1.8e9 + 79]
    report = a.report
    assert report["heldout_escalations"] > 0 and report["student"]["agreement_with_teacher"] is not None
    assert 0 <= report["student"]["base_heldout_ece"] < 0.5
    # the next generation chains its lineage to the same root
    c = distill_records(rows, str(tmp_path / "a"), tmp_path / "c", config=FAST, progress=False)
    assert c.manifest["lineage"]["generation"] == 2 and c.manifest["lineage"]["root_version"] == "npc-policy"
    assert c.version == "npc-policy-d2"


def test_gate_refuses_a_student_that_forgets(tmp_path):
    """All batch rows from escalations with absurd labels, a huge learning rate: the base skills go; refused."""
    rows = _records(80, teacher=None)
    for r in rows:
        r["allowed"] = ["idle", "attack"]; r["teacher_action"] = "attack"
    bad = DistillConfig(steps=300, escalation_share=0.99, learning_rate=3e-2, gate_margin=0.01)
    with pytest.raises(GateRefused, match="loses"):
        distill_records(rows, "builtin:npc-policy", tmp_path / "bad", config=bad, progress=False)
    assert not (tmp_path / "bad").exists()


def test_cli_exit_codes(tmp_path, capsys):
    from npc_runtime.cli import main

    log = RecordLog(tmp_path / "rec")
    for r in _records(30):
        log.append(r)
    assert main(["distill", "--records", str(tmp_path / "rec"), "--out", str(tmp_path / "p"), "--steps", "50",
                 "--quiet"]) == 0
    assert (tmp_path / "p" / "manifest.json").is_file()
    assert main(["distill", "--records", str(tmp_path / "nope"), "--out", str(tmp_path / "q")]) == 2
    assert "no such file or directory" in capsys.readouterr().err
    empty = tmp_path / "empty.jsonl"
    empty.write_text('{"outcome": "rejected"}\nnot json\n')
    assert main(["distill", "--records", str(empty), "--out", str(tmp_path / "r"), "--quiet"]) == 2
    rows, problems = read_records(str(empty))
    assert len(rows) == 1 and "not JSON" in problems[0]


def test_numpy_graph_matches_onnx_runtime():
    from npc_runtime.agent.distill.onnx_io import policy_onnx, read_policy_weights
    from npc_runtime.agent.distill.package import parity
    from npc_runtime.builtin_packages import locate

    w = read_policy_weights((locate("npc-policy") / "model.onnx").read_bytes())
    probes = np.random.default_rng(0).uniform(-5, 40, (128, w.num_features)).astype(np.float32)
    check = parity(policy_onnx(w), w, probes)
    assert check["passed"] and check["action_agreement"] == 1.0
