"""The agent database (agent/database.py): migrations on SQLite and PostgreSQL, adopting a pre-migration SQLite
file, replicas sharing one PostgreSQL, and the errors a studio sees when the database is away."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from npc_runtime.agent.database import MIGRATIONS, describe, open_database
from npc_runtime.agent.memory import EscalationRecord, MemoryStore
from npc_runtime.errors import Unavailable

LATEST = MIGRATIONS[-1][0]


def test_migrations_applied_once(db_location):
    db = open_database(db_location)
    assert db.schema_version() == LATEST
    db.close()
    again = open_database(db_location)
    assert again.query("SELECT version FROM schema_migrations") == [(v,) for v, _, _ in MIGRATIONS]
    again.close()


def test_a_sqlite_file_from_before_migrations_is_adopted_with_its_rows(tmp_path):
    path = tmp_path / "memory.sqlite3"
    old = sqlite3.connect(path)
    old.executescript("""
        CREATE TABLE memories (id INTEGER PRIMARY KEY AUTOINCREMENT, npc_id TEXT NOT NULL, text TEXT NOT NULL,
            kind TEXT NOT NULL, importance REAL NOT NULL, created_s REAL NOT NULL, last_access_s REAL NOT NULL,
            embedding BLOB NOT NULL);
        INSERT INTO memories(npc_id, text, kind, importance, created_s, last_access_s, embedding)
            VALUES ('bram', 'old memory', 'observation', 5, 0, 0, zeroblob(1024));
    """)
    old.close()
    store = MemoryStore(path)
    assert [m.text for m in store.all("bram")] == ["old memory"]
    assert store.database.schema_version() == LATEST
    store.close()


def test_replicas_share_one_postgres(postgres_server):
    url = postgres_server.url_for_new_schema()
    stores: list[MemoryStore] = []
    errors: list[BaseException] = []

    def start_replica() -> None:   # replicas starting together: the advisory lock makes one of them migrate
        try:
            stores.append(MemoryStore(url))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
    threads = [threading.Thread(target=start_replica) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(stores) == 4
    a, b = stores[0], stores[1]
    a.add("bram", "the player paid for the apples", kind="observation", importance=6, game_time_s=10.0)
    b.record_escalation(EscalationRecord(1.7e9, 10.0, "bram", "local", "rules", "ab" * 32, "novelty", 3.5,
                                         100, 20, 0.001, 1, "ok"))
    assert [m.text for m in b.all("bram")] == ["the player paid for the apples"]
    assert a.escalations("bram")[0].wall_time_unix == 1.7e9      # 64-bit floats, not PostgreSQL's REAL
    assert b.retrieve("bram", "who paid for apples?", now_s=20.0)[0].importance == 6
    for store in stores:
        store.close()


def test_unreachable_postgres_is_unavailable_without_the_password():
    with pytest.raises(Unavailable) as err:
        open_database("postgresql://npc:s3cret@127.0.0.1:1/npcrt")
    assert "s3cret" not in str(err.value) and "npc:***@127.0.0.1:1" in str(err.value)


def test_a_closed_database_answers_unavailable(tmp_path):
    store = MemoryStore(tmp_path / "m.sqlite3")
    store.close()
    with pytest.raises(Unavailable):
        store.add("x", "y", kind="observation", importance=1, game_time_s=0)


def test_describe_masks_only_passwords():
    assert describe("postgresql://u:p@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert describe("postgresql://u@h/db") == "postgresql://u@h/db"
    assert describe("npcrt-data/memory.sqlite3") == "npcrt-data/memory.sqlite3"
