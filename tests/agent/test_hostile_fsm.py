"""Hostile FSM files and guards (RegisterNpc.fsm_yaml comes from players' and modders' hands): refused with
INVALID_ARGUMENT naming file:line before anything is expanded or recursed into."""

from __future__ import annotations

import math

import pytest

from npc_proto.v1 import agent_pb2 as pb
from npc_runtime.agent.expressions import compile_guard
from npc_runtime.agent.fsm_loader import FsmLimits, parse_fsm
from npc_runtime.errors import InvalidArgument
from npc_runtime.serving.agent_servicer import memories_from_pb, step_from_pb
from tests.hostile.fuzz_cases import GOOD_FSM, yaml_bomb


def test_alias_bomb_is_refused_at_its_first_anchor():
    bomb = yaml_bomb(6, 10)
    assert len(bomb) < 450
    with pytest.raises(InvalidArgument, match=r"fsm_yaml\[x\]:1: anchors \(&a0\) are not allowed"):
        parse_fsm(bomb, source_name="fsm_yaml[x]")


@pytest.mark.parametrize("text, message", [
    ("name: a\nstates: *s\n", "aliases"),
    ("a: " + "[" * 5000, "nested deeper than 32 levels"),
    ("? [a, b]\n: c\n", "keys must be plain strings"),
    ("1: a\n", "keys must be plain strings"),
    ("name: a\nname: b\n", "duplicate key 'name'"),
    ("x: !!python/object/apply:os.system ['true']\n", "is not allowed"),
    ("x: !!int abc\n", "bad int value"),
    ("x: !!set {a, b}\n", "is not allowed"),
    ("name: \ud800\n", "not valid YAML"),
    ("a: 1\n---\nb: 2\n", "not valid YAML"),
])
def test_hostile_yaml_is_invalid_argument(text, message):
    with pytest.raises(InvalidArgument, match=message):
        parse_fsm(text)


def test_node_and_size_limits():
    many = "a: [" + ",".join(["1"] * 12_000) + "]\n"     # 24 KB, 12,000 nodes
    with pytest.raises(InvalidArgument, match="more than 10000 YAML nodes"):
        parse_fsm(many)
    with pytest.raises(InvalidArgument, match="bytes; at most 1000"):
        parse_fsm(GOOD_FSM * 3, limits=FsmLimits(max_bytes=1000))
    assert parse_fsm(GOOD_FSM).initial == "watch"


def test_reflex_in_must_name_states():
    with pytest.raises(InvalidArgument, match="'in' must be a state name or a list"):
        parse_fsm(GOOD_FSM.replace("  - in: [alarm]", "  - in: {alarm: 1}"))


@pytest.mark.parametrize("guard, message", [
    ("(" * 5000 + "said" + ")" * 5000, "at most 1000 characters"),
    ("not " * 40 + "said", "nested deeper than 32"),
    ("(" * 40 + "said" + ")" * 40, "nested deeper than 32"),
    ("x < " + "9" * 400, "too large"),
])
def test_hostile_guards(guard, message):
    with pytest.raises(InvalidArgument, match=message):
        compile_guard(guard)


def test_long_and_chains_evaluate_without_deep_recursion():
    guard = compile_guard(" and ".join(["said"] * 110))
    from npc_runtime.agent.expressions import GuardContext
    assert guard(GuardContext(said=True)) is True and guard(GuardContext(said=False)) is False


@pytest.mark.parametrize("mutate, field", [
    (lambda r: setattr(r.observation, "game_time_s", math.nan), "observation.game_time_s"),
    (lambda r: setattr(r.observation, "game_time_s", math.inf), "observation.game_time_s"),
    (lambda r: setattr(r, "deadline_ms", math.nan), "deadline_ms"),
    (lambda r: r.observation.values.update({"hp": math.nan}), "observation.values"),
    (lambda r: r.events.add(kind="hit", importance=math.nan), r"events\[0\].importance"),
    (lambda r: setattr(r, "npc_id", "x" * 10_000), "npc_id"),
    (lambda r: r.observation.tags.update({f"k{i}": "v" for i in range(300)}), "observation.tags"),
])
def test_step_translation_refuses_non_finite_and_oversized(mutate, field):
    request = pb.StepRequest(npc_id="guard-01", observation=pb.Observation(game_time_s=1.0))
    mutate(request)
    with pytest.raises(InvalidArgument, match=field):
        step_from_pb(request)


def test_seed_memory_importance_must_be_finite():
    with pytest.raises(InvalidArgument, match=r"memories\[1\].importance"):
        memories_from_pb([pb.MemorySeed(text="a", importance=3), pb.MemorySeed(text="b", importance=math.inf)])
