from __future__ import annotations

import contextlib

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

from .fake_llm import FakeLLM


@pytest.fixture
def fake_llm():
    with FakeLLM() as server:
        yield server


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
