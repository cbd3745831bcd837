"""Thread count per batch size: a second ONNX Runtime session with fewer threads runs small decode batches;
which batches is measured at warm-up. Greedy output stays identical batched or alone across the two."""

from __future__ import annotations

import pytest

from npc_runtime.config import EngineConfig
from npc_runtime.decode.onnx_model import small_batch_candidates
from npc_runtime.errors import InvalidArgument
from npc_runtime.sessions import TickRequest

PROMPTS = ["Hello traveller, welcome to", "The blacksmith sells", "I am the guard of the northern gate.",
           "Would you like to trade?"]
TOKENS = 16


def _decoder(engine):
    return next(iter(engine._models.values())).decoder


def test_greedy_output_alone_on_one_session_equals_batched_across_both(tiny_engine_factory):
    alone = []
    for prompt in PROMPTS:
        e = tiny_engine_factory(max_sessions=1, intra_op_threads=2, small_batch_threads=0)
        assert _decoder(e).small_session is None
        sid = e.open_session(e.list_models()[0].name, prompt=prompt)
        alone.append([t for c in e.generate(sid, max_tokens=TOKENS) for t in c.token_ids])
    # batches of 1 and 2 run on the 1-thread session, 3 and 4 on the 2-thread one
    e = tiny_engine_factory(intra_op_threads=2, small_batch_threads=1, small_batch_max=2)
    dec = _decoder(e)
    assert dec.small_session is not None and dec.small_batch_max == 2
    name = e.list_models()[0].name
    sids = [e.open_session(name, prompt=p) for p in PROMPTS]
    got = {s: [] for s in sids}
    for tick in range(3 * TOKENS):
        active = sids[: 1 + tick // 4]      # batch sizes 1, 2, 3, 4 in turn
        results = e.tick([TickRequest(s, 1e6, 1) for s in active if len(got[s]) < TOKENS])
        for r in results:
            got[r.session_id] += r.token_ids
    assert [got[s] for s in sids] == alone
    used = {small for (_, _, small) in dec._bindings}
    assert used == {True, False}         # both sessions really ran


def test_auto_candidates():
    assert small_batch_candidates(2) == [] and small_batch_candidates(1) == []   # no second session
    assert small_batch_candidates(4) == [1, 2]
    assert small_batch_candidates(16) == [1, 4, 8]


def test_auto_without_warmup_is_one_session(tiny_engine_factory):
    dec = _decoder(tiny_engine_factory(intra_op_threads=4))    # warmup=False in the factory
    assert dec.small_session is None and dec.small_batch_max == 0


def test_warmup_measures_threads_and_range(tiny_engine_factory):
    e = tiny_engine_factory(intra_op_threads=4, warmup=True)   # auto: tries 1 and 2 threads
    dec = _decoder(e)
    assert not dec.tune_pending
    assert 0 <= dec.small_batch_max <= dec.max_slots
    assert (dec.small_session is None) == (dec.small_batch_max == 0) == (dec.small_batch_threads == 0)
    assert dec.small_batch_threads in (0, 1, 2)
    report = dec.tune_threads(repeats=1)
    assert set(report["threads"]) == {"main", 1, 2}
    sid = e.open_session(e.list_models()[0].name, prompt=PROMPTS[0])
    assert len(e.tick([TickRequest(sid, 1e6, 4)])[0].token_ids) == 4


def test_off_and_fixed(tiny_engine_factory):
    assert _decoder(tiny_engine_factory(intra_op_threads=4, small_batch_threads=0)).small_session is None
    fixed = _decoder(tiny_engine_factory(intra_op_threads=4, small_batch_threads=2, small_batch_max=4,
                                         warmup=True))
    assert fixed.small_session is not None and fixed.small_batch_max == 4 and fixed.small_batch_threads == 2
    assert not fixed.tune_pending
    ranged = _decoder(tiny_engine_factory(intra_op_threads=4, small_batch_threads=2, warmup=True))
    assert ranged.small_batch_threads in (0, 2) and not ranged.tune_pending   # range measured, threads given


@pytest.mark.parametrize("key", ["small_batch_threads", "small_batch_max"])
def test_bad_values(key):
    with pytest.raises(InvalidArgument, match=key):
        EngineConfig(**{key: -2}).validate()
