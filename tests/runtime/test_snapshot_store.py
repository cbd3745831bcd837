"""Fleet takeover (sessions/snapshot_store.py): a session's snapshot is written behind when a turn ends; another
engine sharing the store (a directory, or a real Redis) takes the session over on its next request and
continues with the tokens the first engine would have produced; closing deletes it everywhere."""

from __future__ import annotations

import os

import pytest

from npc_runtime.config import SessionLimits
from npc_runtime.errors import NotFound
from npc_runtime.sessions import TickRequest, snapshot
from npc_runtime.sessions.snapshot_store import DirectoryStore, SnapshotWriter, open_snapshot_store
from tests.helpers.redis_server import RedisServer, find_redis

PROMPT = "I am the guard of the northern gate."


@pytest.fixture(params=["directory", "redis"])
def store_location(request, tmp_path):
    if request.param == "directory":
        yield str(tmp_path / "sessions")
        return
    if find_redis() is None:
        if os.environ.get("NPCRT_REQUIRE_SERVICES") == "1":
            pytest.fail("NPCRT_REQUIRE_SERVICES=1 but redis-server is not installed")
        pytest.skip("redis-server is not installed")
    server = RedisServer().start()
    yield server.url
    server.stop()


def turn(engine, sid, new_input=None):
    tokens, first = [], True
    while True:
        (r,) = engine.tick([TickRequest(sid, 5000, 64, new_input=new_input if first else None)])
        first = False
        assert not r.error, r.error
        tokens += r.token_ids
        if r.finished:
            return tokens, r.stats


def test_another_engine_takes_a_session_over(tiny_engine_factory, store_location):
    a, b = tiny_engine_factory(), tiny_engine_factory()
    writer_a = a.attach_snapshot_store(open_snapshot_store(store_location, ttl_s=600))
    writer_b = b.attach_snapshot_store(open_snapshot_store(store_location, ttl_s=600))
    name = a.list_models()[0].name
    sid = a.open_session(name, prompt=PROMPT, limits=SessionLimits(max_new_tokens=6))
    turn(a, sid)
    assert writer_a.flush() and writer_a.written == 1
    second_on_b, stats = turn(b, sid, new_input=" Who goes there?")      # a is "gone": b restores it
    assert stats.restored_from == "store" and stats.restore_ms > 0
    second_on_a, _ = turn(a, sid, new_input=" Who goes there?")          # what a would have said
    assert second_on_b == second_on_a and len(second_on_b) == 6
    assert writer_a.flush()                                              # (a's late write lands first)
    b.close_session(sid)
    assert writer_b.flush()
    fresh = tiny_engine_factory()
    fresh.attach_snapshot_store(open_snapshot_store(store_location, ttl_s=600))
    with pytest.raises(NotFound):
        fresh.session_info(sid)
    for w in (writer_a, writer_b):
        w.close()


def test_the_writer_is_bounded_and_survives_a_failing_store(tmp_path):
    class Broken(DirectoryStore):
        def put(self, session_id, data):
            raise OSError("disk full")

    writer = SnapshotWriter(Broken(tmp_path), max_pending=2)
    for i in range(50):
        writer.put(f"s{i}", b"x")
    assert writer.flush()
    assert writer.failed >= 1 and writer.failed + writer.dropped == 50 and writer.written == 0
    writer.put("again", b"x")                      # still running after failures
    assert writer.flush() and writer.failed + writer.dropped == 51
    writer.close()


def test_docs_deploy_figures_come_from_the_committed_results():
    from bench import deploy_report
    assert deploy_report.main(["--check"]) == 0, "run python -m bench.deploy_report"


