"""A real server (gRPC + HTTP on 127.0.0.1, ports from the OS) over the built-in dialogue package, for the
client-compatibility tests (llama-server dialect, OpenAI SDK tools / structured output)."""

from __future__ import annotations

import pytest

from npc_runtime.builtin_packages import locate
from tests.serving.conftest import running_server


@pytest.fixture(scope="session")
def dialogue_package():
    path = locate("npc-dialogue")
    assert path is not None, "the built-in npc-dialogue package ships with the runtime"
    return path


@pytest.fixture
async def server(dialogue_package, tmp_path):
    async with running_server(dialogue_package, engine_config={"warmup": False}, data_dir=str(tmp_path),
                              llama_slots=2, agent_service=False) as srv:
        yield srv


@pytest.fixture
async def http(server):
    import httpx

    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.http_port}", timeout=60) as client:
        yield client
