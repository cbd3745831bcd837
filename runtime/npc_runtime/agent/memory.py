"""NPC memory: memories with importance and embeddings, and the escalation log, in the agent database
(`agent/database.py`: a SQLite file in WAL mode by default, or PostgreSQL for a fleet of replicas).

Retrieval (Generative Agents style) scores each memory of an NPC as
    w_recency * 0.995 ** hours_since_last_access + w_importance * importance / 10 + w_relevance * cosine
(each term min-max normalised over the candidates), then fills a token budget in rank order and marks
what it returned as accessed. Times are game time in seconds.

`rank()` is the same score without the token budget and without marking anything accessed: what
`NpcAgent.RecallMemories` returns, so reading an NPC's memories (a debugger, quest logic) never changes
what the agent itself retrieves later.

Every write commits at once: a killed process (SIGTERM, crash) loses no acknowledged memory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

from npc_runtime.agent.embedding import EMBEDDING_DIM, embed
from npc_runtime.agent.database import Database, open_database
from npc_runtime.errors import InvalidArgument

# the tables live in npc_runtime.agent.database (MIGRATIONS): memories, escalations (and npcs)


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


class MemoryStore:
    """Thread-safe. `path`: a SQLite file, ":memory:" (tests) or a postgresql:// URL (see agent/database.py)."""

    def __init__(self, path: str | Path | None = None, *, weights: RetrievalWeights = RetrievalWeights()):
        self.path = str(path) if path is not None else str(default_db_path())
        self.weights = weights
        self._db: Database = open_database(self.path, what="the memory database")

    @property
    def journal_mode(self) -> str:
        return self._db.journal_mode

    @property
    def database(self) -> Database:
        return self._db

    def close(self) -> None:
        self._db.close()

    # ---- writes ----------------------------------------------------------------------------------------
    def add(self, npc_id: str, text: str, *, kind: str, importance: float, game_time_s: float) -> int:
        if not 1.0 <= importance <= 10.0:
            raise InvalidArgument(f"memory importance must be within 1-10, got {importance}")
        blob = embed(text).tobytes()
        return self._db.insert_returning_id(
            "INSERT INTO memories(npc_id, text, kind, importance, created_s, last_access_s, embedding) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (npc_id, text, kind, float(importance), float(game_time_s), float(game_time_s), blob))

    def import_memories(self, npc_id: str, rows: list[tuple[str, str, float, float, float]]) -> int:
        """Write saved memories back as they were: (text, kind, importance, created_s, last_access_s); embeddings
        recomputed from the text (deterministic). For save-games (agent/save_game.py)."""
        self._db.execute_many(
            "INSERT INTO memories(npc_id, text, kind, importance, created_s, last_access_s, embedding) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(npc_id, text, kind, importance, created, accessed, embed(text).tobytes())
             for text, kind, importance, created, accessed in rows])
        return len(rows)

    def forget(self, npc_id: str) -> int:
        return self._db.execute("DELETE FROM memories WHERE npc_id = ?", (npc_id,))

    def record_escalation(self, rec: EscalationRecord) -> None:
        self._db.execute(
            "INSERT INTO escalations(wall_time_unix, game_time_s, npc_id, provider, model, prompt_sha256, "
            "trigger, latency_ms, input_tokens, output_tokens, cost_usd, attempts, outcome, detail) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (rec.wall_time_unix, rec.game_time_s, rec.npc_id, rec.provider, rec.model, rec.prompt_sha256,
             rec.trigger, rec.latency_ms, rec.input_tokens, rec.output_tokens, rec.cost_usd, rec.attempts,
             rec.outcome, rec.detail[:500]))

    # ---- reads -----------------------------------------------------------------------------------------
    def count(self, npc_id: str | None = None) -> int:
        if npc_id is None:
            row = self._db.query_one("SELECT COUNT(*) FROM memories")
        else:
            row = self._db.query_one("SELECT COUNT(*) FROM memories WHERE npc_id = ?", (npc_id,))
        return int(row[0]) if row else 0

    def all(self, npc_id: str) -> list[Memory]:
        rows = self._db.query(f"SELECT {_MEMORY_COLUMNS} FROM memories WHERE npc_id = ? ORDER BY id", (npc_id,))
        return [Memory(*row) for row in rows]

    def escalations(self, npc_id: str | None = None) -> list[EscalationRecord]:
        cols = ("wall_time_unix, game_time_s, npc_id, provider, model, prompt_sha256, trigger, latency_ms, "
                "input_tokens, output_tokens, cost_usd, attempts, outcome, detail")
        if npc_id is None:
            rows = self._db.query(f"SELECT {cols} FROM escalations ORDER BY id")
        else:
            rows = self._db.query(f"SELECT {cols} FROM escalations WHERE npc_id = ? ORDER BY id", (npc_id,))
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
            self._db.execute_many("UPDATE memories SET last_access_s = ? WHERE id = ?",
                                  [(float(now_s), m.id) for m in chosen])
        return chosen

    def rank(self, npc_id: str, query: str, *, now_s: float | None = None, limit: int = 20,
             window: int = RETRIEVAL_WINDOW) -> list[Memory]:
        """The `limit` best memories for `query` by the retrieval score, best first, over the newest
        max(window, limit) memories; marks nothing accessed. `now_s` None: the NPC's latest memory time
        (recency is min-max normalised, so any later clock gives the same order and scores)."""
        return self._scored(npc_id, query, now_s=now_s, window=max(window, limit))[:limit]

    def most_recent(self, npc_id: str, *, limit: int = 20) -> list[Memory]:
        """The newest `limit` memories, newest (last written) first."""
        rows = self._db.query(f"SELECT {_MEMORY_COLUMNS} FROM memories WHERE npc_id = ? ORDER BY id DESC LIMIT ?",
                              (npc_id, limit))
        return [Memory(*row) for row in rows]

    def _scored(self, npc_id: str, query: str, *, now_s: float | None, window: int) -> list[Memory]:
        """Every candidate (the newest `window`) with its score, best first (ties: newer first)."""
        rows = self._db.query(f"SELECT {_MEMORY_COLUMNS}, embedding FROM memories WHERE npc_id = ? "
                              "ORDER BY id DESC LIMIT ?", (npc_id, window))
        if not rows:
            return []
        w = self.weights
        emb = np.frombuffer(b"".join(bytes(r[7]) for r in rows), dtype=np.float32).reshape(len(rows), EMBEDDING_DIM)
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
        rows = self._db.query("SELECT embedding FROM memories WHERE npc_id = ? ORDER BY id DESC LIMIT ?",
                              (npc_id, limit))
        if not rows:
            return 0.0
        emb = np.frombuffer(b"".join(bytes(r[0]) for r in rows), dtype=np.float32).reshape(len(rows), EMBEDDING_DIM)
        return float(np.max(emb @ embed(query)))

    def recent(self, npc_id: str, *, since_id: int = 0, kinds: Iterable[str] | None = None) -> list[Memory]:
        rows = self._db.query(f"SELECT {_MEMORY_COLUMNS} FROM memories WHERE npc_id = ? AND id > ? ORDER BY id",
                              (npc_id, since_id))
        wanted = set(kinds) if kinds is not None else None
        return [Memory(*r) for r in rows if wanted is None or r[3] in wanted]


_MEMORY_COLUMNS = "id, npc_id, text, kind, importance, created_s, last_access_s"


def _minmax(x: np.ndarray) -> np.ndarray:
    lo, hi = float(np.min(x)), float(np.max(x))
    if hi - lo < 1e-9:
        return np.full_like(x, 0.5, dtype=np.float64)
    return (x - lo) / (hi - lo)
