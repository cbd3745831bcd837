"""AsyncEngine: concurrent generates share forward passes; disconnect frees the session's work."""

from __future__ import annotations

import asyncio

import pytest

from npc_runtime.sessions import TickRequest
from npc_runtime.sessions.async_engine import AsyncEngine

PROMPTS = ["Hello traveller", "The blacksmith sells", "The dragon", "Would you like", "I am the guard"]


async def collect(ae, sid, n):
    return [t async for chunk in ae.generate(sid, max_tokens=n) for t in chunk.token_ids]


async def test_concurrent_generates_are_batched_and_match_alone(tiny_engine_factory):
    e = tiny_engine_factory()
    name = e.list_models()[0].name
    expected = []
    for p in PROMPTS:
        sid = e.open_session(name, prompt=p)
        expected.append([t for c in e.generate(sid, max_tokens=12) for t in c.token_ids])
        e.close_session(sid)
    ae = AsyncEngine(tiny_engine_factory())
    sids = [await ae.open_session(name, prompt=p) for p in PROMPTS]
    got = await asyncio.gather(*(collect(ae, s, 12) for s in sids))
    stats = await ae.stats()
    await ae.shutdown()
    assert list(got) == expected
    assert stats.decode_rows > stats.steps   # the streams shared forward passes


async def test_disconnect_frees_the_session(tiny_engine_factory):
    ae = AsyncEngine(tiny_engine_factory())
    name = (await ae.list_models())[0].name
    sid = await ae.open_session(name, prompt=PROMPTS[0])
    stream = ae.generate(sid, max_tokens=100)
    await stream.__anext__()
    await stream.aclose()                   # the client went away
    for _ in range(50):
        info = await ae.session_info(sid)
        if info["status"] == "finished":
            break
        await asyncio.sleep(0.01)
    assert info["finish_reason"] == "cancelled"
    results = await ae.tick([TickRequest(sid, 1e6, 2, new_input=" again")])   # the session is reusable
    assert len(results[0].token_ids) == 2
    await ae.shutdown()


async def test_errors_propagate_and_shutdown(tiny_engine_factory):
    from npc_runtime.errors import NotFound, Unavailable
    ae = AsyncEngine(tiny_engine_factory())
    assert isinstance((await ae.tick([TickRequest("nope", 1, 1)]))[0].error, NotFound)
    assert await ae.run(lambda engine: engine.open_sessions) == 0
    with pytest.raises(NotFound):
        await ae.run(lambda engine: engine.session_info("nope"))
    with pytest.raises(NotFound):
        async for _ in ae.generate("nope", max_tokens=3):
            pass
    await ae.shutdown(drain=False)
    with pytest.raises(Unavailable):
        await ae.open_session("x")
