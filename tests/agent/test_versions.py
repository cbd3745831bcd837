"""Policy versions side by side: routing by rule and sticky fraction, atomic swaps, per-version stats."""

from __future__ import annotations

import pytest

from npc_runtime.agent.policy_model import UniformPolicy
from npc_runtime.agent.versions import PolicyVersion, PolicyVersions, RoutingRule, bucket, parse_rules
from npc_runtime.errors import InvalidArgument


def _versions(**rules):
    vs = {n: PolicyVersion(n, UniformPolicy()) for n in ("base", "v2", "guards")}
    return PolicyVersions(vs, default="base", rules=rules.get("rules", ()))


def test_rule_then_fraction_then_default():
    v = _versions(rules=(RoutingRule(version="guards", match="guard-*"), RoutingRule(version="v2", fraction=0.3)))
    assert v.route("guard-01").name == "guards"
    ids = [f"villager-{i}" for i in range(2000)]
    share = sum(v.route(i).name == "v2" for i in ids) / len(ids)
    assert 0.25 < share < 0.35
    # sticky: same answer every time, and growing the fraction only moves NPCs onto v2
    before = {i for i in ids if v.route(i).name == "v2"}
    v.install({x.name: x for x in v.all()}, default="base", rules=(RoutingRule(version="v2", fraction=0.6),))
    after = {i for i in ids if v.route(i).name == "v2"}
    assert before <= after
    assert all(bucket(i) == bucket(i) for i in ids[:10])


def test_bad_configuration_is_refused_and_keeps_the_running_versions():
    v = _versions()
    generation = v.generation
    with pytest.raises(InvalidArgument, match="not loaded"):
        v.install({"base": v.get("base")}, default="missing")
    with pytest.raises(InvalidArgument, match="not loaded"):
        v.install({"base": v.get("base")}, default="base", rules=(RoutingRule(version="nope"),))
    assert v.generation == generation and v.default.name == "base"
    with pytest.raises(InvalidArgument, match="fraction"):
        parse_rules([{"version": "v2", "fraction": 2}])
    with pytest.raises(InvalidArgument, match="unknown keys"):
        parse_rules([{"version": "v2", "weight": 1}])


def test_add_swaps_the_default_and_the_brain_reports_versions():
    from npc_runtime.agent.brain import AgentRuntime
    from npc_runtime.agent.config import AgentConfig
    from npc_runtime.agent.fsm_loader import load_builtin_fsm
    from npc_runtime.agent.types import Percept, Persona

    rt = AgentRuntime(config=AgentConfig(memory_db=":memory:"))
    rt.register("guard-01", Persona(name="Bram", role="guard"), load_builtin_fsm("guard"))
    d1 = rt.step_quiet_batch([("guard-01", Percept(values={"player_distance": 30.0}))])[0]
    rt.policies.add(PolicyVersion("day-1", UniformPolicy()), make_default=True)
    d2 = rt.step("guard-01", Percept(values={"player_distance": 30.0}, game_time_s=1.0))
    assert (d1.policy_version, d2.policy_version) == ("base", "day-1")
    assert rt.stats.versions["base"].decisions == 1 and rt.stats.versions["day-1"].decisions == 1
    rt.close()
