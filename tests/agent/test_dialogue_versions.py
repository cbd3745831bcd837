"""Dialogue packages side by side ([agent] dialogue_versions): NPCs routed to a version speak with that
version's served model, the others with the default one; a model that is not served is refused at start."""

from __future__ import annotations

import json
import shutil

import pytest

from npc_runtime.agent.types import Event, Percept, Persona
from npc_runtime.agent.fsm_loader import load_builtin_fsm
from npc_runtime.assembly import build_system
from npc_runtime.builtin_packages import locate
from npc_runtime.errors import InvalidArgument
from npc_runtime.settings import load_settings


def _second_package(tmp_path):
    copy = tmp_path / "npc-dialogue-b"
    shutil.copytree(locate("npc-dialogue"), copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["name"] = "npc-dialogue-b"
    (copy / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return copy


def _system(tmp_path, **agent):
    flags = {"server.data_dir@": str(tmp_path / "data"), "server.snapshot_store@": "off",
             "server.models@": (str(locate("npc-dialogue")), str(_second_package(tmp_path)))}
    flags.update({f"agent.{k}@": v for k, v in agent.items()})
    return build_system(load_settings(None, env={}, flags=flags))


def test_npcs_speak_with_their_versions_model(tmp_path):
    system = _system(tmp_path, dialogue_versions={"b": "npc-dialogue-b"},
                     policy_routing=[{"version": "b", "match": "b-*"}])
    try:
        runtime = system.agent
        assert runtime.policies.route("b-1").dialogue.model == "npc-dialogue-b"
        assert runtime.policies.route("a-1").dialogue is None          # the runtime's default model
        for npc_id in ("a-1", "b-1"):
            runtime.register(npc_id, Persona("Mara", "merchant"), load_builtin_fsm("merchant"))
            d = runtime.step(npc_id, Percept(game_time_s=1.0, player_utterance="How much for the bread?"),
                             [Event("speech", "The player asks about bread.")], deadline_ms=5000)
            assert d.action in d.allowed_actions and d.policy_version == ("b" if npc_id == "b-1" else "base")
    finally:
        system.close()


def test_a_dialogue_version_must_name_a_served_model(tmp_path):
    with pytest.raises(InvalidArgument, match="not served"):
        _system(tmp_path, dialogue_versions={"b": "no-such-model"})
