"""NPC memory in SQLite (WAL): memories with importance and embeddings, and the escalation log.

Retrieval (Generative Agents style) scores each memory of an NPC as
    w_recency * 0.995 ** hours_since_last_access + w_importance * importance / 10 + w_relevance * cosine
(each term min-max normalised over the candidates), then fills a token budget in rank order and marks
what it returned as accessed. Times are game time in seconds.

`rank()` is the same score without the token budget and without marking anything accessed: what
`NpcAgent.RecallMemories` returns, so reading an NPC's memories (a debugger, quest logic) never changes
what the agent itself retrieves later.

Every write commits at once: in WAL mode a killed process (SIGTERM, crash) loses no committed memory.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

from npc_runtime.agent.embedding import EMBEDDING_DIM, embed
from npc_runtime.errors import InternalError, InvalidArgument

_SCHEMA = """
CREATE TABLE IF NOT EXISTS memories (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    npc_id TEXT NOT NULL,
    text TEXT NOT NULL,
    kind TEXT NOT NULL,                 -- observation | event:<kind> | utterance | reflection | seed | decision
    importance REAL NOT NULL,           -- 1..10
    created_s REAL NOT NULL,            -- game time, seconds
    last_access_s REAL NOT NULL,        -- game time, seconds
    embedding BLOB NOT NULL             -- float32[256], unit length
);
CREATE INDEX IF NOT EXISTS memories_npc ON memories(npc_id, created_s);
CREATE TABLE IF NOT EXISTS escalations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    wall_time_unix REAL NOT NULL,       -- seconds since the epoch
    game_time_s REAL NOT NULL,
    npc_id TEXT NOT NULL,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    prompt_sha256 TEXT NOT NULL,
    trigger TEXT NOT NULL,              -- why it escalated: low_confidence | low_margin | novelty | story_critical
    latency_ms REAL NOT NULL,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    cost_usd REAL NOT NULL,
    attempts INTEGER NOT NULL,
    outcome TEXT NOT NULL,              -- ok | rejected | timeout | error | denied_budget | circuit_open
    detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS escalations_npc ON escalations(npc_id, wall_time_unix);
"""


# the one table from stored kinds to the kinds a recall reports (MemoryKind on the wire): perceived,
# said, reflected, or decided by the escalation provider. `event:<kind>` rows map by their prefix.
RECALL_KINDS: dict[str, str] = {
    "observation": "observation", "event": "observation", "seed": "observation",
    "utterance": "dialogue", "dialogue": "dialogue",
    "reflection": "reflection",
    "decision": "escalation", "escalation": "escalation",
}
# candidates the agent's retrieval scores: the NPC's newest memories
RETRIEVAL_WINDOW = 500


def recall_kind(stored: str) -> str:
    """The recall kind of a stored kind; an unknown kind (a newer writer) reads as an observation."""
    return RECALL_KINDS.get(stored.split(":", 1)[0], "observation")


@dataclass(frozen=True, kw_only=True)
class RetrievalWeights:
    recency: float = 1.0
    importance: float = 1.0
    relevance: float = 1.0
    decay_per_hour: float = 0.995


@dataclass(frozen=True)
class Memory:
    id: int
    npc_id: str
    text: str
    kind: str
    importance: float
    created_s: float
    last_access_s: float
    score: float = 0.0
    relevance: float = 0.0


@dataclass(frozen=True)
class EscalationRecord:
    wall_time_unix: float
    game_time_s: float
    npc_id: str
    provider: str
    model: str
    prompt_sha256: str
    trigger: str
    latency_ms: float
    input_tokens: int
    output_tokens: int
    cost_usd: float
    attempts: int
    outcome: str
    detail: str = ""


def estimate_tokens(text: str) -> int:
    """~4 characters a token (English, BPE); used for prompt budgets, not for billing."""
    return max(1, (len(text) + 3) // 4)


def default_db_path() -> Path:
    base = Path(os.environ.get("NPCRT_DATA_DIR", Path.home() / ".local" / "share" / "npcrt"))
    return base / "memory.sqlite3"


def open_wal_database(path: str, schema: str, *, what: str) -> sqlite3.Connection:
    """A SQLite connection in WAL mode with `schema` applied (the memory store and the NPC store share the file);
    one connection per store, used under the store's lock. `path=":memory:"` for tests."""
    try:
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(schema)
        return db
    except (sqlite3.Error, OSError) as exc:
        raise InternalError(f"cannot open {what} {path}: {exc}") from exc


