"""NPC save-games (NpcAgent.SaveNpc / RestoreNpc): one NPC as one blob, loadable here or on another server.

Format (version 1), little-endian:

    magic         8 bytes  b"NPCSAVE\\x00"
    version       u32      1
    header        u32 n, then n bytes of UTF-8 JSON:
                  {"npc_id", "persona": {name, role, traits, backstory},
                   "fsm": {"source", "yaml"}    (yaml "" for a built-in FSM, reloaded by name),
                   "state", "entered_s",
                   "memories": [[text, kind, importance, created_s, last_access_s], ...]}
    conversation  u32 n, then n bytes: a session snapshot (sessions/snapshot.py), or n = 0
    crc32         u32      of every byte before it

Memories are saved as text with their importance and times; their embeddings are recomputed on load (the
embedding is a deterministic function of the text), so a loaded NPC retrieves exactly what the saved one did.
Everything read back is checked as client input: a blob is a file a player can edit.
"""

from __future__ import annotations

import json
import math
import struct
import zlib
from dataclasses import dataclass

from npc_runtime.agent.fsm_loader import BUILTIN_FSMS, load_builtin_fsm, parse_fsm
from npc_runtime.agent.memory import MemoryStore
from npc_runtime.agent.types import Persona
from npc_runtime.errors import InvalidArgument

MAGIC = b"NPCSAVE\x00"
VERSION = 1
MAX_MEMORIES = 100_000
MAX_HEADER_BYTES = 64 << 20


@dataclass
class NpcSaveState:
    npc_id: str
    persona: Persona
    fsm_source: str
    fsm_yaml: str
    state: str
    entered_s: float
    memories: list[tuple[str, str, float, float, float]]   # text, kind, importance, created_s, last_access_s


def capture(npc_id: str, persona: Persona, fsm, *, state: str, entered_s: float,
            memory: MemoryStore) -> NpcSaveState:
    builtin = next((n for n in BUILTIN_FSMS if fsm.source == f"fsms/{n}.yaml"), None)
    rows = [(m.text, m.kind, float(m.importance), float(m.created_s), float(m.last_access_s))
            for m in memory.all(npc_id)]
    return NpcSaveState(npc_id, persona, fsm.source, "" if builtin else fsm.text, state, float(entered_s), rows)


def encode(save: NpcSaveState, conversation: bytes = b"") -> bytes:
    header = {"npc_id": save.npc_id,
              "persona": {"name": save.persona.name, "role": save.persona.role,
                          "traits": list(save.persona.traits), "backstory": save.persona.backstory},
              "fsm": {"source": save.fsm_source, "yaml": save.fsm_yaml},
              "state": save.state, "entered_s": save.entered_s, "memories": save.memories}
    head = json.dumps(header, separators=(",", ":"), allow_nan=False).encode()
    body = b"".join([MAGIC, struct.pack("<II", VERSION, len(head)), head,
                     struct.pack("<I", len(conversation)), conversation])
    return body + struct.pack("<I", zlib.crc32(body))


def decode(data: bytes) -> tuple[NpcSaveState, bytes]:
    """(the NPC, its conversation snapshot or b""); INVALID_ARGUMENT naming what is wrong."""
    data = bytes(data)
    if len(data) < len(MAGIC) + 16 or data[:len(MAGIC)] != MAGIC:
        raise InvalidArgument("data is not an npc-runtime NPC save (bad magic)")
    body, (crc,) = data[:-4], struct.unpack("<I", data[-4:])
    if zlib.crc32(body) != crc:
        raise InvalidArgument("the NPC save is corrupt or truncated (checksum mismatch)")
    version, head_len = struct.unpack_from("<II", body, len(MAGIC))
    if version != VERSION:
        raise InvalidArgument(f"NPC save format version {version} is not supported (this server reads {VERSION})")
    start = len(MAGIC) + 8
    if head_len > MAX_HEADER_BYTES or start + head_len + 4 > len(body):
        raise InvalidArgument("the NPC save is corrupt (header length)")
    (conv_len,) = struct.unpack_from("<I", body, start + head_len)
    conversation = body[start + head_len + 4:]
    if conv_len != len(conversation):
        raise InvalidArgument("the NPC save is corrupt (conversation length)")
    try:
        h = json.loads(body[start:start + head_len].decode("utf-8"),
                       parse_constant=lambda c: _bad(f"non-finite number {c}"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise InvalidArgument(f"the NPC save's header is not valid JSON: {exc}") from exc
    return _state(h), conversation


def rebuild_fsm(save: NpcSaveState):
    """The FSM definition of a save (a built-in by name, else its YAML, parsed under the usual limits)."""
    builtin = save.fsm_source.removeprefix("fsms/").removesuffix(".yaml")
    if not save.fsm_yaml and builtin in BUILTIN_FSMS:
        return load_builtin_fsm(builtin)
    if not save.fsm_yaml:
        _bad(f"fsm: unknown built-in {save.fsm_source!r} and no YAML")
    return parse_fsm(save.fsm_yaml, source_name=save.fsm_source or "saved.yaml")


# ---- field checks ---------------------------------------------------------------------------------------
def _bad(what: str):
    raise InvalidArgument(f"the NPC save is invalid: {what}")


def _state(h) -> NpcSaveState:
    if not isinstance(h, dict):
        _bad("header is not an object")
    p, fsm, memories = h.get("persona"), h.get("fsm"), h.get("memories")
    if not isinstance(p, dict) or not all(isinstance(p.get(k), str) for k in ("name", "role", "backstory")) \
            or not isinstance(p.get("traits"), list) or not all(isinstance(t, str) for t in p["traits"]):
        _bad("persona must have string name, role, backstory and a list of string traits")
    if not isinstance(fsm, dict) or not isinstance(fsm.get("source"), str) or not isinstance(fsm.get("yaml"), str):
        _bad("fsm must have string source and yaml")
    if not isinstance(h.get("npc_id"), str) or not isinstance(h.get("state"), str):
        _bad("npc_id and state must be strings")
    entered = h.get("entered_s")
    if isinstance(entered, bool) or not isinstance(entered, (int, float)) or not math.isfinite(entered):
        _bad("entered_s must be a finite number")
    if not isinstance(memories, list) or len(memories) > MAX_MEMORIES:
        _bad(f"memories must be a list of at most {MAX_MEMORIES}")
    rows = []
    for i, m in enumerate(memories):
        ok = (isinstance(m, list) and len(m) == 5 and isinstance(m[0], str) and isinstance(m[1], str)
              and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in m[2:])
              and 1.0 <= m[2] <= 10.0)
        if not ok:
            _bad(f"memories[{i}] must be [text, kind, importance 1-10, created_s, last_access_s]")
        rows.append((m[0], m[1], float(m[2]), float(m[3]), float(m[4])))
    persona = Persona(name=p["name"], role=p["role"], traits=tuple(p["traits"]), backstory=p["backstory"])
    return NpcSaveState(h["npc_id"], persona, fsm["source"], fsm["yaml"], h["state"], float(entered), rows)
