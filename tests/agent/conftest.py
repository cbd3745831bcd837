from __future__ import annotations

import contextlib
import os

import grpc
import pytest

from npc_proto.v1 import agent_pb2_grpc

from npc_runtime.agent.brain import AgentRuntime
from npc_runtime.agent.config import AgentConfig
from npc_runtime.agent.escalation import EscalationConfig, EscalationManager
from npc_runtime.agent.fsm_loader import load_builtin_fsm
from npc_runtime.agent.memory import MemoryStore
from npc_runtime.agent.types import Persona
from npc_runtime.serving.agent_servicer import agent_hook

from tests.helpers.postgres import PostgresServer, find_pg_bin

from .fake_llm import FakeLLM


@pytest.fixture
def fake_llm():
    with FakeLLM() as server:
        yield server


@pytest.fixture(scope="session")
def postgres_server():
    """One throwaway PostgreSQL server for the session (tests/helpers/postgres.py); skips without the binaries
    unless NPCRT_REQUIRE_SERVICES=1 (CI installs them)."""
    bin_dir = find_pg_bin()
    if bin_dir is None:
        if os.environ.get("NPCRT_REQUIRE_SERVICES") == "1":
            pytest.fail("NPCRT_REQUIRE_SERVICES=1 but no PostgreSQL binaries (apt-get install postgresql)")
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    server = PostgresServer(bin_dir).start()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_location(request, tmp_path):
    """Where an agent database lives, once per backend: a SQLite file, then a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        return str(tmp_path / "memory.sqlite3")
    return request.getfixturevalue("postgres_server").url_for_new_schema()


@pytest.fixture
def memory():
    store = MemoryStore(":memory:")
    yield store
    store.close()


def make_runtime(memory: MemoryStore, provider=None, *, escalation_config: EscalationConfig | None = None,
                 **config) -> AgentRuntime:
    esc = None
    if provider is not None:
        esc = EscalationManager(provider, config=escalation_config or EscalationConfig(), memory=memory)
    return AgentRuntime(config=AgentConfig(memory_db=":memory:", **config), memory=memory, escalation=esc)


def register_guard(rt: AgentRuntime, npc_id: str = "guard-01") -> None:
    rt.register(npc_id, Persona("Bram", "guard", ("stern", "loyal")), load_builtin_fsm("guard"))


@contextlib.asynccontextmanager
async def agent_server(runtime: AgentRuntime, *, workers: int):
    """(stub, service names): the NpcAgent servicer over `runtime` on a real grpc.aio server, 127.0.0.1,
    a port the OS picks; stopped at exit (the runtime is the caller's to close)."""
    server = grpc.aio.server()
    services = agent_hook(runtime, workers=workers)(server, None)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield agent_pb2_grpc.NpcAgentStub(channel), services
    finally:
        await channel.close()
        await server.stop(None)
