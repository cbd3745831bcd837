"""A bug while the engine thread steps the streams ends those streams with INTERNAL and the server goes on
(before: the engine thread died and every later request hung)."""

from __future__ import annotations

import pytest

from npc_runtime.errors import InternalError
from npc_runtime.sessions import EngineFacade, GenerateRequest, OpenRequest, TickRequest, Turn


async def test_a_failing_step_ends_the_streams_not_the_engine_thread(tiny_engine_factory, caplog):
    engine = tiny_engine_factory()
    name = engine.list_models()[0].name
    real_step, calls = engine.step, {"n": 0}

    def step_failing_once(caps):      # a bug at the edge: the second round of decoding raises
        calls["n"] += 1
        if calls["n"] == 2:
            raise ZeroDivisionError("a bug in a decoding step")
        return real_step(caps)
    engine.step = step_failing_once
    facade = EngineFacade(engine)
    try:
        opened = await facade.open(OpenRequest(model=name, prompt="Hello traveller"))
        stream = await facade.generate(GenerateRequest(session_id=opened.session_id, turns=(Turn(max_tokens=8),)))
        with pytest.raises(InternalError, match="the server goes on"):
            async for _ in stream:
                pass
        assert "a bug in a decoding step" in caplog.text or "step_streams failed" in caplog.text
        # the engine thread is alive: new work is served
        again = await facade.open(OpenRequest(model=name, prompt="The blacksmith sells"))
        (r,) = await facade.tick([TickRequest(again.session_id, 1000, 3)])
        assert r.error is None and len(r.token_ids) == 3
    finally:
        await facade.shutdown()
