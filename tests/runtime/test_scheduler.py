"""The scheduler and engine loop on a fake decoder (no ONNX): slot moves, batching, budgets."""

from __future__ import annotations

import numpy as np

from conftest import FakeDecoder
from npc_runtime.config import EngineConfig, SessionLimits
from npc_runtime.sessions import Engine, FinishReason, TickRequest
from npc_runtime.sessions.cost_model import StepCostModel
from npc_runtime.sessions.scheduler import Scheduler


def fake_engine(**overrides):
    decoder = FakeDecoder(max_slots=overrides.pop("max_slots", 8))
    cfg = EngineConfig(max_sessions=decoder.max_slots, max_context=64, warmup=False, **overrides)
    return Engine.from_decoder("fake", decoder, None, config=cfg), decoder


def alone(prompt, n):
    e, _ = fake_engine(max_slots=1)
    sid = e.open_session("fake", prompt=prompt)
    return [t for c in e.generate(sid, max_tokens=n) for t in c.token_ids]


def test_join_leave_moves_kv_and_keeps_outputs():
    prompts = [[1 + i, 2, 3 + i] * (1 + i % 3) for i in range(7)]
    expected = [alone(p, 12) for p in prompts]
    e, decoder = fake_engine()
    sids = [e.open_session("fake", prompt=p) for p in prompts]
    got = {s: [] for s in sids}
    rng = np.random.default_rng(0)
    for _ in range(60):   # random subsets each tick: sessions join and leave the batch all the time
        subset = [s for s in sids if rng.random() < 0.5 and len(got[s]) < 12]
        for r in e.tick([TickRequest(s, 1e6, int(rng.integers(1, 4))) for s in subset]):
            got[r.session_id] += r.token_ids
    for s in sids:
        got[s] += [t for c in e.generate(s, max_tokens=12 - len(got[s])) for t in c.token_ids] if len(got[s]) < 12 else []
    assert [got[s][:12] for s in sids] == expected
    assert e.stats().slot_moves > 0 and max(decoder.decode_batches) > 1


def test_decode_batch_is_contiguous_slots():
    e, decoder = fake_engine()
    sids = [e.open_session("fake", prompt=[5, 6, 7]) for _ in range(6)]
    e.close_session(sids[0])
    e.close_session(sids[2])
    scheduler = e._models["fake"].scheduler
    sessions = [e._sessions[s] for s in sids[3:]]
    for s in sessions:   # prefill them first
        scheduler.step(scheduler.schedule([s]))
    plan = scheduler.schedule(sessions)
    assert plan.kind == "decode" and sorted(s.slot for s in plan.decode) == [0, 1, 2]


def test_budget_picks_a_sub_batch_and_rotates():
    decoder = FakeDecoder(max_slots=8, step_s=0.001)
    costs = StepCostModel(sigmas=0.0)
    for b in (1, 2, 4, 8):
        costs.record_decode(b, 0.001 * b)   # 1 ms per row
    e = Engine.from_decoder("fake", decoder, None, config=EngineConfig(max_sessions=8, warmup=False))
    e._models["fake"].scheduler.costs = costs
    costs.record_prefill(16, 0.0001)
    sids = [e.open_session("fake", prompt=[3]) for _ in range(8)]
    decoder.decode_batches.clear()
    seen = set()
    for _ in range(8):
        results = e.tick([TickRequest(s, 4.8, 1) for s in sids])
        seen |= {r.session_id for r in results if r.token_ids}
    assert max(decoder.decode_batches) <= 4    # 4 rows (4 ms) fit a 4.8 ms budget, 8 rows do not
    assert seen == set(sids)                   # the rotating window serves everybody


def test_tick_respects_max_tokens_and_limits():
    e, _ = fake_engine()
    sid = e.open_session("fake", prompt=[1, 2], limits=SessionLimits(max_new_tokens=10))
    total = 0
    for k in range(5):
        r = e.tick([TickRequest(sid, 1e6, k)])[0]
        assert len(r.token_ids) <= k
        total += len(r.token_ids)
        if r.finished:
            assert r.finish_reason is FinishReason.LENGTH and total == 10
            break


def test_cost_model_interpolates():
    costs = StepCostModel(sigmas=0.0)
    costs.record_decode(2, 0.002)
    costs.record_decode(8, 0.008)
    assert abs(costs.predict_decode(4) - 0.004) < 1e-9
    assert abs(costs.predict_decode(16) - 0.016) < 1e-9
    assert costs.predict_decode(1) == 0.002


def test_scheduler_prefill_is_chunked():
    decoder = FakeDecoder(max_slots=2, capacity=200)
    scheduler = Scheduler(decoder, max_prefill_chunk=16)
    from npc_runtime.sessions.session import Session
    s = Session(id="a", model="fake", npc_id="", sampling=__import__("npc_runtime.decode.sampling", fromlist=["x"]).SamplingParams(),
                limits=SessionLimits(), capacity=200, rng=np.random.default_rng(0))
    scheduler.admit(s)
    s.start_turn(list(range(1, 41)), None)
    kinds = []
    while s.needs_prefill or not kinds:
        plan = scheduler.schedule([s])
        kinds.append((plan.kind, plan.chunk))
        scheduler.step(plan)
    assert kinds == [("prefill", 16), ("prefill", 16), ("prefill", 8)] and len(s.tokens) == 41


def test_prefix_cache_is_lru_bounded_in_bytes():
    from npc_runtime.sessions.prefix_cache import PrefixCache

    cache = PrefixCache(max_bytes=3 * 4 * 8, block_tokens=4)   # room for three blocks of 4 int64 "KV"
    for start in range(0, 40, 4):
        tokens = list(range(start + 4))
        for b, key in cache.missing_blocks(tokens, len(tokens)):
            cache.insert(key, [np.arange(4, dtype=np.int64)])
    assert cache.bytes <= cache.max_bytes and len(cache) == 3 and cache.evictions > 0


def test_prefix_cache_shares_blocks_between_fake_sessions():
    e, decoder = fake_engine(prefix_block_tokens=4)
    persona = list(range(3, 15))                               # three full blocks
    first = e.open_session("fake", prompt=persona + [40, 41])
    expected_first = [t for c in e.generate(first, max_tokens=6) for t in c.token_ids]
    second = e.open_session("fake", prompt=persona + [42])
    got = [t for c in e.generate(second, max_tokens=6) for t in c.token_ids]
    assert e.session_info(second)["prefix_hit_tokens"] == 12
    assert got == alone(persona + [42], 6) and expected_first == alone(persona + [40, 41], 6)
