"""EngineFacade's served paths: stream chunks go back once per engine step per event loop and a busy consumer
gets everything that arrived as one chunk (same tokens, turns kept apart); a Tick's budget counts from when
the caller received it (time queued for the engine thread counts) and never turns into an error."""

from __future__ import annotations

import asyncio
import time

from npc_runtime.config import SessionLimits
from npc_runtime.decode.sampling import SamplingParams
from npc_runtime.errors import DeadlineExceeded, InvalidArgument
from npc_runtime.sessions import (EngineFacade, FinishReason, GenerateRequest, OpenRequest, TickRequest, Turn)

PROMPTS = ["Hello traveller", "The blacksmith sells", "The dragon", "Would you like", "I am the guard"]


def alone(factory, prompt: str, n: int) -> list[int]:
    e = factory()
    sid = e.open_session(e.list_models()[0].name, prompt=prompt)
    return [t for c in e.generate(sid, max_tokens=n) for t in c.token_ids]


async def collect(stream) -> list[int]:
    return [t async for c in stream for t in c.token_ids]


async def wait_streams_done(facade: EngineFacade) -> None:
    """Until the engine thread has no stream left (every chunk sent), without reading any stream."""
    while facade._streams:   # noqa: SLF001 - a test of the engine thread's bookkeeping
        await asyncio.sleep(0.01)


async def test_a_busy_consumer_gets_the_tokens_since_its_last_read_as_one_chunk(tiny_engine_factory):
    expected = alone(tiny_engine_factory, PROMPTS[0], 10)
    facade = EngineFacade(tiny_engine_factory())
    stream = await facade.generate(GenerateRequest(open=OpenRequest(prompt=PROMPTS[0]), turns=(Turn(max_tokens=10),)))
    await wait_streams_done(facade)   # the engine produced every token while nobody read
    chunks = [c async for c in stream]
    await facade.shutdown()
    assert len(chunks) == 1
    assert chunks[0].token_ids == expected
    assert chunks[0].finished and chunks[0].finish_reason is FinishReason.LENGTH


async def test_coalescing_keeps_turns_apart_and_per_token_data_aligned(tiny_engine_factory):
    facade = EngineFacade(tiny_engine_factory())
    stream = await facade.generate(GenerateRequest(
        open=OpenRequest(prompt=PROMPTS[1], sampling=SamplingParams(logprobs=True, ignore_eos=True),
                         limits=SessionLimits(max_new_tokens=40)),
        turns=(Turn(max_tokens=4), Turn(input=" and then", max_tokens=5))))
    await wait_streams_done(facade)
    chunks = [c async for c in stream]
    await facade.shutdown()
    assert [c.turn for c in chunks] == [0, 1]
    assert [len(c.token_ids) for c in chunks] == [4, 5]
    assert [c.finish_reason for c in chunks] == [FinishReason.LENGTH, FinishReason.LENGTH]
    assert all(len(c.logprobs) == len(c.token_ids) for c in chunks)


async def test_one_loop_wake_up_per_engine_step_for_all_streams(tiny_engine_factory):
    expected = [alone(tiny_engine_factory, p, 12) for p in PROMPTS]
    facade = EngineFacade(tiny_engine_factory())
    loop = asyncio.get_running_loop()
    wakeups = 0
    original = loop.call_soon_threadsafe

    def counting(callback, *args, **kwargs):
        nonlocal wakeups
        wakeups += getattr(callback, "__name__", "") == "_deliver"   # the streams' deliveries only
        return original(callback, *args, **kwargs)

    loop.call_soon_threadsafe = counting
    try:
        streams = [await facade.generate(GenerateRequest(open=OpenRequest(prompt=p), turns=(Turn(max_tokens=12),)))
                   for p in PROMPTS]
        got = await asyncio.gather(*(collect(s) for s in streams))
    finally:
        del loop.call_soon_threadsafe
    await facade.shutdown()
    assert list(got) == expected   # batched, coalesced: the same greedy tokens as alone
    tokens = sum(len(g) for g in got)
    # at most one delivery per engine step for all five streams (was one per chunk and stream: > tokens)
    assert 0 < wakeups <= facade.rounds + 1 < tokens


