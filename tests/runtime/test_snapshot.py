"""Session snapshots (sessions/snapshot.py, Engine.save_session / restore_session): a restored session, in this
engine or a fresh one (another process), continues with exactly the tokens an uninterrupted session produces;
corrupt, truncated or foreign snapshots are refused with the right error and change nothing."""

from __future__ import annotations

import struct
import zlib

import pytest

from npc_runtime.config import SessionLimits
from npc_runtime.decode.constraints import ConstraintSpec
from npc_runtime.decode.sampling import SamplingParams
from npc_runtime.errors import AlreadyExists, FailedPrecondition, InvalidArgument
from npc_runtime.sessions import TickRequest, snapshot

PROMPT = "Hello traveller, welcome to the northern gate. What brings you"


def PROMPT_IDS(engine, name):  # noqa: N802 - reads like the constant it stands for
    return engine.tokenizer(name).encode(PROMPT, add_special_tokens=True)


def ids(engine, sid, n):
    """Up to n tokens by ticks of 1e6 ms budget: the turn stays open (generate(max_tokens) would end it)."""
    got: list[int] = []
    while len(got) < n:
        (r,) = engine.tick([TickRequest(sid, 1e6, n - len(got))])
        assert not r.error, r.error
        got += r.token_ids
        if r.finished:
            break
    return got


@pytest.mark.parametrize("include_kv", [True, False])
@pytest.mark.parametrize("sampling", [SamplingParams(), SamplingParams(temperature=0.9, top_k=20, seed=7)])
def test_restored_session_continues_like_an_uninterrupted_one(tiny_engine_factory, include_kv, sampling):
    reference = tiny_engine_factory()
    name = reference.list_models()[0].name
    limits = SessionLimits(max_new_tokens=64)
    sid = reference.open_session(name, prompt=PROMPT, sampling=sampling, limits=limits)
    uninterrupted = ids(reference, sid, 20)

    first = tiny_engine_factory()
    sid = first.open_session(name, prompt=PROMPT, sampling=sampling, limits=limits)
    head = ids(first, sid, 8)
    data = first.save_session(sid, include_kv=include_kv)
    other = tiny_engine_factory()                 # another engine: as in another process / replica
    opened = other.restore_session(data)
    assert opened.session_id == sid and opened.cached_prefix_tokens == (len(PROMPT_IDS(first, name)) + 7
                                                                        if include_kv else 0)
    tail = ids(other, sid, 12)
    if include_kv:
        assert head + tail == uninterrupted
    else:   # a re-prefilled cache can differ in the last bits (a near-tie may decode differently)
        assert len(head + tail) == len(uninterrupted)


def test_a_finished_turn_restores_and_takes_new_input(tiny_engine_factory):
    e = tiny_engine_factory()
    name = e.list_models()[0].name
    sid = e.open_session(name, prompt=PROMPT, limits=SessionLimits(max_new_tokens=4))
    assert len(ids(e, sid, 10)) == 4
    assert len(e.save_session(sid)) < 1024                       # tokens only: a few bytes per token
    data = e.save_session(sid, include_kv=True)
    assert snapshot.decode(data).finished
    again = tiny_engine_factory()
    again.restore_session(data, session_id="restored-1")
    e.append_input(sid, " And the east gate?")
    again.append_input("restored-1", " And the east gate?")
    assert ids(again, "restored-1", 4) == ids(e, sid, 4)


def test_bad_snapshots_are_refused(tiny_engine_factory):
    e = tiny_engine_factory()
    name = e.list_models()[0].name
    sid = e.open_session(name, prompt=PROMPT)
    ids(e, sid, 3)
    good = e.save_session(sid, include_kv=True)
    other = tiny_engine_factory()
    cases = {
        "empty": b"",
        "foreign": b"PK\x03\x04" + b"\0" * 64,
        "truncated": good[: len(good) // 2],
        "bit flip": good[:40] + bytes([good[40] ^ 1]) + good[41:],
    }
    for what, data in cases.items():
        with pytest.raises(InvalidArgument):
            other.restore_session(data)
    # a well-framed snapshot with a hostile header: checksummed, still refused field by field
    body = snapshot.MAGIC + struct.pack("<II", snapshot.VERSION, 2) + b"[]"
    with pytest.raises(InvalidArgument, match="header is not an object"):
        other.restore_session(body + struct.pack("<I", zlib.crc32(body)))
    state = snapshot.decode(good)
    state.model_sha256 = "0" * 64
    with pytest.raises(FailedPrecondition, match="does not serve"):
        other.restore_session(snapshot.encode(state))
    state = snapshot.decode(good)
    state.tokens = [10**9]
    state.kv, state.kv_len = [], 0
    with pytest.raises(InvalidArgument, match="do not fit"):
        other.restore_session(snapshot.encode(state))
    assert other.open_sessions == 0            # nothing admitted by a refused restore
    with pytest.raises(AlreadyExists):
        e.restore_session(good)                   # the id is still open here


def test_a_turn_under_a_constraint_is_not_snapshotted(tiny_engine_factory):
    e = tiny_engine_factory()
    name = e.list_models()[0].name
    sid = e.open_session(name, prompt=PROMPT, constraint=ConstraintSpec(choices=("yes", "no")))
    with pytest.raises(FailedPrecondition, match="constraint"):
        e.save_session(sid)
