"""Stopping: for a moment before the gRPC server stops, new calls are refused UNAVAILABLE by the server itself
(serving/drain.py), so none is caught by the stop and answered CANCELLED; health keeps answering (NOT_SERVING)
and a call already in flight finishes."""

from __future__ import annotations

import asyncio

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from npc_proto.v1 import runtime_pb2 as pb
from npc_runtime.serving.drain import MESSAGE
from tests.serving.conftest import running_server, runtime_stub


async def _code(call):
    try:
        await call
    except grpc.aio.AioRpcError as exc:
        return exc.code(), exc.details()
    return grpc.StatusCode.OK, ""


async def test_a_draining_server_refuses_new_calls_unavailable_and_still_answers_health(tiny_package):
    async with running_server(tiny_package) as server:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
            stub = runtime_stub(channel)
            sid = (await stub.OpenSession(pb.OpenSessionRequest(prompt="Hello traveller"))).session_id
            in_flight = asyncio.ensure_future(stub.Tick(pb.TickRequest(entries=[
                pb.TickEntry(session_id=sid, budget_ms=300, max_tokens=200)])))
            await asyncio.sleep(0.05)
            server._drain.draining = True   # what NpcServer.stop does first  # noqa: SLF001
            code, details = await _code(stub.ListModels(pb.ListModelsRequest()))
            assert code is grpc.StatusCode.UNAVAILABLE and details == MESSAGE
            stream = stub.Generate(pb.GenerateRequest(session_id=sid))
            code, details = await _code(stream.read())
            assert code is grpc.StatusCode.UNAVAILABLE and "shutting down" in details
            health = health_pb2_grpc.HealthStub(channel)
            assert (await health.Check(health_pb2.HealthCheckRequest())).status == \
                health_pb2.HealthCheckResponse.SERVING   # (stop() turns it NOT_SERVING first)
            reply = await in_flight                      # the call in flight finished normally
            assert not reply.results[0].error
            server._drain.draining = False  # noqa: SLF001


async def test_stop_refuses_during_the_lame_duck_window(tiny_package):
    async with running_server(tiny_package) as server:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
            stub = runtime_stub(channel)
            assert (await stub.ListModels(pb.ListModelsRequest())).models
            stopping = asyncio.ensure_future(server.stop(grace=1.0))
            await asyncio.sleep(0.05)   # inside the lame-duck window
            code, _ = await _code(stub.ListModels(pb.ListModelsRequest()))
            assert code is grpc.StatusCode.UNAVAILABLE
            health = health_pb2_grpc.HealthStub(channel)
            assert (await health.Check(health_pb2.HealthCheckRequest())).status == \
                health_pb2.HealthCheckResponse.NOT_SERVING
            await stopping
