"""Every NpcRuntime RPC against a real server and engine, and every documented error status."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from npc_proto.v1 import runtime_pb2 as pb
from tests.serving.conftest import running_server, runtime_stub


async def _open(stub, prompt="Hello traveller", max_new_tokens=16, **kw) -> str:
    reply = await stub.OpenSession(pb.OpenSessionRequest(
        prompt=prompt, limits=pb.SessionLimits(max_new_tokens=max_new_tokens), **kw))
    assert reply.session_id and reply.prompt_tokens > 0
    return reply.session_id


async def _code(call) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    return info.value.code(), info.value.details()


async def test_handshake_and_list_models(stub):
    hello = await stub.Handshake(pb.HandshakeRequest(protocol_version="1", client_name="pytest"))
    assert hello.protocol_version == "1" and "tick" in hello.capabilities
    assert hello.max_sessions == 8 and hello.max_tick_entries > 0
    models = (await stub.ListModels(pb.ListModelsRequest())).models
    assert [m.name for m in models] == ["tiny-llama"]
    assert models[0].context_length == 256 and models[0].vocab_size == 512 and models[0].target == "ort"
    assert not models[0].batch_dependent   # fp32: greedy output identical batched or alone
    code, details = await _code(stub.Handshake(pb.HandshakeRequest(protocol_version="2")))
    assert code is grpc.StatusCode.INVALID_ARGUMENT and "protocol_version" in details


async def test_tick_until_finished_then_new_turn(stub, server):
    sid = await _open(stub, max_new_tokens=12)
    tokens, finished, reason = [], False, None
    for _ in range(500):
        reply = await stub.Tick(pb.TickRequest(entries=[pb.TickEntry(session_id=sid, budget_ms=50, max_tokens=3)]))
        (result,) = reply.results
        assert not result.error and len(result.token_ids) <= 3
        tokens += result.token_ids
        if result.finished:
            finished, reason = True, result.finish_reason
            break
    assert finished and reason == pb.FINISH_REASON_LENGTH and len(tokens) == 12
    # a finished turn cannot be ticked without new input; with new input a new turn starts
    (result,) = (await stub.Tick(pb.TickRequest(entries=[pb.TickEntry(session_id=sid)]))).results
    assert result.error_code == grpc.StatusCode.FAILED_PRECONDITION.value[0]
    (result,) = (await stub.Tick(pb.TickRequest(entries=[
        pb.TickEntry(session_id=sid, new_input=" And then?", budget_ms=20, max_tokens=2)]))).results
    assert not result.error and result.stats.context_tokens > len(tokens)
    closed = await stub.CloseSession(pb.CloseSessionRequest(session_id=sid))
    assert closed.context_tokens > 0
    assert server.engine.active_sessions() == 0


async def test_tick_bad_entries_fail_alone(stub):
    sid = await _open(stub)
    reply = await stub.Tick(pb.TickRequest(entries=[
        pb.TickEntry(session_id="no-such-session"),
        pb.TickEntry(session_id=sid, budget_ms=500, max_tokens=2),
        pb.TickEntry(session_id=sid),
        pb.TickEntry(session_id="x", budget_ms=float("nan")),
    ]))
    codes = [r.error_code for r in reply.results]
    assert codes == [grpc.StatusCode.NOT_FOUND.value[0], 0, grpc.StatusCode.INVALID_ARGUMENT.value[0],
                     grpc.StatusCode.INVALID_ARGUMENT.value[0]]
    assert "appears twice" in reply.results[2].error and "budget_ms" in reply.results[3].error
    assert reply.results[1].token_ids and reply.tick_ms > 0
    await stub.CloseSession(pb.CloseSessionRequest(session_id=sid))


async def test_generate_streams_to_the_end(stub):
    sid = await _open(stub, max_new_tokens=10)
    chunks = [c async for c in stub.Generate(pb.GenerateRequest(session_id=sid))]
    assert sum(len(c.token_ids) for c in chunks) == 10
    assert chunks[-1].finished and chunks[-1].finish_reason == pb.FINISH_REASON_LENGTH
    # a new turn with its own token limit and a constraint
    chunks = [c async for c in stub.Generate(pb.GenerateRequest(
        session_id=sid, input=" Choose:", max_tokens=30,
        constraint=pb.Constraint(allowed=pb.AllowedSequences(sequences=["[greet]", "[trade]"]))))]
    assert "".join(c.text for c in chunks) in ("[greet]", "[trade]")
    await stub.CloseSession(pb.CloseSessionRequest(session_id=sid))


async def test_cancel_and_close(stub, server):
    sid = await _open(stub, max_new_tokens=100)
    assert (await stub.Cancel(pb.CancelRequest(session_id=sid))).was_running
    assert not (await stub.Cancel(pb.CancelRequest(session_id=sid))).was_running
    await stub.CloseSession(pb.CloseSessionRequest(session_id=sid))
    code, _ = await _code(stub.CloseSession(pb.CloseSessionRequest(session_id=sid)))
    assert code is grpc.StatusCode.NOT_FOUND
    assert server.engine.active_sessions() == 0


@pytest.mark.parametrize("make_call,expected", [
    (lambda s: s.Tick(pb.TickRequest(entries=[pb.TickEntry()] * 2000)), grpc.StatusCode.INVALID_ARGUMENT),
    (lambda s: s.OpenSession(pb.OpenSessionRequest(sampling=pb.SamplingParams(temperature=float("nan")))),
     grpc.StatusCode.INVALID_ARGUMENT),
    (lambda s: s.OpenSession(pb.OpenSessionRequest(model="gpt-17")), grpc.StatusCode.NOT_FOUND),
    (lambda s: s.OpenSession(pb.OpenSessionRequest(prompt="the dragon " * 400)), grpc.StatusCode.RESOURCE_EXHAUSTED),
    (lambda s: s.OpenSession(pb.OpenSessionRequest(constraint=pb.Constraint(json_schema="{"))),
     grpc.StatusCode.INVALID_ARGUMENT),
    (lambda s: s.Generate(pb.GenerateRequest(session_id="nope")).read(), grpc.StatusCode.NOT_FOUND),
    (lambda s: s.Generate(pb.GenerateRequest()).read(), grpc.StatusCode.INVALID_ARGUMENT),
    (lambda s: s.Cancel(pb.CancelRequest(session_id="nope")), grpc.StatusCode.NOT_FOUND),
    (lambda s: s.OpenSession(pb.OpenSessionRequest(prompt="x" * (5 << 20))), grpc.StatusCode.RESOURCE_EXHAUSTED),
    (lambda s: s.OpenSession(pb.OpenSessionRequest(prompt="x" * 70_000)), grpc.StatusCode.INVALID_ARGUMENT),
    (lambda s: s.CloseSession(pb.CloseSessionRequest()), grpc.StatusCode.INVALID_ARGUMENT),
])
async def test_error_statuses(stub, make_call, expected):
    code, details = await _code(make_call(stub))
    assert code is expected and details


async def test_too_many_sessions_is_resource_exhausted(stub, server):
    ids = [await _open(stub) for _ in range(8)]
    code, details = await _code(stub.OpenSession(pb.OpenSessionRequest(prompt="one more")))
    assert code is grpc.StatusCode.RESOURCE_EXHAUSTED and details
    for sid in ids:
        await stub.CloseSession(pb.CloseSessionRequest(session_id=sid))
    assert server.engine.active_sessions() == 0


async def test_disconnect_mid_stream_frees_the_session(stub, server):
    sid = await _open(stub, max_new_tokens=200)
    call = stub.Generate(pb.GenerateRequest(session_id=sid))
    first = await call.read()
    assert first.token_ids
    call.cancel()
    # the engine ends the turn (cancelled) and drops the stream: a new Generate may start right away
    for _ in range(100):
        stats = await server.engine.stats()
        if stats.sessions_generating == 0:
            break
        await asyncio.sleep(0.02)
    assert stats.sessions_generating == 0
    info = await server.engine.session_info(sid)
    assert info["finish_reason"] == "cancelled" and info["generated_total"] < 200
    (result,) = (await stub.Tick(pb.TickRequest(entries=[pb.TickEntry(session_id=sid)]))).results
    assert result.error_code == grpc.StatusCode.FAILED_PRECONDITION.value[0]  # its turn was cancelled
    await stub.CloseSession(pb.CloseSessionRequest(session_id=sid))


async def test_tick_honours_the_deadline(stub):
    sid = await _open(stub, max_new_tokens=200)
    # a generous budget but a short deadline: the tick ends in time and returns what it has
    reply = await stub.Tick(pb.TickRequest(entries=[pb.TickEntry(session_id=sid, budget_ms=5000)]), timeout=1.0)
    assert reply.tick_ms < 1000
    # a deadline too short for any work is DEADLINE_EXCEEDED, never a late answer
    code, _ = await _code(stub.Tick(pb.TickRequest(entries=[pb.TickEntry(session_id=sid)]), timeout=0.001))
    assert code is grpc.StatusCode.DEADLINE_EXCEEDED
    await stub.CloseSession(pb.CloseSessionRequest(session_id=sid))


async def test_health_and_reflection(server):
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "npc.v1.NpcRuntime"):
            reply = await health.Check(health_pb2.HealthCheckRequest(service=service))
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        reflect = reflection_pb2_grpc.ServerReflectionStub(channel)
        responses = [r async for r in reflect.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]))]
        names = {s.name for s in responses[0].list_services_response.service}
        assert {"npc.v1.NpcRuntime", "grpc.health.v1.Health"} <= names
        # a watcher sees NOT_SERVING as soon as shutdown starts
        watch = health.Watch(health_pb2.HealthCheckRequest(service="npc.v1.NpcRuntime"))
        assert (await watch.read()).status == health_pb2.HealthCheckResponse.SERVING
        stopping = asyncio.create_task(server.stop(grace=0.5))
        assert (await watch.read()).status == health_pb2.HealthCheckResponse.NOT_SERVING
        await stopping


async def test_bearer_token(tiny_package):
    async with running_server(tiny_package, token="s3cret") as server:
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
            stub = runtime_stub(channel)
            code, details = await _code(stub.ListModels(pb.ListModelsRequest()))
            assert code is grpc.StatusCode.UNAUTHENTICATED and "Bearer" in details
            code, _ = await _code(stub.ListModels(pb.ListModelsRequest(), metadata=[("authorization", "Bearer no")]))
            assert code is grpc.StatusCode.UNAUTHENTICATED
            code, _ = await _code(stub.Generate(pb.GenerateRequest(session_id="x")).read())
            assert code is grpc.StatusCode.UNAUTHENTICATED
            reply = await stub.ListModels(pb.ListModelsRequest(), metadata=[("authorization", "Bearer s3cret")])
            assert reply.models
            health = health_pb2_grpc.HealthStub(channel)  # exempt: probes need no token
            assert (await health.Check(health_pb2.HealthCheckRequest())).status == health_pb2.HealthCheckResponse.SERVING


async def test_tick_that_waited_past_its_deadline_does_no_work(stub, server):
    import time

    from npc_runtime.errors import DeadlineExceeded
    from npc_runtime.sessions import TickRequest

    sid = await _open(stub)
    (late,) = await server.engine.tick([TickRequest(sid, budget_ms=50, max_tokens=1)],
                                       deadline=time.perf_counter() - 0.001)
    assert isinstance(late.error, DeadlineExceeded) and not late.token_ids
    info = await server.engine.session_info(sid)
    assert info["generated_total"] == 0
    await stub.CloseSession(pb.CloseSessionRequest(session_id=sid))


async def test_each_rpc_is_one_engine_submission(stub, server):
    hops = server.engine.submissions
    before = dict(hops)
    sid = await _open(stub, max_new_tokens=6)
    await stub.Tick(pb.TickRequest(entries=[pb.TickEntry(session_id=sid, budget_ms=50, max_tokens=2),
                                            pb.TickEntry(session_id="ghost")]))
    chunks = [c async for c in stub.Generate(pb.GenerateRequest(
        session_id=sid, input=" Choose:", constraint=pb.Constraint(allowed=pb.AllowedSequences(sequences=["[a]"]))))]
    assert chunks[-1].finish_reason == pb.FINISH_REASON_STOP
    await stub.Cancel(pb.CancelRequest(session_id=sid))
    await stub.CloseSession(pb.CloseSessionRequest(session_id=sid))
    delta = {k: v - before.get(k, 0) for k, v in hops.items() if v != before.get(k, 0)}
    assert delta == {"open": 1, "tick": 1, "generate": 1, "cancel": 1, "close": 1}


async def test_save_and_restore_a_session_over_grpc(stub, server):
    sid = await _open(stub, prompt="The blacksmith sells", max_new_tokens=40)
    first = await stub.Tick(pb.TickRequest(entries=[pb.TickEntry(session_id=sid, budget_ms=5000, max_tokens=5)]))
    snap = await stub.SaveSession(pb.SaveSessionRequest(session_id=sid, include_kv=True))
    assert snap.session_id == sid and snap.model == "tiny-llama" and snap.context_tokens > 5
    uninterrupted = await stub.Tick(pb.TickRequest(entries=[pb.TickEntry(session_id=sid, budget_ms=5000,
                                                                         max_tokens=6)]))
    restored = await stub.RestoreSession(pb.RestoreSessionRequest(snapshot=snap, session_id="copy-1"))
    assert restored.session_id == "copy-1" and restored.cached_prefix_tokens > 0
    again = await stub.Tick(pb.TickRequest(entries=[pb.TickEntry(session_id="copy-1", budget_ms=5000, max_tokens=6)]))
    assert list(again.results[0].token_ids) == list(uninterrupted.results[0].token_ids)
    assert first.results[0].token_ids
    code, details = await _code(stub.RestoreSession(pb.RestoreSessionRequest(
        snapshot=pb.SessionSnapshot(data=snap.data[:-9]))))
    assert code is grpc.StatusCode.INVALID_ARGUMENT and "snapshot" in details
    code, _ = await _code(stub.RestoreSession(pb.RestoreSessionRequest(snapshot=snap)))   # sid still open
    assert code is grpc.StatusCode.ALREADY_EXISTS
    code, _ = await _code(stub.SaveSession(pb.SaveSessionRequest(session_id="nope")))
    assert code is grpc.StatusCode.NOT_FOUND