def test_a_session_a_stream_opened_for_itself_gets_no_snapshot(tiny_engine_factory, tmp_path):
    """A chat completion's session lives for its request (the stream opens and closes it): a takeover snapshot
    would be written for nobody, and in a fleet cost a Redis write and delete per request. Sessions kept
    open (OpenSession, then turns) are still written when a turn ends."""
    import asyncio

    from npc_runtime.sessions.facade import EngineFacade
    from npc_runtime.sessions.requests import GenerateRequest, OpenRequest, Turn

    class Counting(DirectoryStore):
        puts = deletes = 0

        def put(self, session_id, data):
            Counting.puts += 1
            super().put(session_id, data)

        def delete(self, session_id):
            Counting.deletes += 1
            super().delete(session_id)

    engine = tiny_engine_factory()
    writer = engine.attach_snapshot_store(Counting(tmp_path))
    facade = EngineFacade(engine)

    async def run():
        # stream-owned sessions: a turn ended by the stream's max_tokens, and one the engine ends itself (as an
        # EOS or a stop string would: here the session's own max_new_tokens), which is where snapshots are taken
        for request in (GenerateRequest(open=OpenRequest(prompt=PROMPT), turns=(Turn(max_tokens=4),)),
                        GenerateRequest(open=OpenRequest(prompt=PROMPT, limits=SessionLimits(max_new_tokens=3)),
                                        turns=(Turn(),))):
            stream = await facade.generate(request)
            chunks = [c async for c in stream]
            assert chunks and chunks[-1].finished
        opened = await facade.open(OpenRequest(prompt=PROMPT, limits=SessionLimits(max_new_tokens=3)))
        stream = await facade.generate(GenerateRequest(session_id=opened.session_id, turns=(Turn(),)))
        assert [c async for c in stream]
        await facade.list_models()   # a later command: the engine thread has taken the turn's snapshot by now
        assert writer.flush()
        assert (Counting.puts, Counting.deletes) == (1, 0)   # the kept session's turn only
        await facade.close(opened.session_id)
        await facade.shutdown()

    asyncio.run(run())
    assert writer.flush()
    assert (Counting.puts, Counting.deletes) == (1, 1)
    writer.close()


def test_a_finished_turn_is_snapshotted_after_its_tick_answers(tiny_engine_factory, tmp_path):
    """Behind the facade the KV copy of a turn's snapshot is taken after the Tick has its answer (a turn that
    ends must not make its frame's Tick late), and before any later command can change the session."""
    import asyncio

    from npc_runtime.sessions.facade import EngineFacade
    from npc_runtime.sessions.requests import OpenRequest

    engine = tiny_engine_factory()
    engine.defer_snapshots = True
    writer = engine.attach_snapshot_store(DirectoryStore(tmp_path))
    sid = engine.open_session(engine.list_models()[0].name, prompt=PROMPT, limits=SessionLimits(max_new_tokens=4))
    tokens, _ = turn(engine, sid)
    assert writer.flush() and writer.written == 0            # held back...
    engine.write_deferred_snapshots()
    assert writer.flush() and writer.written == 1            # ...until asked for
    engine.write_deferred_snapshots()
    assert writer.flush() and writer.written == 1            # once

    facade = EngineFacade(tiny_engine_factory())
    store = DirectoryStore(tmp_path / "facade")
    facade_writer = facade.engine.attach_snapshot_store(store)

    async def run():
        opened = await facade.open(OpenRequest(prompt=PROMPT, limits=SessionLimits(max_new_tokens=3)))
        while True:
            (r,) = await facade.tick([TickRequest(opened.session_id, 5000, 64)])
            if r.finished:
                break
        ended_at = r.stats.context_tokens
        # the next command may start a new turn at once: the snapshot taken is still the ended turn's
        (r,) = await facade.tick([TickRequest(opened.session_id, 5000, 1, new_input=" And then?")])
        assert not r.error
        await facade.shutdown()
        return opened.session_id, ended_at

    session_id, ended_at = asyncio.run(run())
    assert facade_writer.flush() and facade_writer.written == 1
    assert len(snapshot.decode(store.get(session_id)).tokens) == ended_at
    writer.close()
    facade_writer.close()
