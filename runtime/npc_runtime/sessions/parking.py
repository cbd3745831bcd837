"""Tiered KV: sessions that leave the KV pool without being closed ("parked"), restored on their next request.

    pool (resident, `max_sessions` slots)  --idle park_after_s / slot pressure-->  host memory
    host memory (the session's state, KV arrays included, `park_host_bytes` budget)
        --park_disk_after_s / over budget-->  disk (one snapshot file per session under `park_dir`)

A parked session is a snapshot (sessions/snapshot.py, KV included), so the restore is exact and needs no
prefill: a copy into a free slot. In host memory it stays a `SessionState` (numpy arrays: parking and
restoring are memory copies, no encoding or checksum); it is encoded only when it goes to disk. The engine parks a session when it has been idle `park_after_s`, or when a
new or returning session needs a slot and every slot is taken (the least recently used idle session goes).
Parked sessions still expire after their idle timeout (then they answer FAILED_PRECONDITION, as evicted ones do).

This module only stores bytes; the engine decides what to park and restores (Engine._park / _unpark).
"""

from __future__ import annotations

import hashlib
import os
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from npc_runtime.errors import InternalError
from npc_runtime.sessions import snapshot
from npc_runtime.sessions.snapshot import SessionState

HOST, DISK = "host", "disk"
HARD_BUDGET_FACTOR = 1.25      # the host tier may exceed its budget by this much between sweeps


@dataclass
class _Parked:
    last_active: float          # monotonic time of the session's last request (for expiry)
    parked_at: float            # monotonic
    state: SessionState | None  # host tier
    path: Path | None           # disk tier
    size: int


class ParkingLot:
    """Parked sessions by id, in parking order (oldest first). Not thread-safe: the engine thread owns it."""

    def __init__(self, *, host_bytes: int, directory: str | Path | None) -> None:
        self.host_budget = int(host_bytes)
        self.directory = Path(directory) if directory else None
        self.host_used = 0
        self._parked: OrderedDict[str, _Parked] = OrderedDict()
        self.parks = 0
        self.restores = {HOST: 0, DISK: 0}

    def __contains__(self, session_id: str) -> bool:
        return session_id in self._parked

    def __len__(self) -> int:
        return len(self._parked)

    def count(self, tier: str) -> int:
        return sum((p.state is not None) == (tier == HOST) for p in self._parked.values())

    def park(self, session_id: str, state: SessionState, *, last_active: float, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self.discard(session_id)
        size = sum(a.nbytes for a in state.kv) + 8 * len(state.tokens) + 1024
        self._parked[session_id] = _Parked(last_active, now, state, None, size)
        self.host_used += size
        self.parks += 1
        if self.host_used > self.host_budget * HARD_BUDGET_FACTOR:
            self.fit_budget()      # far over: spill now, on the request path (normally the sweep does it)

    def take(self, session_id: str) -> tuple[SessionState, str, float]:
        """(state, tier it came from, last_active) of a parked session, which is no longer parked."""
        parked = self._parked.pop(session_id)
        if parked.state is not None:
            self.host_used -= parked.size
            self.restores[HOST] += 1
            return parked.state, HOST, parked.last_active
        try:
            data = parked.path.read_bytes()
            parked.path.unlink(missing_ok=True)
        except OSError as exc:
            raise InternalError(f"parked session {session_id!r} could not be read back from {parked.path}: "
                                f"{exc}") from exc
        self.restores[DISK] += 1
        return snapshot.decode(data), DISK, parked.last_active

    def discard(self, session_id: str) -> bool:
        parked = self._parked.pop(session_id, None)
        if parked is None:
            return False
        if parked.state is not None:
            self.host_used -= parked.size
        elif parked.path is not None:
            parked.path.unlink(missing_ok=True)
        return True

    def spill(self, *, older_than_s: float, now: float | None = None) -> int:
        """Move sessions parked longer than `older_than_s` from host memory to disk; returns how many."""
        if self.directory is None:
            return 0
        now = time.monotonic() if now is None else now
        moved = 0
        for session_id, parked in self._parked.items():
            if parked.state is not None and now - parked.parked_at > older_than_s:
                self._to_disk(session_id, parked)
                moved += 1
        return moved

    def expired(self, timeout_s: float, now: float | None = None) -> list[str]:
        """Ids of parked sessions idle longer than `timeout_s` (not removed)."""
        now = time.monotonic() if now is None else now
        return [sid for sid, p in self._parked.items() if now - p.last_active > timeout_s]

    def close(self) -> None:
        for session_id in list(self._parked):
            self.discard(session_id)

    def fit_budget(self) -> None:
        """Over the host budget: the oldest parked sessions go to disk (or, without a directory, stay: the
        budget is then a soft limit reported in the stats). The engine's idle sweep calls it (every few
        seconds), so parking and restoring stay memory copies; a park that takes the host tier past
        HARD_BUDGET_FACTOR x the budget spills at once."""
        if self.directory is None:
            return
        for session_id, parked in self._parked.items():
            if self.host_used <= self.host_budget:
                return
            if parked.state is not None:
                self._to_disk(session_id, parked)

    def _to_disk(self, session_id: str, parked: _Parked) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{hashlib.sha256(session_id.encode()).hexdigest()[:32]}.npcsnap"   # ids are not file names
        tmp = path.with_suffix(".tmp")
        try:
            with open(tmp, "wb") as f:
                f.write(snapshot.encode(parked.state))
            os.replace(tmp, path)
        except OSError as exc:
            raise InternalError(f"cannot park session {session_id!r} on disk at {path}: {exc}") from exc
        self.host_used -= parked.size
        parked.state, parked.path = None, path
