"""The engine on a real (tiny, random) ONNX Runtime package."""

from __future__ import annotations

import json

import pytest

from npc_runtime.config import SessionLimits
from npc_runtime.decode.constraints import ConstraintSpec
from npc_runtime.decode.sampling import SamplingParams
from npc_runtime.errors import (AlreadyExists, FailedPrecondition, InvalidArgument, NotFound,
                                ResourceExhausted)
from npc_runtime.sessions import FinishReason, TickRequest

PROMPTS = ["Hello traveller, welcome to", "The blacksmith sells", "I am the guard of the northern gate.",
           "Would you like to trade?", "The dragon"]


def generate_ids(engine, sid, n):
    return [t for chunk in engine.generate(sid, max_tokens=n) for t in chunk.token_ids]


def test_batched_greedy_equals_alone(tiny_engine_factory):
    alone = []
    for prompt in PROMPTS:
        e = tiny_engine_factory(max_sessions=1)
        alone.append(generate_ids(e, e.open_session(e.list_models()[0].name, prompt=prompt), 24))
    e = tiny_engine_factory()
    name = e.list_models()[0].name
    sids = [e.open_session(name, prompt=p) for p in PROMPTS]
    got = {s: [] for s in sids}
    # sessions join at different times and ask for different amounts: ragged, shifting batches
    for tick in range(40):
        active = sids[: 2 + tick // 3]
        results = e.tick([TickRequest(s, 1e6, 1 + (i + tick) % 3) for i, s in enumerate(active)
                          if len(got[s]) < 24])
        for r in results:
            got[r.session_id] += r.token_ids
    assert [got[s][:24] for s in sids] == alone
    assert e.stats().decode_rows > e.stats().steps   # decode passes really were batched


def test_seed_determinism_batched_or_alone(tiny_engine_factory):
    params = SamplingParams(temperature=0.9, top_k=40, top_p=0.95, repetition_penalty=1.2, seed=1234)
    e1 = tiny_engine_factory()
    name = e1.list_models()[0].name
    alone = generate_ids(e1, e1.open_session(name, prompt=PROMPTS[0], sampling=params), 20)
    e2 = tiny_engine_factory()
    a = e2.open_session(name, prompt=PROMPTS[0], sampling=params)
    b = e2.open_session(name, prompt=PROMPTS[1], sampling=SamplingParams(temperature=1.0, seed=5))
    got = []
    while len(got) < 20:
        got += e2.tick([TickRequest(a, 1e6, 20 - len(got)), TickRequest(b, 1e6, 3)])[0].token_ids
    assert got == alone


def test_tick_never_exceeds_max_tokens_and_budget_slices(engine, model_name):
    sids = [engine.open_session(model_name, prompt=p) for p in PROMPTS]
    for max_tokens in (0, 1, 3, 7):
        for r in engine.tick([TickRequest(s, 1e6, max_tokens) for s in sids]):
            assert len(r.token_ids) <= max_tokens and r.stats.context_tokens > 0
    # a zero budget runs nothing (the next step cannot fit) and says so
    r = engine.tick([TickRequest(sids[0], 0.0, 5)])[0]
    assert r.token_ids == [] and r.stats.budget_limited


def test_min_progress_mode_runs_one_step_over_budget(tiny_engine_factory):
    e = tiny_engine_factory(warmup=True, tick_min_progress=True)
    sid = e.open_session(e.list_models()[0].name, prompt=PROMPTS[0])
    results = [e.tick([TickRequest(sid, 0.0, 2)])[0] for _ in range(5)]
    # exactly one (the smallest) step per tick when nothing fits the budget: a prefill chunk, then decodes
    assert [r.stats.steps for r in results] == [1] * 5
    assert [len(r.token_ids) for r in results][1:] == [1] * 4


def test_cancel_and_finish_reasons(engine, model_name):
    sid = engine.open_session(model_name, prompt=PROMPTS[0], limits=SessionLimits(max_new_tokens=5))
    results = [engine.tick([TickRequest(sid, 1e6, 10)])[0]]
    assert results[0].finished and results[0].finish_reason is FinishReason.LENGTH and len(results[0].token_ids) == 5
    assert isinstance(engine.tick([TickRequest(sid, 1e6, 1)])[0].error, FailedPrecondition)
    engine.append_input(sid, " more")
    engine.tick([TickRequest(sid, 1e6, 1)])
    engine.cancel(sid)
    r = engine.tick([TickRequest(sid, 1e6, 1, new_input=" again")])[0]
    assert len(r.token_ids) == 1
    engine.cancel(sid)
    assert engine.session_info(sid)["finish_reason"] == "cancelled"


def test_idle_eviction(engine, model_name):
    sid = engine.open_session(model_name, prompt=PROMPTS[0], limits=SessionLimits(idle_timeout_s=5))
    keep = engine.open_session(model_name, prompt=PROMPTS[1])
    import time
    assert engine.evict_idle(now=time.monotonic() + 10) == [sid]
    gone = engine.tick([TickRequest(sid, 10, 1)])[0]
    assert isinstance(gone.error, FailedPrecondition) and "evicted" in str(gone.error)
    assert engine.tick([TickRequest(keep, 1e6, 1)])[0].token_ids


def test_prefix_cache_hit_gives_identical_output(tiny_engine_factory):
    persona = "You are Bram, the blacksmith of Oakvale. You sell swords, shields and armour. " * 2
    cold = tiny_engine_factory(prefix_cache_bytes=0, max_context=256)
    name = cold.list_models()[0].name
    expected = [generate_ids(cold, cold.open_session(name, prompt=persona + q), 16)
                for q in ("Player: hi", "Player: trade?")]
    warm = tiny_engine_factory(prefix_block_tokens=16, max_context=256)
    got = [generate_ids(warm, warm.open_session(name, prompt=persona + q), 16) for q in ("Player: hi", "Player: trade?")]
    stats = warm.stats()
    assert got == expected
    assert stats.prefix_cache_hit_tokens >= 32 and stats.prefix_cache_entries > 0


def test_constraints_force_valid_output(engine, model_name):
    choices = ["[greet]", "[trade]", "[attack]"]
    sid = engine.open_session(model_name, prompt="Action:", constraint=ConstraintSpec.one_of(choices),
                              sampling=SamplingParams(temperature=1.0, seed=3))
    text = "".join(c.text_delta for c in engine.generate(sid, max_tokens=20))
    assert text in choices and engine.session_info(sid)["finish_reason"] == "stop"
    schema = {"type": "object", "required": ["action", "line"],
              "properties": {"action": {"enum": ["greet", "flee"]}, "line": {"type": "string", "maxLength": 12},
                             "gold": {"type": "integer"}}}
    engine.append_input(sid, " JSON:", constraint=ConstraintSpec.json(schema))
    text = "".join(c.text_delta for c in engine.generate(sid, max_tokens=80))
    assert json.loads(text)["action"] in ("greet", "flee")


def test_stop_sequences(engine, model_name):
    probe = engine.open_session(model_name, prompt=PROMPTS[2])
    text = "".join(c.text_delta for c in engine.generate(probe, max_tokens=30))
    stop = text[5:8]
    assert len(stop) == 3
    sid = engine.open_session(model_name, prompt=PROMPTS[2], sampling=SamplingParams(stop=(stop,)))
    chunks = list(engine.generate(sid, max_tokens=30))
    assert chunks[-1].finish_reason is FinishReason.STOP
    assert "".join(c.text_delta for c in chunks) == text[: text.index(stop)]


def test_resume_across_turns_equals_one_long_prompt(engine, model_name):
    tok = engine.tokenizer(model_name)
    a = engine.open_session(model_name, prompt="Hello traveller,")
    first = generate_ids(engine, a, 6)
    second = [t for c in engine.generate(a, " welcome to the village", max_tokens=10) for t in c.token_ids]
    ids = tok.encode("Hello traveller,", add_special_tokens=True) + first + tok.encode(" welcome to the village")
    b = engine.open_session(model_name, prompt=ids)
    assert generate_ids(engine, b, 10) == second


def test_context_full_error_and_sliding_window(tiny_engine_factory):
    e = tiny_engine_factory(max_context=48)
    name = e.list_models()[0].name
    long_prompt = "word " * 200
    with pytest.raises(ResourceExhausted, match="max context"):
        e.open_session(name, prompt=long_prompt)
    sid = e.open_session(name, prompt=PROMPTS[0], limits=SessionLimits(max_new_tokens=200),
                         sampling=SamplingParams(ignore_eos=True))
    chunks = list(e.generate(sid, max_tokens=200))
    assert chunks[-1].finish_reason is FinishReason.CONTEXT_FULL
    with pytest.raises(ResourceExhausted, match="context full"):
        e.append_input(sid, long_prompt)

    slide = tiny_engine_factory(max_context=48, sliding_window=True)
    sid = slide.open_session(name, prompt=long_prompt, limits=SessionLimits(max_new_tokens=100),
                             sampling=SamplingParams(ignore_eos=True))
    assert sum(len(c.token_ids) for c in slide.generate(sid, max_tokens=100)) == 100
    assert slide.session_info(sid)["context_tokens"] <= 48


def test_errors(engine, model_name):
    with pytest.raises(NotFound):
        engine.open_session("no-such-model")
    assert isinstance(engine.tick([TickRequest("nope", 1, 1)])[0].error, NotFound)
    with pytest.raises(InvalidArgument):
        engine.open_session(model_name, sampling=SamplingParams(temperature=-1))
    sid = engine.open_session(model_name, prompt="hi", session_id="npc-1")
    with pytest.raises(AlreadyExists):
        engine.open_session(model_name, session_id="npc-1")
    for bad in (TickRequest(sid, -1, 1), TickRequest(sid, 1, -1), TickRequest(sid, float("nan"), 1)):
        assert isinstance(engine.tick([bad])[0].error, InvalidArgument)
    first, twice = engine.tick([TickRequest(sid, 1e6, 1), TickRequest(sid, 1, 1)])
    assert first.error is None and first.token_ids and isinstance(twice.error, InvalidArgument)
    with pytest.raises(InvalidArgument):
        engine.generate(sid, max_tokens=0)
    for _ in range(7):
        engine.open_session(model_name, prompt="x")
    with pytest.raises(ResourceExhausted, match="slots"):
        engine.open_session(model_name, prompt="x")
    engine.close_session(sid)
    with pytest.raises(NotFound):
        engine.cancel(sid)
    engine.open_session(model_name, prompt="x")   # the closed session's slot is free again


def test_growing_layout_package_serves_the_same_tokens(tiny_engine_factory, tiny_portable_package):
    from npc_runtime.config import EngineConfig
    from npc_runtime.sessions import Engine

    outputs = []
    for engine in (tiny_engine_factory(), Engine.from_packages(
            [tiny_portable_package], config=EngineConfig(max_sessions=4, max_context=128, warmup=False))):
        name = engine.list_models()[0].name
        a, b = (engine.open_session(name, prompt=p) for p in PROMPTS[:2])
        got = {a: [], b: []}
        for _ in range(5):
            for r in engine.tick([TickRequest(a, 1e6, 3), TickRequest(b, 1e6, 2)]):
                got[r.session_id] += r.token_ids
        outputs.append((got[a], got[b], engine.list_models()[0].kv_layout))
    assert outputs[0][:2] == outputs[1][:2]
    assert (outputs[0][2], outputs[1][2]) == ("shared-buffer", "growing")
