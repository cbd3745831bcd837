"""Registered NPCs that survive a restart: persona, FSM (built-in name or YAML text) and FSM state, in the
same SQLite file as the memories (a table of its own, WAL).

`AgentRuntime` writes through it on register / unregister and when an NPC's FSM state changes;
`AgentRuntime.restore_npcs()` reads it back at start.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from npc_runtime.agent.fsm import FsmDefinition
from npc_runtime.agent.fsm_loader import BUILTIN_FSMS, load_builtin_fsm, parse_fsm
from npc_runtime.agent.memory import open_wal_database
from npc_runtime.agent.types import Persona
from npc_runtime.errors import InvalidArgument

_SCHEMA = """
CREATE TABLE IF NOT EXISTS npcs (
    npc_id TEXT PRIMARY KEY,
    persona_json TEXT NOT NULL,        -- {name, role, traits, backstory}
    fsm_source TEXT NOT NULL,          -- "fsms/guard.yaml" for a built-in, else the name it was parsed under
    fsm_yaml TEXT NOT NULL,            -- the definition text ('' for built-ins: they are reloaded by name)
    fsm_state TEXT NOT NULL,
    state_entered_s REAL NOT NULL,     -- game time the state was entered, seconds
    updated_unix REAL NOT NULL
);
"""


@dataclass(frozen=True)
class StoredNpc:
    npc_id: str
    persona: Persona
    fsm: FsmDefinition
    state: str
    state_entered_s: float


def _builtin_name(definition: FsmDefinition) -> str | None:
    for name in BUILTIN_FSMS:
        if definition.source == f"fsms/{name}.yaml":
            return name
    return None


class NpcStore:
    """Thread-safe (one connection, one lock)."""

    def __init__(self, path: str | Path):
        self.path = str(path)
        self._lock = threading.Lock()
        self._db = open_wal_database(self.path, _SCHEMA, what="the NPC registry in")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def save(self, npc_id: str, persona: Persona, fsm: FsmDefinition, *, state: str, entered_s: float) -> None:
        builtin = _builtin_name(fsm)
        persona_json = json.dumps({"name": persona.name, "role": persona.role, "traits": list(persona.traits),
                                   "backstory": persona.backstory})
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO npcs(npc_id, persona_json, fsm_source, fsm_yaml, fsm_state, state_entered_s, "
                "updated_unix) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (npc_id, persona_json, fsm.source, "" if builtin else fsm.text, state, entered_s, time.time()))

    def save_state(self, npc_id: str, state: str, entered_s: float) -> None:
        with self._lock:
            self._db.execute("UPDATE npcs SET fsm_state = ?, state_entered_s = ?, updated_unix = ? WHERE npc_id = ?",
                             (state, entered_s, time.time(), npc_id))

    def delete(self, npc_id: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM npcs WHERE npc_id = ?", (npc_id,))

    def load_all(self) -> tuple[list[StoredNpc], list[str]]:
        """Every stored NPC, and one line per row that could not be rebuilt (it is skipped, not deleted)."""
        with self._lock:
            rows = self._db.execute("SELECT npc_id, persona_json, fsm_source, fsm_yaml, fsm_state, state_entered_s "
                                    "FROM npcs ORDER BY npc_id").fetchall()
        npcs, problems = [], []
        for npc_id, persona_json, source, text, state, entered_s in rows:
            try:
                p = json.loads(persona_json)
                persona = Persona(name=p["name"], role=p["role"], traits=tuple(p["traits"]), backstory=p["backstory"])
                builtin = source.removeprefix("fsms/").removesuffix(".yaml")
                fsm = load_builtin_fsm(builtin) if not text and builtin in BUILTIN_FSMS else \
                    parse_fsm(text, source_name=source)
                if state not in fsm.states:
                    state = fsm.initial   # the FSM changed since: start over rather than refuse the NPC
                npcs.append(StoredNpc(npc_id, persona, fsm, state, float(entered_s)))
            except (InvalidArgument, KeyError, TypeError, ValueError) as exc:
                problems.append(f"NPC {npc_id!r} not restored: {exc}")
        return npcs, problems
