"""Fixtures for the serving tests: one tiny real model package per test session (random weights, built from
a config in seconds), real engines and real servers on 127.0.0.1 port 0."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_package(tmp_path_factory) -> Path:
    """An `ort` fp32 package of a tiny random Llama (vocab 512, context 256)."""
    from tests.helpers.tiny_models import make_tiny_hf_model

    root = tmp_path_factory.mktemp("serving-pkg")
    hf_dir = make_tiny_hf_model(root, family="llama")
    out = root / "package"
    try:
        from npc_export import export_model
    except ImportError:  # exporter missing in this checkout: the runtime tests' own factory
        from tests.runtime.package_factory import build_package

        return build_package(hf_dir, out)
    export_model(hf_dir, out, precision="fp32", target="ort", validate=False, progress=False)
    return out


@contextlib.asynccontextmanager
async def running_server(package: Path, *, engine_config: dict | None = None, **server_config):
    """A real NpcServer (gRPC + HTTP) on 127.0.0.1, ports chosen by the OS; stopped and drained at exit."""
    from npc_runtime.config import EngineConfig
    from npc_runtime.serving.config import ServerConfig
    from npc_runtime.serving.server import NpcServer
    from npc_runtime.sessions.engine import Engine

    engine = Engine.from_packages([package], config=EngineConfig(**{"max_sessions": 8, **(engine_config or {})}))
    config = ServerConfig(**{"host": "127.0.0.1", "port": 0, "http_port": 0, "grace_s": 2.0, **server_config})
    server = NpcServer(engine, config=config)
    await server.start()
    try:
        yield server
    finally:
        await server.stop(grace=1.0)
        await server.engine.shutdown(drain=False)


def runtime_stub(channel):
    from npc_proto.v1 import runtime_pb2_grpc

    return runtime_pb2_grpc.NpcRuntimeStub(channel)


@pytest.fixture
async def server(tiny_package):
    async with running_server(tiny_package) as srv:
        yield srv


@pytest.fixture
async def stub(server):
    import grpc

    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        yield runtime_stub(channel)
