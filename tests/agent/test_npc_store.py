"""Registered NPCs survive a restart: AgentRuntime writes them through NpcStore and restore_npcs() reads them back."""

from __future__ import annotations

import pytest

from npc_runtime.agent.brain import AgentRuntime
from npc_runtime.agent.config import AgentConfig
from npc_runtime.agent.fsm_loader import load_builtin_fsm, parse_fsm
from npc_runtime.agent.memory import MemoryStore
from npc_runtime.agent.npc_store import NpcStore
from npc_runtime.agent.types import Percept, Persona
from npc_runtime.errors import NotFound

CUSTOM_FSM = """
name: sentry
initial: calm
states:
  calm:
    allowed: [idle, talk]
    default: idle
    transitions:
      - to: alert
        when: player_hostility > 0.5
  alert:
    allowed: [warn, idle]
    default: warn
"""


def runtime(db: str) -> AgentRuntime:
    return AgentRuntime(config=AgentConfig(memory_db=db), memory=MemoryStore(db), npc_store=NpcStore(db))


def test_npcs_come_back_in_their_state(db_location):
    db = db_location
    rt = runtime(db)
    rt.register("guard-01", Persona("Bram", "guard", ("stern",), "Old soldier."), load_builtin_fsm("guard"))
    rt.register("sentry-01", Persona("Ada", "guard"), parse_fsm(CUSTOM_FSM, source_name="sentry.yaml"))
    rt.register("gone", Persona("X", "villager"), load_builtin_fsm("villager"))
    rt.unregister("gone")
    d = rt.step("sentry-01", Percept(game_time_s=3.0, values={"player_hostility": 0.9}))
    assert d.state == "alert"
    rt.close()

    again = runtime(db)
    restored, problems = again.restore_npcs()
    assert (restored, problems) == (2, [])
    assert again.get("sentry-01").fsm.state == "alert"
    assert again.get("sentry-01").fsm.definition.name == "sentry"
    assert again.get("guard-01").persona.backstory == "Old soldier."
    assert again.get("guard-01").fsm.definition is load_builtin_fsm("guard")   # built-ins reload by name
    assert len(again) == 2
    again.close()


def test_a_row_that_cannot_be_rebuilt_is_reported_not_fatal(db_location):
    db = db_location
    store = NpcStore(db)
    store.save("ok", Persona("A", "guard"), load_builtin_fsm("guard"), state="patrol", entered_s=0.0)
    store._db.execute("INSERT INTO npcs VALUES ('bad', '{}', 'x.yaml', 'not: [an fsm', 's', 0, 0)")
    npcs, problems = store.load_all()
    assert [n.npc_id for n in npcs] == ["ok"]
    assert len(problems) == 1 and "'bad' not restored" in problems[0]
    store.close()


def test_a_replica_serves_an_npc_another_replica_registered(db_location):
    """Two servers sharing one database (a fleet on PostgreSQL; SQLite too): B steps, then unregisters, an NPC
    that only A registered; B loads it from the store in the state A left it in."""
    a, b = runtime(db_location), runtime(db_location)
    a.register("sentry-01", Persona("Ada", "guard"), parse_fsm(CUSTOM_FSM, source_name="sentry.yaml"))
    assert a.step("sentry-01", Percept(game_time_s=1.0, values={"player_hostility": 0.9})).state == "alert"
    d = b.step("sentry-01", Percept(game_time_s=2.0, values={"player_hostility": 0.9}))
    assert d.state == "alert" and d.action in ("warn", "idle")
    b.unregister("sentry-01")
    fresh = runtime(db_location)
    with pytest.raises(NotFound):
        fresh.step("sentry-01", Percept(game_time_s=3.0))
    for rt in (a, b, fresh):
        rt.close()