class MemoryStore:
    """Thread-safe (one connection, one lock). `path=":memory:"` for tests."""

    def __init__(self, path: str | Path | None = None, *, weights: RetrievalWeights = RetrievalWeights()):
        self.path = str(path) if path is not None else str(default_db_path())
        self.weights = weights
        self._lock = threading.Lock()
        self._db = open_wal_database(self.path, _SCHEMA, what="the memory database")

    @property
    def journal_mode(self) -> str:
        with self._lock:
            return self._db.execute("PRAGMA journal_mode").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # ---- writes ----------------------------------------------------------------------------------------
    def add(self, npc_id: str, text: str, *, kind: str, importance: float, game_time_s: float) -> int:
        if not 1.0 <= importance <= 10.0:
            raise InvalidArgument(f"memory importance must be within 1-10, got {importance}")
        blob = embed(text).tobytes()
        try:
            with self._lock:
                cur = self._db.execute(
                    "INSERT INTO memories(npc_id, text, kind, importance, created_s, last_access_s, embedding) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (npc_id, text, kind, float(importance), game_time_s, game_time_s, blob),
                )
                return int(cur.lastrowid)
        except sqlite3.Error as exc:
            raise InternalError(f"cannot write a memory for {npc_id!r}: {exc}") from exc

    def forget(self, npc_id: str) -> int:
        with self._lock:
            return self._db.execute("DELETE FROM memories WHERE npc_id = ?", (npc_id,)).rowcount

    def record_escalation(self, rec: EscalationRecord) -> None:
        try:
            with self._lock:
                self._db.execute(
                    "INSERT INTO escalations(wall_time_unix, game_time_s, npc_id, provider, model, prompt_sha256, "
                    "trigger, latency_ms, input_tokens, output_tokens, cost_usd, attempts, outcome, detail) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (rec.wall_time_unix, rec.game_time_s, rec.npc_id, rec.provider, rec.model, rec.prompt_sha256,
                     rec.trigger, rec.latency_ms, rec.input_tokens, rec.output_tokens, rec.cost_usd, rec.attempts,
                     rec.outcome, rec.detail[:500]),
                )
        except sqlite3.Error as exc:
            raise InternalError(f"cannot record an escalation: {exc}") from exc

    # ---- reads -----------------------------------------------------------------------------------------
    def count(self, npc_id: str | None = None) -> int:
        with self._lock:
            if npc_id is None:
                return self._db.execute("SELECT COUNT(*) FROM memories").fetchone()[0]
            return self._db.execute("SELECT COUNT(*) FROM memories WHERE npc_id = ?", (npc_id,)).fetchone()[0]

    def all(self, npc_id: str) -> list[Memory]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, npc_id, text, kind, importance, created_s, last_access_s FROM memories "
                "WHERE npc_id = ? ORDER BY id", (npc_id,)).fetchall()
        return [Memory(*row) for row in rows]

    def escalations(self, npc_id: str | None = None) -> list[EscalationRecord]:
        cols = ("wall_time_unix, game_time_s, npc_id, provider, model, prompt_sha256, trigger, latency_ms, "
                "input_tokens, output_tokens, cost_usd, attempts, outcome, detail")
        with self._lock:
            if npc_id is None:
                rows = self._db.execute(f"SELECT {cols} FROM escalations ORDER BY id").fetchall()
            else:
                rows = self._db.execute(f"SELECT {cols} FROM escalations WHERE npc_id = ? ORDER BY id",
                                        (npc_id,)).fetchall()
        return [EscalationRecord(*row) for row in rows]

    def retrieve(self, npc_id: str, query: str, *, now_s: float, token_budget: int = 200,
                 limit: int = RETRIEVAL_WINDOW, touch: bool = True) -> list[Memory]:
        """The best memories for `query` that fit in `token_budget` tokens, best first; marks them accessed."""
        chosen: list[Memory] = []
        used = 0
        for m in self._scored(npc_id, query, now_s=now_s, window=limit):
            cost = estimate_tokens(m.text)
            if used + cost > token_budget:
                continue
            used += cost
            chosen.append(m)
        if touch and chosen:
            with self._lock:
                self._db.executemany("UPDATE memories SET last_access_s = ? WHERE id = ?",
                                     [(now_s, m.id) for m in chosen])
        return chosen

    def rank(self, npc_id: str, query: str, *, now_s: float | None = None, limit: int = 20,
             window: int = RETRIEVAL_WINDOW) -> list[Memory]:
        """The `limit` best memories for `query` by the retrieval score, best first, over the newest
        max(window, limit) memories; marks nothing accessed. `now_s` None: the NPC's latest memory time
        (recency is min-max normalised, so any later clock gives the same order and scores)."""
        return self._scored(npc_id, query, now_s=now_s, window=max(window, limit))[:limit]

    def most_recent(self, npc_id: str, *, limit: int = 20) -> list[Memory]:
        """The newest `limit` memories, newest (last written) first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, npc_id, text, kind, importance, created_s, last_access_s FROM memories "
                "WHERE npc_id = ? ORDER BY id DESC LIMIT ?", (npc_id, limit)).fetchall()
        return [Memory(*row) for row in rows]

    def _scored(self, npc_id: str, query: str, *, now_s: float | None, window: int) -> list[Memory]:
        """Every candidate (the newest `window`) with its score, best first (ties: newer first)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, npc_id, text, kind, importance, created_s, last_access_s, embedding FROM memories "
                "WHERE npc_id = ? ORDER BY id DESC LIMIT ?", (npc_id, window)).fetchall()
        if not rows:
            return []
        w = self.weights
        emb = np.frombuffer(b"".join(r[7] for r in rows), dtype=np.float32).reshape(len(rows), EMBEDDING_DIM)
        relevance = emb @ embed(query)                                            # [n] cosine
        last_access = np.array([r[6] for r in rows])
        if now_s is None:
            now_s = float(np.max(last_access))
        hours = np.maximum(0.0, (now_s - last_access) / 3600.0)
        recency = np.power(w.decay_per_hour, hours)
        importance = np.array([r[4] for r in rows]) / 10.0
        score = (w.recency * _minmax(recency) + w.importance * _minmax(importance)
                 + w.relevance * _minmax(relevance))
        return [Memory(*rows[i][:7], score=float(score[i]), relevance=float(relevance[i]))
                for i in np.argsort(-score, kind="stable")]

    def max_relevance(self, npc_id: str, query: str, *, limit: int = 500) -> float:
        """Cosine similarity of the closest memory to `query` (0 when the NPC has none): novelty = low."""
        with self._lock:
            rows = self._db.execute("SELECT embedding FROM memories WHERE npc_id = ? ORDER BY id DESC LIMIT ?",
                                    (npc_id, limit)).fetchall()
        if not rows:
            return 0.0
        emb = np.frombuffer(b"".join(r[0] for r in rows), dtype=np.float32).reshape(len(rows), EMBEDDING_DIM)
        return float(np.max(emb @ embed(query)))

    def recent(self, npc_id: str, *, since_id: int = 0, kinds: Iterable[str] | None = None) -> list[Memory]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, npc_id, text, kind, importance, created_s, last_access_s FROM memories "
                "WHERE npc_id = ? AND id > ? ORDER BY id", (npc_id, since_id)).fetchall()
        wanted = set(kinds) if kinds is not None else None
        return [Memory(*r) for r in rows if wanted is None or r[3] in wanted]


def _minmax(x: np.ndarray) -> np.ndarray:
    lo, hi = float(np.min(x)), float(np.max(x))
    if hi - lo < 1e-9:
        return np.full_like(x, 0.5, dtype=np.float64)
    return (x - lo) / (hi - lo)
