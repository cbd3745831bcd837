"""Session snapshots: one engine session as bytes, restorable in this process or another (a replica taking
over, a save-game, a session parked out of RAM).

Format (version 1), little-endian:

    magic      8 bytes   b"NPCSNAP\\x00"
    version    u32       1
    header     u32 n, then n bytes of UTF-8 JSON (below)
    kv         the arrays the header's "kv" list declares, raw, in order (absent when "kv" is [])
    crc32      u32       of every byte before it

    header = {"model": served name, "model_sha256": the package's fingerprint, "session_id", "npc_id",
              "tokens": [ids], "kv_len": positions in "kv", "status": "generating"|"finished",
              "finish_reason", "turn_tokens", "generated_total", "text_out",
              "sampling": {SamplingParams fields}, "limits": {SessionLimits fields}, "capacity",
              "rng": numpy bit-generator state (PCG64), "kv": [{"dtype", "shape"}] one per KV pool}

With the KV (`include_kv`), a restored session continues exactly where it stopped: the same cache, the same
RNG state, so greedy and seeded sampling produce the tokens an uninterrupted session would. Without it the
restore re-prefills the tokens (one prefill step; the snapshot is a few bytes per token).

Not carried: a turn decoding under a constraint (refused: FAILED_PRECONDITION, snapshot after the turn), a
partial stop-string match and undecoded UTF-8 bytes of the current turn's text (a restored mid-turn session
starts a fresh detokenizer). Corrupt, truncated or foreign bytes are INVALID_ARGUMENT; a snapshot of another
model is FAILED_PRECONDITION. Nothing in a snapshot is executed or unpickled: JSON and raw arrays only.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import struct
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from npc_runtime.config import SessionLimits
from npc_runtime.decode.sampling import SamplingParams
from npc_runtime.errors import InvalidArgument

MAGIC = b"NPCSNAP\x00"
VERSION = 1
MAX_HEADER_BYTES = 16 << 20
_KV_DTYPES = {"float32", "float16", "bfloat16", "int8", "uint8"}


@dataclass
class SessionState:
    """What a snapshot carries (the engine builds it from a Session and rebuilds a Session from it)."""
    model: str
    model_sha256: str
    session_id: str
    npc_id: str
    tokens: list[int]
    kv_len: int
    finished: bool
    finish_reason: str | None
    turn_tokens: int
    generated_total: int
    text_out: str
    sampling: SamplingParams
    limits: SessionLimits
    capacity: int
    rng_state: dict
    kv: list[np.ndarray]          # one [kv_heads, kv_len, head_dim] array per pool, or [] (re-prefill)


def fingerprint(manifest: dict | None, fallback: str) -> str:
    """The model identity a snapshot is bound to: sha256 of the package manifest (which lists every file's
    sha256), or of `fallback` for engines built from a bare decoder (tests)."""
    text = json.dumps(manifest, sort_keys=True) if manifest is not None else fallback
    return hashlib.sha256(text.encode()).hexdigest()


def encode(state: SessionState) -> bytes:
    header = {
        "model": state.model, "model_sha256": state.model_sha256, "session_id": state.session_id,
        "npc_id": state.npc_id, "tokens": state.tokens, "kv_len": state.kv_len,
        "status": "finished" if state.finished else "generating", "finish_reason": state.finish_reason,
        "turn_tokens": state.turn_tokens, "generated_total": state.generated_total, "text_out": state.text_out,
        "sampling": _fields(state.sampling), "limits": _fields(state.limits), "capacity": state.capacity,
        "rng": state.rng_state,
        "kv": [{"dtype": str(a.dtype), "shape": list(a.shape)} for a in state.kv],
    }
    head = json.dumps(header, separators=(",", ":"), allow_nan=False).encode()
    body = b"".join([MAGIC, struct.pack("<II", VERSION, len(head)), head,
                     *(np.ascontiguousarray(a).tobytes() for a in state.kv)])
    return body + struct.pack("<I", zlib.crc32(body))


def decode(data: bytes) -> SessionState:
    """Parse and check a snapshot's framing and fields (not yet against a model: the engine does that)."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise InvalidArgument("snapshot.data must be bytes")
    data = bytes(data)
    if len(data) < len(MAGIC) + 12 or data[:len(MAGIC)] != MAGIC:
        raise InvalidArgument("snapshot.data is not an npc-runtime session snapshot (bad magic)")
    body, (crc,) = data[:-4], struct.unpack("<I", data[-4:])
    if zlib.crc32(body) != crc:
        raise InvalidArgument("snapshot.data is corrupt or truncated (checksum mismatch)")
    version, head_len = struct.unpack_from("<II", body, len(MAGIC))
    if version != VERSION:
        raise InvalidArgument(f"snapshot format version {version} is not supported (this server reads {VERSION})")
    start = len(MAGIC) + 8
    if head_len > MAX_HEADER_BYTES or start + head_len > len(body):
        raise InvalidArgument("snapshot.data is corrupt (header length)")
    try:
        h = json.loads(body[start:start + head_len].decode("utf-8"),
                       parse_constant=lambda c: _bad(f"non-finite number {c}"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise InvalidArgument(f"snapshot header is not valid JSON: {exc}") from exc
    if not isinstance(h, dict):
        _bad("header is not an object")
    kv = _arrays(h.get("kv"), body[start + head_len:])
    tokens = h.get("tokens")
    if not isinstance(tokens, list) or not tokens or not all(type(t) is int and t >= 0 for t in tokens):
        _bad("tokens must be a non-empty list of non-negative integers")
    kv_len = _int(h, "kv_len")
    if kv and not all(a.shape[1] == kv_len for a in kv) or not kv and kv_len != 0 or kv_len > len(tokens):
        _bad("kv_len does not match the KV arrays or the tokens")
    if h.get("status") not in ("generating", "finished"):
        _bad("status must be 'generating' or 'finished'")
    return SessionState(
        model=_str(h, "model"), model_sha256=_str(h, "model_sha256"), session_id=_str(h, "session_id"),
        npc_id=_str(h, "npc_id"), tokens=tokens, kv_len=kv_len, finished=h["status"] == "finished",
        finish_reason=h.get("finish_reason") if isinstance(h.get("finish_reason"), str) else None,
        turn_tokens=_int(h, "turn_tokens"), generated_total=_int(h, "generated_total"),
        text_out=_str(h, "text_out"), sampling=_dataclass(SamplingParams, h.get("sampling"), "sampling"),
        limits=_dataclass(SessionLimits, h.get("limits"), "limits"), capacity=_int(h, "capacity"),
        rng_state=_rng(h.get("rng")), kv=kv)


def peek(data: bytes) -> dict:
    """The header of a snapshot this server just wrote (no checksum pass over the KV: for reporting only)."""
    (head_len,) = struct.unpack_from("<I", data, len(MAGIC) + 4)
    start = len(MAGIC) + 8
    return json.loads(data[start:start + head_len])


def restore_rng(state: dict) -> np.random.Generator:
    rng = np.random.Generator(np.random.PCG64())
    try:
        rng.bit_generator.state = state
    except (TypeError, ValueError, KeyError) as exc:
        raise InvalidArgument(f"snapshot rng state is invalid: {exc}") from exc
    return rng


# ---- field checks ---------------------------------------------------------------------------------------
def _bad(what: str):
    raise InvalidArgument(f"snapshot is invalid: {what}")


def _str(h: dict, key: str) -> str:
    value = h.get(key)
    if not isinstance(value, str):
        _bad(f"{key} must be a string")
    return value


def _int(h: dict, key: str) -> int:
    value = h.get(key)
    if type(value) is not int or value < 0:
        _bad(f"{key} must be a non-negative integer")
    return value


def _fields(obj: Any) -> dict:
    return {f.name: _jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _dataclass(cls, raw: Any, name: str):
    if not isinstance(raw, dict):
        _bad(f"{name} must be an object")
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(known))
    if unknown:
        _bad(f"{name} has unknown field(s) {unknown}")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()}
    try:
        obj = cls(**values)
        validate = getattr(obj, "validate", None)
        if callable(validate):
            validate()
        return obj
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(f"snapshot {name} is invalid: {exc}") from exc


def _rng(raw: Any) -> dict:
    if not isinstance(raw, dict) or raw.get("bit_generator") != "PCG64":
        _bad("rng must be a PCG64 bit-generator state")
    restore_rng(raw)   # checks it
    return raw


def _arrays(spec: Any, blob: bytes) -> list[np.ndarray]:
    if not isinstance(spec, list) or len(spec) > 4096:
        _bad("kv must be a list of array descriptions")
    arrays, offset = [], 0
    for item in spec:
        if not isinstance(item, dict) or item.get("dtype") not in _KV_DTYPES:
            _bad(f"kv dtype must be one of {sorted(_KV_DTYPES)}")
        shape = item.get("shape")
        if not isinstance(shape, list) or len(shape) != 3 or not all(type(d) is int and d >= 0 for d in shape):
            _bad("kv shape must be [kv_heads, positions, head_dim]")
        dtype = np.dtype(item["dtype"]) if item["dtype"] != "bfloat16" else np.dtype(np.uint16)
        n = int(np.prod(shape)) * dtype.itemsize
        if offset + n > len(blob):
            _bad("KV arrays are truncated")
        arrays.append(np.frombuffer(blob, dtype=dtype, count=int(np.prod(shape)), offset=offset).reshape(shape))
        offset += n
    if offset != len(blob):
        _bad("trailing bytes after the KV arrays")
    return arrays
