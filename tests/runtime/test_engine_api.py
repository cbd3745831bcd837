"""Engine API used by serving and the agent: per-entry tick errors, tick stats, prefix hit at open,
the starvation guard of frame slicing, token log-probabilities."""

from __future__ import annotations

import math

import numpy as np
import pytest

from conftest import FakeDecoder
from npc_runtime.config import EngineConfig, SessionLimits
from npc_runtime.decode.constraints import ConstraintSpec
from npc_runtime.decode.sampling import SamplingParams
from npc_runtime.errors import InvalidArgument, NotFound, ResourceExhausted
from npc_runtime.sessions import Engine, TickRequest
from npc_runtime.sessions.cost_model import StepCostModel


def fake_engine(*, step_s: float = 0.0, **overrides):
    decoder = FakeDecoder(max_slots=overrides.pop("max_slots", 8), step_s=step_s)
    cfg = EngineConfig(max_sessions=decoder.max_slots, max_context=64, warmup=False, **overrides)
    return Engine.from_decoder("fake", decoder, None, config=cfg), decoder


def test_tick_entry_errors_fail_alone_and_apply_nothing():
    e, _ = fake_engine()
    a = e.open_session("fake", prompt=[3, 4, 5])
    b = e.open_session("fake", prompt=[6, 7])
    before = e.session_info(a)["context_tokens"]
    results = e.tick([TickRequest(a, 1e6, 2, new_input=[1] * 70),   # over max_context 64
                      TickRequest(b, 1e6, 2), TickRequest("ghost", 1e6, 2)])
    assert isinstance(results[0].error, ResourceExhausted) and not results[0].token_ids
    assert e.session_info(a)["context_tokens"] == before          # its input was not applied
    assert results[1].error is None and len(results[1].token_ids) == 2
    assert isinstance(results[2].error, NotFound)
    assert e.open_sessions == 2


def test_tick_stats_max_batch_and_pending_prefill():
    e, _ = fake_engine(max_prefill_chunk=16)
    long = e.open_session("fake", prompt=list(range(1, 41)))
    assert e.session_info(long)["pending_prefill_tokens"] == 40
    (r,) = e.step({long: 1})                     # one pass: one 16-token chunk
    assert r.stats.pending_prefill_tokens == 24 and r.stats.max_batch == 1
    sids = [e.open_session("fake", prompt=[9]) for _ in range(3)]
    results = e.tick([TickRequest(s, 1e6, 2) for s in [long, *sids]])
    assert all(r.stats.pending_prefill_tokens == 0 for r in results)
    assert max(r.stats.max_batch for r in results) == 4


def test_open_session_reports_prefix_cache_hit():
    e, _ = fake_engine(prefix_block_tokens=8)
    persona = list(range(10, 30))                                  # 20 tokens: two full blocks of 8
    first = e.open_session("fake", prompt=persona + [1])
    assert e.session_info(first)["prefix_hit_tokens"] == 0
    e.tick([TickRequest(first, 1e6, 1)])                           # first prefill fills the cache
    second = e.open_session("fake", prompt=persona + [2, 3])
    assert e.session_info(second)["prefix_hit_tokens"] == 16       # known at open, before any step
    alone, _ = fake_engine(prefix_cache_bytes=0)
    ref = alone.open_session("fake", prompt=persona + [2, 3])
    assert (e.tick([TickRequest(second, 1e6, 5)])[0].token_ids
            == alone.tick([TickRequest(ref, 1e6, 5)])[0].token_ids)


def test_budget_smaller_than_a_step_still_finishes():
    e, decoder = fake_engine(step_s=0.002, max_slots=4)           # 2 ms per row, 8 ms for the batch
    costs = StepCostModel(sigmas=0.0)
    for b in (1, 2, 4):
        costs.record_decode(b, 0.002 * b)
    e._models["fake"].scheduler.costs = costs
    sids = [e.open_session("fake", prompt=[3], limits=SessionLimits(max_new_tokens=3)) for _ in range(4)]
    decoder.decode_batches.clear()
    done, ticks, empty = set(), 0, 0
    while len(done) < 4 and ticks < 500:
        results = e.tick([TickRequest(s, 0.5, 3) for s in sids if s not in done])
        ticks += 1
        empty += not any(r.token_ids for r in results)
        done |= {r.session_id for r in results if r.finished}
    assert done == set(sids)                                      # everybody finished ...
    assert empty > 0                                              # ... saving budget up in between
    assert set(decoder.decode_batches) == {1}                     # saved-up time buys one row: bounded overrun
    assert ticks >= 3 * (8 / 0.5)                                 # never more than the budgets allow


