"""Proto mapping (`serving.translate`), the engine's one request validation (`sessions.requests`) on mapped
requests, and the one status table in `serving.status`."""

from __future__ import annotations

import math

import grpc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npc_proto.v1 import runtime_pb2 as pb
from npc_runtime import errors
from npc_runtime.serving import status, translate
from npc_runtime.serving.config import ServerConfig
from npc_runtime.serving.server import request_limits
from npc_runtime.sessions import requests
from npc_runtime.sessions.session import FinishReason

CFG = ServerConfig(port=0, http_port=-1, max_text_chars=1000)
LIMITS = request_limits(CFG)


@pytest.mark.parametrize("field,value", [
    ("temperature", float("nan")), ("temperature", -0.1), ("temperature", 5.5), ("temperature", float("inf")),
    ("top_p", 1.5), ("top_p", float("nan")), ("repetition_penalty", 3.5), ("repetition_penalty", -1.0),
])
def test_sampling_out_of_range_names_the_field(field, value):
    with pytest.raises(errors.InvalidArgument, match=f"sampling.{field}"):
        _check_open(pb.OpenSessionRequest(sampling=pb.SamplingParams(**{field: value})))


def _check_open(msg: pb.OpenSessionRequest):
    """What the engine does with an OpenSessionRequest before opening: map (translate), validate (requests)."""
    request = translate.open_request(msg)
    requests.check_open(request, LIMITS)
    return request


def test_sampling_zero_values_mean_defaults():
    params = translate.sampling_from_proto(pb.SamplingParams())
    assert params.temperature == 0.0 and params.top_p == 1.0 and params.repetition_penalty == 1.0
    assert params.seed is None and params.stop == ()
    params = translate.sampling_from_proto(pb.SamplingParams(temperature=0.7, top_k=5, top_p=0.9, seed=7, stop=["\n"]))
    assert (params.top_k, params.seed, params.stop) == (5, 7, ("\n",))
    assert math.isclose(params.temperature, 0.7, rel_tol=1e-6)


def test_stop_sequences_checked():
    with pytest.raises(errors.InvalidArgument, match=r"sampling.stop\[1\] is empty"):
        _check_open(pb.OpenSessionRequest(sampling=pb.SamplingParams(stop=["a", ""])))
    with pytest.raises(errors.InvalidArgument, match="at most"):
        _check_open(pb.OpenSessionRequest(sampling=pb.SamplingParams(stop=["x"] * 17)))
    with pytest.raises(errors.InvalidArgument, match="limit is 1000"):
        _check_open(pb.OpenSessionRequest(sampling=pb.SamplingParams(stop=["x" * 1001])))


def test_constraints():
    assert translate.constraint_from_proto(pb.Constraint()) is None
    spec = translate.constraint_from_proto(pb.Constraint(allowed=pb.AllowedSequences(sequences=["[a]", "[b]"])))
    assert spec.choices == ("[a]", "[b]")
    spec = translate.constraint_from_proto(pb.Constraint(json_schema='{"type": "object"}'))
    requests.check_constraint(spec, LIMITS)
    with pytest.raises(errors.InvalidArgument, match="constraint.allowed.sequences is empty"):
        _check_open(pb.OpenSessionRequest(constraint=pb.Constraint(allowed=pb.AllowedSequences())))
    with pytest.raises(errors.InvalidArgument, match="constraint.json_schema is not valid JSON"):
        _check_open(pb.OpenSessionRequest(constraint=pb.Constraint(json_schema="{nope")))
    with pytest.raises(errors.InvalidArgument, match="must be a JSON object"):
        _check_open(pb.OpenSessionRequest(constraint=pb.Constraint(json_schema="[1]")))