async def test_a_tick_whose_budget_was_spent_before_it_started_runs_without_error(tiny_engine_factory):
    facade = EngineFacade(tiny_engine_factory())
    sid = (await facade.open(OpenRequest(prompt=PROMPTS[2], limits=SessionLimits(max_new_tokens=50)))).session_id
    await facade.tick([TickRequest(sid, 1e4, 1)])   # prefill
    # received a whole second ago with a 5 ms budget: nothing is left of it, yet no entry fails
    late = await facade.tick([TickRequest(sid, 5.0, 8)], received=time.perf_counter() - 1.0)
    assert late[0].error is None and len(late[0].token_ids) <= 1
    # received now with a large budget: the tick runs as asked
    fresh = await facade.tick([TickRequest(sid, 1e4, 3)], received=time.perf_counter(), reply_s=0.001)
    assert fresh[0].error is None and len(fresh[0].token_ids) == 3
    await facade.shutdown()


async def test_a_refused_budget_fails_its_entry_alone_and_the_call_deadline_still_applies(tiny_engine_factory):
    facade = EngineFacade(tiny_engine_factory())
    sids = [(await facade.open(OpenRequest(prompt=p, limits=SessionLimits(max_new_tokens=50)))).session_id
            for p in PROMPTS[:2]]
    # a negative budget is the entry's own error: it does not shrink the other entry's budget to nothing
    results = await facade.tick([TickRequest(sids[0], -5.0, 2), TickRequest(sids[1], 1e4, 2)],
                                received=time.perf_counter())
    assert isinstance(results[0].error, InvalidArgument) and "budget_ms" in str(results[0].error)
    assert results[1].error is None and len(results[1].token_ids) == 2
    # the call's own deadline (gRPC's) passed: every entry fails with DeadlineExceeded, as before
    late = await facade.tick([TickRequest(sids[1], 1e4, 2)], deadline=time.perf_counter() - 0.01,
                             received=time.perf_counter())
    assert isinstance(late[0].error, DeadlineExceeded)
    await facade.shutdown()


def test_paced_streams_send_fewer_chunks_but_never_hold_the_first_or_the_last(tiny_engine_factory):
    """stream_interval_s ([server] stream_interval_ms): tokens decoded within the interval come out together;
    the first chunk goes at once, a chunk that ends the turn goes at once, nothing is lost or reordered."""
    want = alone(tiny_engine_factory, PROMPTS[0], 24)

    async def run(interval_s: float):
        facade = EngineFacade(tiny_engine_factory())
        facade.stream_interval_s = interval_s
        started = time.perf_counter()
        stream = await facade.generate(GenerateRequest(
            open=OpenRequest(prompt=PROMPTS[0], sampling=SamplingParams(ignore_eos=True)),
            turns=(Turn(max_tokens=24),)))
        chunks, first_s = [], None
        async for chunk in stream:
            first_s = first_s if first_s is not None else time.perf_counter() - started
            chunks.append(chunk)
        total_s = time.perf_counter() - started
        await facade.shutdown()
        return chunks, first_s, total_s

    paced, first_s, total_s = asyncio.run(run(5.0))
    assert [t for c in paced for t in c.token_ids] == want
    assert paced[-1].finished and paced[-1].finish_reason is FinishReason.LENGTH
    assert len(paced) <= 2          # the first chunk at once, then everything else when the turn ended (one
                                    # chunk when the reader only started after the turn had ended)
    assert first_s < 2.0 and total_s < 2.5, (first_s, total_s)   # far below the 5 s interval: neither was held
    unpaced, _, _ = asyncio.run(run(0.0))   # (its chunk count depends on timing: a late reader merges them)
    assert [t for c in unpaced for t in c.token_ids] == want
