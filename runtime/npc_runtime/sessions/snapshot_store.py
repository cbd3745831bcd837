"""Where session snapshots live so that another replica can take a session over (docs/deploy.md).

    store = open_snapshot_store("npcrt-data/snapshots")     # a directory (default), or "redis://host:6379/0"
    writer = SnapshotWriter(store)                          # write-behind: put() never blocks the engine
    writer.put(session_id, data); writer.delete(session_id)
    data = store.get(session_id)                            # None when the store has no snapshot of it

The engine writes a session's snapshot when one of its turns ends (tokens, sampling and RNG state; no KV:
the replica that takes it over re-prefills, and greedy decoding continues with the same tokens), and deletes
it when the session is closed. The writer is bounded: when the store falls behind, the oldest pending
snapshot of a session is replaced by its newer one, and past `max_pending` sessions new ones are dropped and
counted (`dropped`): a takeover then resumes from an older turn or opens a new session.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Protocol

from npc_runtime.errors import InvalidArgument, Unavailable
from npc_runtime.sessions import snapshot
from npc_runtime.urls import redact

log = logging.getLogger("npc_runtime.sessions.snapshots")
REDIS_PREFIX = "npcrt:session:"


class SnapshotStore(Protocol):
    def put(self, session_id: str, data: bytes) -> None: ...
    def get(self, session_id: str) -> bytes | None: ...
    def delete(self, session_id: str) -> None: ...
    def close(self) -> None: ...


class DirectoryStore:
    """One file per session (named by a hash of its id), written atomically. A shared directory (NFS, a
    volume) serves a fleet; a local one serves restarts of one replica."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InvalidArgument(f"snapshot store {self.directory}: cannot create it ({exc.strerror})") from exc

    def _path(self, session_id: str) -> Path:
        return self.directory / f"{hashlib.sha256(session_id.encode()).hexdigest()[:40]}.npcsnap"

    def put(self, session_id: str, data: bytes) -> None:
        path = self._path(session_id)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)

    def get(self, session_id: str) -> bytes | None:
        try:
            return self._path(session_id).read_bytes()
        except FileNotFoundError:
            return None

    def delete(self, session_id: str) -> None:
        self._path(session_id).unlink(missing_ok=True)

    def close(self) -> None:
        pass


class RedisStore:
    """Snapshots as Redis strings `npcrt:session:<id>`, expiring after `ttl_s` (the engine's idle timeout:
    a session nobody used for that long is gone on every replica)."""

    def __init__(self, url: str, *, ttl_s: float) -> None:
        try:
            import redis
        except ImportError as exc:
            raise InvalidArgument("a redis:// snapshot store needs the redis package "
                                  "(pip install 'npc-runtime[fleet]')") from exc
        self._errors = (redis.RedisError,)
        self.ttl_ms = max(1, int(ttl_s * 1000))
        self._client = redis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)
        try:
            self._client.ping()
        except redis.RedisError as exc:
            raise Unavailable(f"snapshot store {redact(url)}: cannot reach Redis ({exc})") from exc

    def put(self, session_id: str, data: bytes) -> None:
        self._client.set(REDIS_PREFIX + session_id, data, px=self.ttl_ms)

    def get(self, session_id: str) -> bytes | None:
        try:
            return self._client.get(REDIS_PREFIX + session_id)
        except self._errors as exc:
            raise Unavailable(f"snapshot store unreachable: {exc}") from exc

    def delete(self, session_id: str) -> None:
        self._client.delete(REDIS_PREFIX + session_id)

    def close(self) -> None:
        self._client.close()


def open_snapshot_store(location: str, *, ttl_s: float) -> SnapshotStore:
    """A directory path, or a redis:// / rediss:// URL."""
    if location.startswith(("redis://", "rediss://", "unix://")):
        return RedisStore(location, ttl_s=ttl_s)
    if "://" in location:
        raise InvalidArgument(f"snapshot store {location!r}: give a directory or a redis:// URL")
    return DirectoryStore(location)


class SnapshotWriter:
    """Write-behind for a store: one thread, at most `max_pending` sessions waiting (newest snapshot of each)."""

    def __init__(self, store: SnapshotStore, *, max_pending: int = 1024) -> None:
        self.store = store
        self.max_pending = max_pending
        self.written = 0
        self.dropped = 0
        self.failed = 0
        self._pending: OrderedDict[str, bytes | snapshot.SessionState | None] = OrderedDict()   # None: delete
        self._cv = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="npcrt-snapshot-writer", daemon=True)
        self._thread.start()

    def put(self, session_id: str, data: "bytes | snapshot.SessionState") -> None:
        """Queue a snapshot: its bytes, or the captured state, encoded (and checksummed) on the writer's thread."""
        self._queue(session_id, data)

    def delete(self, session_id: str) -> None:
        self._queue(session_id, None)

    def _queue(self, session_id: str, data: "bytes | snapshot.SessionState | None") -> None:
        with self._cv:
            if session_id not in self._pending and len(self._pending) >= self.max_pending:
                self.dropped += 1
                return
            self._pending[session_id] = data
            self._pending.move_to_end(session_id)
            self._cv.notify()

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait until everything queued is written (tests, shutdown); False on timeout."""
        with self._cv:
            return self._cv.wait_for(lambda: not self._pending and not self._busy, timeout=timeout_s)

    _busy = False

    def _run(self) -> None:
        while True:
            with self._cv:
                self._cv.wait_for(lambda: self._pending or self._closing)
                if not self._pending:
                    return
                session_id, data = self._pending.popitem(last=False)
                self._busy = True
            try:
                if data is None:
                    self.store.delete(session_id)
                else:
                    self.store.put(session_id, data if isinstance(data, bytes) else snapshot.encode(data))
                    self.written += 1
            except Exception as exc:  # noqa: BLE001 - a store outage must not stop the writer; counted, logged
                self.failed += 1
                log.warning("snapshot store write failed", extra={"fields": {"session": session_id,
                                                                              "error": str(exc)[:300]}})
            finally:
                with self._cv:
                    self._busy = False
                    self._cv.notify_all()

    def close(self, timeout_s: float = 5.0) -> None:
        self.flush(timeout_s)
        with self._cv:
            self._closing = True
            self._cv.notify_all()
        self._thread.join(timeout_s)
        self.store.close()
