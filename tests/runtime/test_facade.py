"""EngineFacade: one thread hop per operation, concurrent generates batched, disconnect frees the work,
multi-turn streams on a session the stream opened, typed finish reasons."""

from __future__ import annotations

import asyncio

import pytest

from npc_runtime.config import SessionLimits
from npc_runtime.decode.constraints import ConstraintSpec
from npc_runtime.errors import InvalidArgument, NotFound, Unavailable
from npc_runtime.sessions import (EngineFacade, FinishReason, GenerateRequest, OpenRequest, TickRequest, Turn)

PROMPTS = ["Hello traveller", "The blacksmith sells", "The dragon", "Would you like", "I am the guard"]


async def collect(facade, sid, n):
    stream = await facade.generate(GenerateRequest(session_id=sid, turns=(Turn(max_tokens=n),)))
    return [t async for chunk in stream for t in chunk.token_ids]


async def test_concurrent_generates_are_batched_and_match_alone(tiny_engine_factory):
    e = tiny_engine_factory()
    name = e.list_models()[0].name
    expected = []
    for p in PROMPTS:
        sid = e.open_session(name, prompt=p)
        expected.append([t for c in e.generate(sid, max_tokens=12) for t in c.token_ids])
        e.close_session(sid)
    facade = EngineFacade(tiny_engine_factory())
    sids = [(await facade.open(OpenRequest(model=name, prompt=p))).session_id for p in PROMPTS]
    got = await asyncio.gather(*(collect(facade, s, 12) for s in sids))
    stats = await facade.stats()
    await facade.shutdown()
    assert list(got) == expected
    assert stats.decode_rows > stats.steps   # the streams shared forward passes
    assert facade.rounds < sum(len(g) for g in got)


async def test_one_thread_hop_per_operation(tiny_engine_factory):
    facade = EngineFacade(tiny_engine_factory())
    hops = facade.submissions
    opened = await facade.open(OpenRequest(prompt=PROMPTS[0], limits=SessionLimits(max_new_tokens=40)))
    assert dict(hops) == {"open": 1}
    # a tick with a new turn, a bad entry and a good one: one submission, per-entry errors
    results = await facade.tick([TickRequest(opened.session_id, 1e6, 2), TickRequest("ghost", 1e6, 2)])
    assert hops["tick"] == 1 and len(results[0].token_ids) == 2 and isinstance(results[1].error, NotFound)
    # a generate with a new turn and a constraint (was: append_input + start, two hops)
    stream = await facade.generate(GenerateRequest(session_id=opened.session_id, turns=(
        Turn(input=" Choose:", constraint=ConstraintSpec.one_of(["[greet]", "[trade]"])),)))
    assert "".join([c.text_delta async for c in stream]) in ("[greet]", "[trade]")
    assert hops["generate"] == 1
    # a whole dialogue reply: open + a constrained tag turn + a free turn + close = ONE submission
    before = sum(hops.values())
    stream = await facade.generate(GenerateRequest(
        open=OpenRequest(prompt=PROMPTS[1], constraint=ConstraintSpec.one_of(["[a]", "[b]"]),
                         limits=SessionLimits(max_new_tokens=30)),
        turns=(Turn(max_tokens=8), Turn(input=[], max_tokens=5))))
    chunks = [c async for c in stream]
    assert sum(hops.values()) == before + 1
    assert {c.turn for c in chunks} == {0, 1}
    assert "".join(c.text_delta for c in chunks if c.turn == 0) in ("[a]", "[b]")
    assert sum(len(c.token_ids) for c in chunks if c.turn == 1) == 5
    assert [c.finish_reason for c in chunks if c.finished] == [FinishReason.STOP, FinishReason.LENGTH]
    assert facade.active_sessions() == 1                      # the stream closed the session it opened
    assert await facade.cancel(opened.session_id) is False    # one hop; no turn was running
    assert await facade.close(opened.session_id) > 0
    assert hops["cancel"] == 1 and hops["close"] == 1 and "abandon" not in hops
    await facade.shutdown()


