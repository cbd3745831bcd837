"""Tiered KV (sessions/parking.py): idle sessions leave the KV pool for host memory, then disk, and come back
on their next request exactly where they were (same tokens as if never parked), reporting the restore in
TickStats; a full pool parks its least recently used idle session instead of refusing a new one."""

from __future__ import annotations

import pytest

from npc_runtime.config import SessionLimits
from npc_runtime.errors import FailedPrecondition, ResourceExhausted
from npc_runtime.sessions import TickRequest

PROMPTS = ["Hello traveller, welcome to", "The blacksmith sells", "I am the guard of the northern gate.",
           "Would you like to trade?", "The dragon"]


def tick(engine, sid, n):
    (r,) = engine.tick([TickRequest(sid, 5000, n)])
    assert not r.error, r.error
    return r


def test_parked_sessions_resume_exactly(tiny_engine_factory, tmp_path):
    reference = tiny_engine_factory(max_sessions=len(PROMPTS))
    name = reference.list_models()[0].name
    limits = SessionLimits(max_new_tokens=64)
    expected = {}
    for p in PROMPTS:
        sid = reference.open_session(name, prompt=p, limits=limits)
        expected[p] = tick(reference, sid, 6).token_ids + tick(reference, sid, 6).token_ids

    # two slots, five conversations: every open / return parks the least recently used idle session
    e = tiny_engine_factory(max_sessions=2, park_after_s=3600, park_dir=str(tmp_path / "parked"),
                            park_host_bytes=1)   # a 1-byte host budget: everything parked goes on to disk
    sids = {p: e.open_session(name, prompt=p, limits=limits) for p in PROMPTS}
    first = {p: tick(e, sids[p], 6) for p in PROMPTS}
    assert e.parked_sessions["disk"] == len(PROMPTS) - 2 and e.open_sessions == 2
    second = {p: tick(e, sids[p], 6) for p in PROMPTS}
    for p in PROMPTS:
        assert first[p].token_ids + second[p].token_ids == expected[p]
    restored = [second[p].stats for p in PROMPTS if second[p].stats.restored_from]
    assert restored and all(st.restored_from == "disk" and st.restore_ms > 0 for st in restored)


def test_idle_sessions_park_in_host_memory_then_expire(tiny_engine_factory):
    e = tiny_engine_factory(max_sessions=4, park_after_s=10, idle_timeout_s=100)
    name = e.list_models()[0].name
    sid = e.open_session(name, prompt=PROMPTS[0], limits=SessionLimits(max_new_tokens=64))
    tick(e, sid, 3)
    now = e._sessions[sid].last_active   # noqa: SLF001 - drive the clock of the idle sweep
    assert e.evict_idle(now + 5) == [] and e.parked_sessions == {"host": 0, "disk": 0}
    assert e.evict_idle(now + 11) == [] and e.parked_sessions == {"host": 1, "disk": 0}
    r = tick(e, sid, 3)
    assert r.stats.restored_from == "host" and len(r.token_ids) == 3
    tick(e, sid, 1)
    assert e.evict_idle(now + 20) == [] and e.parked_sessions["host"] == 1
    assert e.evict_idle(now + 1000) == [sid] and e.parked_sessions == {"host": 0, "disk": 0}
    (gone,) = e.tick([TickRequest(sid, 5000, 1)])
    assert isinstance(gone.error, FailedPrecondition) and "evicted" in str(gone.error)


def test_without_tiered_kv_a_full_pool_refuses(tiny_engine_factory):
    e = tiny_engine_factory(max_sessions=1)
    name = e.list_models()[0].name
    e.open_session(name, prompt=PROMPTS[0])
    with pytest.raises(ResourceExhausted):
        e.open_session(name, prompt=PROMPTS[1])