def test_strict_budget_never_steps_past_the_budget():
    e, decoder = fake_engine(step_s=0.002, max_slots=4, tick_strict_budget=True)   # 2 ms per row
    costs = StepCostModel(sigmas=0.0)
    for b in (1, 2, 4):
        costs.record_decode(b, 0.002 * b)
    e._models["fake"].scheduler.costs = costs
    sids = [e.open_session("fake", prompt=[3], limits=SessionLimits(max_new_tokens=3)) for _ in range(4)]
    decoder.decode_batches.clear()
    for _ in range(50):
        results = e.tick([TickRequest(s, 0.5, 3) for s in sids])
        assert not any(r.token_ids for r in results)              # no step fits 0.5 ms: nothing, ever
    assert decoder.decode_batches == []
    results = e.tick([TickRequest(s, 5.0, 3) for s in sids])
    assert any(r.token_ids for r in results)                      # a budget that fits a step does step


def test_strict_budget_and_min_progress_contradict():
    with pytest.raises(InvalidArgument, match="contradict"):
        fake_engine(tick_strict_budget=True, tick_min_progress=True)


def test_logprobs_only_when_asked_and_same_batched(tiny_engine_factory):
    engine = tiny_engine_factory()
    name = engine.list_models()[0].name
    asked = SamplingParams(logprobs=True)
    solo = engine.open_session(name, prompt="The blacksmith sells", sampling=asked)
    alone = [c for c in engine.generate(solo, max_tokens=6)]
    alone_lp = [lp for c in alone for lp in c.logprobs]
    assert len(alone_lp) == 6 and all(lp <= 0.0 and math.isfinite(lp) for lp in alone_lp)
    engine2 = tiny_engine_factory()
    a = engine2.open_session(name, prompt="The blacksmith sells", sampling=asked)
    b = engine2.open_session(name, prompt="Hello there")
    got = {a: [], b: []}
    for _ in range(6):
        for r in engine2.tick([TickRequest(a, 1e6, 1), TickRequest(b, 1e6, 1)]):
            got[r.session_id].append(r.logprobs)
    assert all(lp is None for lp in got[b])
    assert np.allclose([lp for lps in got[a] for lp in lps], alone_lp, atol=1e-4)


def test_choice_probs_renormalised_over_allowed(engine, model_name):
    choices = ["[greet]", "[trade]", "[attack]"]
    sid = engine.open_session(model_name, prompt="Action:", constraint=ConstraintSpec.one_of(choices),
                              sampling=SamplingParams(logprobs=True))
    chunks = list(engine.generate(sid, max_tokens=20))
    first = chunks[0].choice_probs[0]
    assert first is not None and abs(sum(first.values()) - 1.0) < 1e-6
    chosen = chunks[0].token_ids[0]
    assert max(first, key=first.get) == chosen                     # greedy takes the likeliest allowed token


class _ScriptedDecoder(FakeDecoder):
    """Greedy decoding emits `script[k]` as the k-th generated token."""

    def __init__(self, script, prompt_len, **kw):
        super().__init__(**kw)
        self.script, self.prompt_len = list(script), prompt_len

    def _logits(self, history):
        logits = np.zeros(self.vocab_size, np.float32)
        logits[self.script[min(len(history) - self.prompt_len, len(self.script) - 1)]] = 1.0
        return logits


@pytest.mark.parametrize("stream", [False, True])
async def test_a_turn_ending_mid_character_has_no_replacement_character(stream):
    """max_new_tokens ends the turn two bytes into a 4-byte character: the text ends before it (it used to
    end with U+FFFD, the held-back bytes flushed as an invalid character), over generate and the facade."""
    from test_decode_units import _byte_tokenizer

    from npc_runtime.sessions import EngineFacade, GenerateRequest, OpenRequest

    tok = _byte_tokenizer()
    prompt = tok.encode("Hi")
    script = tok.encode("ok 🙂")
    decoder = _ScriptedDecoder(script, len(prompt), vocab_size=tok.vocab_size)
    e = Engine.from_decoder("bytes", decoder, tok, config=EngineConfig(max_context=64, warmup=False))
    limits = SessionLimits(max_new_tokens=len(script) - 2)
    if not stream:
        sid = e.open_session("bytes", prompt=prompt, limits=limits)
        chunks = list(e.generate(sid))
    else:
        facade = EngineFacade(e)
        chunks = [c async for c in await facade.generate(GenerateRequest(open=OpenRequest(prompt=prompt,
                                                                                         limits=limits)))]
        await facade.shutdown()
    text = "".join(c.text_delta for c in chunks)
    assert text == "ok " and chunks[-1].finished
