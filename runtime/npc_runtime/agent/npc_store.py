"""Registered NPCs that survive a restart: persona, FSM (built-in name or YAML text) and FSM state, in the
same database as the memories (`agent/database.py`: SQLite by default, or PostgreSQL).

`AgentRuntime` writes through it on register / unregister and when an NPC's FSM state changes;
`AgentRuntime.restore_npcs()` reads it back at start.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from npc_runtime.agent.fsm import FsmDefinition
from npc_runtime.agent.fsm_loader import BUILTIN_FSMS, load_builtin_fsm, parse_fsm
from npc_runtime.agent.database import open_database
from npc_runtime.agent.types import Persona
from npc_runtime.errors import InvalidArgument

# the npcs table lives in npc_runtime.agent.database (MIGRATIONS)


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
    """Thread-safe. `path`: a SQLite file, ":memory:" or a postgresql:// URL."""

    def __init__(self, path: str | Path):
        self.path = str(path)
        self._db = open_database(self.path, what="the NPC registry in")

    def close(self) -> None:
        self._db.close()

    def save(self, npc_id: str, persona: Persona, fsm: FsmDefinition, *, state: str, entered_s: float) -> None:
        builtin = _builtin_name(fsm)
        persona_json = json.dumps({"name": persona.name, "role": persona.role, "traits": list(persona.traits),
                                   "backstory": persona.backstory})
        self._db.execute(
            "INSERT INTO npcs(npc_id, persona_json, fsm_source, fsm_yaml, fsm_state, state_entered_s, updated_unix) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (npc_id) DO UPDATE SET persona_json = excluded.persona_json, "
            "fsm_source = excluded.fsm_source, fsm_yaml = excluded.fsm_yaml, fsm_state = excluded.fsm_state, "
            "state_entered_s = excluded.state_entered_s, updated_unix = excluded.updated_unix",
            (npc_id, persona_json, fsm.source, "" if builtin else fsm.text, state, float(entered_s), time.time()))

    def save_state(self, npc_id: str, state: str, entered_s: float) -> None:
        self._db.execute("UPDATE npcs SET fsm_state = ?, state_entered_s = ?, updated_unix = ? WHERE npc_id = ?",
                         (state, float(entered_s), time.time(), npc_id))

    def delete(self, npc_id: str) -> None:
        self._db.execute("DELETE FROM npcs WHERE npc_id = ?", (npc_id,))

    def load_all(self) -> tuple[list[StoredNpc], list[str]]:
        """Every stored NPC, and one line per row that could not be rebuilt (it is skipped, not deleted)."""
        rows = self._db.query(f"SELECT {_COLUMNS} FROM npcs ORDER BY npc_id")
        npcs, problems = [], []
        for row in rows:
            try:
                npcs.append(_rebuild(*row))
            except (InvalidArgument, KeyError, TypeError, ValueError) as exc:
                problems.append(f"NPC {row[0]!r} not restored: {exc}")
        return npcs, problems

    def exists(self, npc_id: str) -> bool:
        return self._db.query_one("SELECT 1 FROM npcs WHERE npc_id = ?", (npc_id,)) is not None

    def load(self, npc_id: str) -> StoredNpc | None:
        """One stored NPC (None when none is stored under `npc_id`): a replica of a fleet serving an NPC that
        another replica registered (they share a PostgreSQL database)."""
        row = self._db.query_one(f"SELECT {_COLUMNS} FROM npcs WHERE npc_id = ?", (npc_id,))
        if row is None:
            return None
        try:
            return _rebuild(*row)
        except (InvalidArgument, KeyError, TypeError, ValueError) as exc:
            raise InvalidArgument(f"NPC {npc_id!r} is stored but cannot be rebuilt: {exc}; register it again "
                                  "with replace=true") from exc


_COLUMNS = "npc_id, persona_json, fsm_source, fsm_yaml, fsm_state, state_entered_s"


def _rebuild(npc_id: str, persona_json: str, source: str, text: str, state: str, entered_s: float) -> StoredNpc:
    p = json.loads(persona_json)
    persona = Persona(name=p["name"], role=p["role"], traits=tuple(p["traits"]), backstory=p["backstory"])
    builtin = source.removeprefix("fsms/").removesuffix(".yaml")
    fsm = load_builtin_fsm(builtin) if not text and builtin in BUILTIN_FSMS else parse_fsm(text, source_name=source)
    if state not in fsm.states:
        state = fsm.initial   # the FSM changed since: start over rather than refuse the NPC
    return StoredNpc(npc_id, persona, fsm, state, float(entered_s))