def test_tick_entry_checks():
    def check(entry, field="entries[0]"):
        return requests.check_tick_entry(translate.tick_request(entry), LIMITS, field)

    budget, cap = check(pb.TickEntry(session_id="s"))
    assert budget == CFG.default_budget_ms and cap == requests.UNBOUNDED_TOKENS   # 0 = unset
    assert translate.tick_request(pb.TickEntry(session_id="s")).new_input is None
    with pytest.raises(errors.InvalidArgument, match=r"entries\[2\].session_id is empty"):
        check(pb.TickEntry(), "entries[2]")
    with pytest.raises(errors.InvalidArgument, match=r"entries\[0\].budget_ms"):
        check(pb.TickEntry(session_id="s", budget_ms=float("nan")))
    with pytest.raises(errors.InvalidArgument, match=r"entries\[0\].constraint needs"):
        check(pb.TickEntry(session_id="s", constraint=pb.Constraint(json_schema="{}")))
    with pytest.raises(errors.InvalidArgument, match="at most 1024"):
        requests.check_tick_size(1025, LIMITS)


def test_finish_reasons_every_member_has_a_wire_value():
    assert translate.finish_reason_to_proto(None) == pb.FINISH_REASON_UNSPECIFIED
    assert translate.finish_reason_to_proto(FinishReason.EOS) == pb.FINISH_REASON_EOS
    assert translate.finish_reason_to_proto(FinishReason.CONTEXT_FULL) == pb.FINISH_REASON_CONTEXT_FULL
    assert set(translate.FINISH_REASONS) == set(FinishReason)
    assert len(set(translate.FINISH_REASONS.values())) == len(FinishReason)
    from npc_runtime.serving.http_api import OPENAI_FINISH_REASONS

    assert set(OPENAI_FINISH_REASONS) == set(FinishReason)


@pytest.mark.parametrize("exc,code,http", [
    (errors.InvalidArgument("x"), grpc.StatusCode.INVALID_ARGUMENT, 400),
    (errors.NotFound("x"), grpc.StatusCode.NOT_FOUND, 404),
    (errors.ResourceExhausted("x"), grpc.StatusCode.RESOURCE_EXHAUSTED, 429),
    (errors.FailedPrecondition("x"), grpc.StatusCode.FAILED_PRECONDITION, 409),
    (errors.ModelPackageError("x"), grpc.StatusCode.FAILED_PRECONDITION, 409),
    (errors.Unauthenticated("x"), grpc.StatusCode.UNAUTHENTICATED, 401),
    (errors.Unavailable("x"), grpc.StatusCode.UNAVAILABLE, 503),
    (errors.InternalError("x"), grpc.StatusCode.INTERNAL, 500),
])
def test_status_table(exc, code, http):
    st_ = status.status_for(exc)
    assert (st_.grpc_code, st_.http_status, st_.message) == (code, http, "x")


def test_unexpected_exception_is_internal_without_details(caplog):
    st_ = status.status_for(KeyError("secret internals"))
    assert st_.grpc_code is grpc.StatusCode.INTERNAL and "secret" not in st_.message
    assert "unexpected exception" in caplog.text
    assert status.grpc_code_number(grpc.StatusCode.NOT_FOUND) == 5


@settings(max_examples=300, deadline=None)
@given(temperature=st.floats(allow_nan=True, allow_infinity=True, width=32),
       top_p=st.floats(allow_nan=True, allow_infinity=True, width=32),
       penalty=st.floats(allow_nan=True, allow_infinity=True, width=32),
       top_k=st.integers(0, 2**32 - 1), seed=st.integers(0, 2**64 - 1),
       stop=st.lists(st.text(max_size=20), max_size=20))
def test_sampling_fuzz_only_invalid_argument(temperature, top_p, penalty, top_k, seed, stop):
    msg = pb.SamplingParams(temperature=temperature, top_p=top_p, repetition_penalty=penalty, top_k=top_k,
                            seed=seed, stop=stop)
    try:
        requests.check_sampling(translate.sampling_from_proto(msg), LIMITS)
    except errors.InvalidArgument:
        pass


def test_open_session_unset_fields_mean_server_defaults():
    args = _check_open(pb.OpenSessionRequest(prompt="hi"))
    assert args.sampling is None and args.limits is None and args.constraint is None
    args = _check_open(pb.OpenSessionRequest(sampling=pb.SamplingParams(), limits=pb.SessionLimits(max_context=64)))
    assert args.sampling.temperature == 0.0 and args.limits.max_context == 64
    with pytest.raises(errors.InvalidArgument, match="npc_id is longer"):
        _check_open(pb.OpenSessionRequest(npc_id="n" * 300))
