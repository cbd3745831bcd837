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


# -- spinning policy: ORT's threads spin during a step, not after it (docs/engine.md, intra_op_spinning) ------

@pytest.mark.parametrize(("value", "policy"), [("step", "step"), ("always", "always"), ("never", "never"),
                                               (True, "always"), (False, "never")])
def test_spin_policy_spellings(value, policy):
    assert EngineConfig(intra_op_spinning=value).validate().spin_policy == policy


def test_spin_policy_default_stops_after_each_run():
    assert EngineConfig().spin_policy == "step"


@pytest.mark.parametrize("value", ["sometimes", "", 1, None])
def test_spin_policy_bad_values(value):
    with pytest.raises(InvalidArgument, match="intra_op_spinning must be one of 'step', 'always', 'never'"):
        EngineConfig(intra_op_spinning=value).validate()


def _config_entry(options, key: str) -> str | None:
    try:
        return options.get_session_config_entry(key)
    except RuntimeError:   # "does not have configuration with key": ORT's default applies
        return None


@pytest.mark.parametrize(("policy", "entries"), [
    ("step", {"session.force_spinning_stop": "1"}),
    ("always", {}),
    ("never", {"session.intra_op.allow_spinning": "0"}),
])
def test_spin_policy_reaches_the_onnx_runtime_session(tiny_engine_factory, policy, entries):
    """The policy is a session option of every ORT session the decoder makes (main and small-batch)."""
    e = tiny_engine_factory(intra_op_threads=2, small_batch_threads=1, small_batch_max=1, intra_op_spinning=policy)
    dec = _decoder(e)
    assert dec.small_session is not None
    for session in (dec.session, dec.small_session):
        options = session.get_session_options()
        for key in ("session.force_spinning_stop", "session.intra_op.allow_spinning"):
            assert _config_entry(options, key) == entries.get(key)
    sid = e.open_session(e.list_models()[0].name, prompt="Hello traveller")
    assert [t for c in e.generate(sid, max_tokens=4) for t in c.token_ids]


def test_spin_policy_from_the_server_config(tmp_path):
    from npc_runtime.settings import load_settings

    config = tmp_path / "npcrt.toml"
    config.write_text('[engine]\nintra_op_spinning = "never"\n')
    assert load_settings(config, env={}).engine.spin_policy == "never"
    config.write_text("[engine]\nintra_op_spinning = true\n")
    assert load_settings(config, env={}).engine.spin_policy == "always"
    config.write_text('[engine]\nintra_op_spinning = "fast"\n')
    with pytest.raises(InvalidArgument, match="intra_op_spinning"):
        load_settings(config, env={})
