"""Every answer names the replica that gave it (docs/deploy.md): gRPC initial metadata `npcrt-replica` on unary,
streaming, refused and health calls; the HTTP header on every response."""

from __future__ import annotations

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from npc_proto.v1 import runtime_pb2 as pb
from tests.serving.conftest import running_server, runtime_stub


def _replica(metadata) -> str:
    return next((v for k, v in metadata or () if k == "npcrt-replica"), "")


async def test_grpc_and_http_answers_name_the_replica(tiny_package):
    async with running_server(tiny_package, replica="r7", token="t0ken") as server:
        auth = (("authorization", "Bearer t0ken"),)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
            stub = runtime_stub(channel)
            call = stub.ListModels(pb.ListModelsRequest(), metadata=auth)
            await call
            assert _replica(await call.initial_metadata()) == "r7"
            opened = await stub.OpenSession(pb.OpenSessionRequest(prompt="Hi", limits=pb.SessionLimits(
                max_new_tokens=3)), metadata=auth)
            stream = stub.Generate(pb.GenerateRequest(session_id=opened.session_id), metadata=auth)
            chunks = [chunk async for chunk in stream]
            assert chunks and _replica(await stream.initial_metadata()) == "r7"
            refused = stub.ListModels(pb.ListModelsRequest())            # no token
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await refused
            assert err.value.code() is grpc.StatusCode.UNAUTHENTICATED
            assert _replica(await refused.initial_metadata()) == "r7"
            health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
            await health
            assert _replica(await health.initial_metadata()) == "r7"
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.http_port}") as http:
            assert (await http.get("/healthz")).headers["npcrt-replica"] == "r7"
            assert (await http.get("/v1/models")).headers["npcrt-replica"] == "r7"     # 401, still named


async def test_default_name_is_the_host_name(tiny_package):
    import socket
    async with running_server(tiny_package) as server:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
            call = runtime_stub(channel).ListModels(pb.ListModelsRequest())
            await call
            assert _replica(await call.initial_metadata()) == socket.gethostname()