async def test_finish_reasons_are_typed(tiny_engine_factory):
    facade = EngineFacade(tiny_engine_factory())
    stream = await facade.generate(GenerateRequest(open=OpenRequest(prompt=PROMPTS[2]), turns=(Turn(max_tokens=3),)))
    last = [c async for c in stream][-1]
    assert last.finished and last.finish_reason is FinishReason.LENGTH and isinstance(last.finish_reason, FinishReason)
    assert last.finish_reason != "length"                     # an enum, not a string
    opened = await facade.open(OpenRequest(prompt=PROMPTS[2]))
    stream = await facade.generate(GenerateRequest(session_id=opened.session_id))
    await stream.__anext__()
    assert await facade.cancel(opened.session_id) is True
    rest = [c async for c in stream]
    assert rest[-1].finished and rest[-1].finish_reason is FinishReason.CANCELLED
    (result,) = await facade.tick([TickRequest(opened.session_id, 1e6, 1)])
    assert result.error is not None and result.finish_reason is None
    await facade.shutdown()


async def test_disconnect_frees_the_session(tiny_engine_factory):
    facade = EngineFacade(tiny_engine_factory())
    sid = (await facade.open(OpenRequest(prompt=PROMPTS[0]))).session_id
    stream = await facade.generate(GenerateRequest(session_id=sid, turns=(Turn(max_tokens=100),)))
    await stream.__anext__()
    await stream.aclose()                   # the client went away
    for _ in range(50):
        info = await facade.session_info(sid)
        if info["status"] == "finished":
            break
        await asyncio.sleep(0.01)
    assert info["finish_reason"] == "cancelled"
    results = await facade.tick([TickRequest(sid, 1e6, 2, new_input=" again")])   # the session is reusable
    assert len(results[0].token_ids) == 2
    # a stream that opened its own session closes it when abandoned
    stream = await facade.generate(GenerateRequest(open=OpenRequest(prompt=PROMPTS[1])))
    await stream.__anext__()
    assert facade.active_sessions() == 2
    await stream.aclose()
    for _ in range(50):
        if facade.active_sessions() == 1:
            break
        await asyncio.sleep(0.01)
    assert facade.active_sessions() == 1
    await facade.shutdown()


async def test_errors_propagate_and_shutdown(tiny_engine_factory):
    facade = EngineFacade(tiny_engine_factory())
    assert isinstance((await facade.tick([TickRequest("nope", 1, 1)]))[0].error, NotFound)
    with pytest.raises(NotFound):
        await facade.session_info("nope")
    with pytest.raises(NotFound):
        await facade.generate(GenerateRequest(session_id="nope"))
    with pytest.raises(InvalidArgument, match=r"sampling.temperature must be a finite number in \[0, 5\]"):
        await facade.open(OpenRequest(sampling=__import__("npc_runtime.decode.sampling", fromlist=["x"])
                                      .SamplingParams(temperature=9.0)))
    with pytest.raises(InvalidArgument, match=r"turns\[1\].max_tokens"):   # every turn checked before any runs
        await facade.generate(GenerateRequest(open=OpenRequest(prompt="x"), turns=(Turn(), Turn(input="y", max_tokens=0))))
    assert facade.active_sessions() == 0
    await facade.shutdown(drain=False)
    with pytest.raises(Unavailable):
        await facade.open(OpenRequest())


async def test_closing_a_finished_stream_leaves_the_next_one_alone(tiny_engine_factory):
    facade = EngineFacade(tiny_engine_factory())
    sid = (await facade.open(OpenRequest(prompt=PROMPTS[3]))).session_id
    first = await facade.generate(GenerateRequest(session_id=sid, turns=(Turn(max_tokens=2),)))
    while not (await first.__anext__()).finished:   # stop at the last chunk, before the end marker
        pass
    second = await facade.generate(GenerateRequest(session_id=sid, turns=(Turn(input=" more", max_tokens=6),)))
    await first.aclose()                            # late: must not cancel the second stream's turn
    chunks = [c async for c in second]
    assert sum(len(c.token_ids) for c in chunks) == 6 and chunks[-1].finish_reason is FinishReason.LENGTH
    await facade.shutdown()
