"""Memory: WAL mode, retrieval ranking (recency, importance, relevance), token budget, reflection, and
nothing lost when the process is killed with SIGTERM. The store tests run on SQLite and on PostgreSQL
(`db_location` in conftest.py)."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

import pytest

from npc_runtime.agent.memory import MemoryStore, RetrievalWeights, estimate_tokens
from npc_runtime.agent.types import Event, Percept

from .conftest import make_runtime, register_guard


@pytest.fixture
def memory(db_location):
    """This module's store: once on SQLite, once on PostgreSQL."""
    store = MemoryStore(db_location)
    yield store
    store.close()


@pytest.fixture
def store_with(db_location, request):
    """A second store factory over fresh locations of the same backend, with other retrieval weights."""
    opened = []

    def make(weights: RetrievalWeights) -> MemoryStore:
        location = (request.getfixturevalue("postgres_server").url_for_new_schema()
                    if db_location.startswith("postgresql") else ":memory:")
        opened.append(MemoryStore(location, weights=weights))
        return opened[-1]
    yield make
    for store in opened:
        store.close()


def test_wal_mode_on_disk(tmp_path):
    store = MemoryStore(tmp_path / "m.sqlite3")
    assert store.journal_mode == "wal"
    store.close()


def test_relevance_importance_recency_rank(memory, store_with):
    memory.add("m", "The player stole an apple from my stall", kind="event:theft", importance=7, game_time_s=0)
    memory.add("m", "It rained all morning", kind="observation", importance=1, game_time_s=0)
    memory.add("m", "The harvest festival is next week", kind="observation", importance=3, game_time_s=0)
    only_relevance = store_with(RetrievalWeights(recency=0, importance=0, relevance=1))
    for row in memory.all("m"):
        only_relevance.add("m", row.text, kind=row.kind, importance=row.importance, game_time_s=0)
    top = only_relevance.retrieve("m", "did someone steal apples from the stall?", now_s=10)[0]
    assert "stole an apple" in top.text
    only_importance = store_with(RetrievalWeights(recency=0, importance=1, relevance=0))
    for row in memory.all("m"):
        only_importance.add("m", row.text, kind=row.kind, importance=row.importance, game_time_s=0)
    assert [m.importance for m in only_importance.retrieve("m", "x", now_s=10)] == [7, 3, 1]
    # recency: the same memory, one old and one fresh
    rec = store_with(RetrievalWeights(recency=1, importance=0, relevance=0))
    rec.add("m", "old news", kind="observation", importance=5, game_time_s=0)
    rec.add("m", "fresh news", kind="observation", importance=5, game_time_s=200 * 3600)
    assert rec.retrieve("m", "news", now_s=200 * 3600)[0].text == "fresh news"


def test_token_budget_and_access_update(memory):
    for i in range(20):
        memory.add("m", f"memory number {i} " + "word " * 10, kind="observation", importance=5, game_time_s=0)
    got = memory.retrieve("m", "memory", now_s=3600, token_budget=50)
    assert got and sum(estimate_tokens(m.text) for m in got) <= 50
    touched = {m.id for m in got}
    assert all(m.last_access_s == 3600 for m in memory.all("m") if m.id in touched)


def test_perceive_writes_memories_and_reflects(memory):
    rt = make_runtime(memory, reflection_threshold=20)
    register_guard(rt)
    for t in range(4):
        rt.step("guard-01", Percept(game_time_s=float(t), values={"player_distance": 10}),
                [Event("theft", "The player stole bread from the baker.")])
    kinds = [m.kind for m in memory.all("guard-01")]
    assert kinds.count("event:theft") == 4
    reflections = [m for m in memory.all("guard-01") if m.kind == "reflection"]
    assert reflections and "stolen" in reflections[0].text
    assert rt.stats.reflections >= 1


WRITER = textwrap.dedent("""
    import sys, time
    from npc_runtime.agent.memory import MemoryStore
    store = MemoryStore(sys.argv[1])
    i = 0
    while True:
        store.add("npc", f"memory {i}", kind="observation", importance=3, game_time_s=float(i))
        i += 1
        print(i, flush=True)      # i memories are committed
        time.sleep(0.0005)
""")


def test_sigterm_loses_nothing(tmp_path):
    db = tmp_path / "mem.sqlite3"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(db)], stdout=subprocess.PIPE, text=True)
    try:
        while int(proc.stdout.readline()) < 200:
            pass
        proc.send_signal(signal.SIGTERM)
        rest = proc.stdout.read().split()
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGTERM
    acknowledged = int(rest[-1]) if rest else 200
    store = MemoryStore(db)
    rows = store.all("npc")
    assert len(rows) >= acknowledged
    # every id the writer committed is there, contiguous: no torn or lost write
    assert [r.text for r in rows] == [f"memory {i}" for i in range(len(rows))]
    store.close()

