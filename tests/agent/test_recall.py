"""NpcAgent.RecallMemories over real gRPC (grpc.aio on 127.0.0.1, port 0): ranked by the agent's own
retrieval score, limit rules, empty query = newest first, kinds, unknown NPC, and a recall never changes what
the agent retrieves later."""

from __future__ import annotations

import grpc
import pytest

from npc_proto.v1 import agent_pb2 as pb
from npc_runtime.agent.fsm_loader import load_builtin_fsm
from npc_runtime.agent.memory import RECALL_KINDS, recall_kind
from npc_runtime.agent.types import Event, Percept, Persona

from .conftest import agent_server, make_runtime, register_guard

NPC = "guard-01"


@pytest.fixture
def runtime(memory):
    rt = make_runtime(memory)
    register_guard(rt, NPC)
    return rt


@pytest.fixture
async def stub(runtime):
    async with agent_server(runtime, workers=2) as (stub, _):
        yield stub


def remember(runtime, texts_kinds: list[tuple[str, str, float, float]]) -> None:
    for text, kind, importance, t in texts_kinds:
        runtime.memory.add(NPC, text, kind=kind, importance=importance, game_time_s=t)


async def recall(stub, query="", limit=0, npc_id=NPC) -> list[pb.Memory]:
    return list((await stub.RecallMemories(pb.RecallMemoriesRequest(npc_id=npc_id, query=query, limit=limit))).memories)


async def test_ranked_by_the_agents_retrieval_score(runtime, stub):
    remember(runtime, [
        ("The player stole an apple from the market stall.", "event:theft", 7, 0),
        ("It rained all morning.", "observation", 1, 3600),
        ("The king's crown was stolen from the castle.", "event:theft", 9, 7200),
        ("The baker sells bread at dawn.", "seed", 3, 10),
        ("The player said: \"Where is the crown?\"", "utterance", 4, 7300),
    ])
    got = await recall(stub, "who stole the crown?")
    # the same order and scores as the agent's own retrieval over the same memories (budget large enough for all)
    agent = runtime.memory.retrieve(NPC, "who stole the crown?", now_s=7300, token_budget=10_000, touch=False)
    assert [m.text for m in got] == [m.text for m in agent]
    assert [round(m.score, 5) for m in got] == [round(m.score, 5) for m in agent]
    assert "crown was stolen" in got[0].text and got[0].score >= got[1].score >= got[-1].score
    assert got[0].importance == 9 and got[0].game_time_s == 7200


async def test_recall_is_not_an_access(runtime, stub):
    remember(runtime, [(f"memory {i} about the gate", "observation", 5, i * 3600.0) for i in range(10)])
    before = {m.id: m.last_access_s for m in runtime.memory.all(NPC)}
    agent_before = [m.id for m in runtime.memory.retrieve(NPC, "the gate", now_s=40_000, touch=False)]
    for _ in range(3):
        await recall(stub, "memory 0 about the gate", limit=2)
    assert {m.id: m.last_access_s for m in runtime.memory.all(NPC)} == before
    assert [m.id for m in runtime.memory.retrieve(NPC, "the gate", now_s=40_000, touch=False)] == agent_before


async def test_empty_query_is_newest_first(runtime, stub):
    remember(runtime, [("first", "observation", 9, 0), ("second", "observation", 1, 5), ("third", "reflection", 2, 9)])
    got = await recall(stub)
    assert [m.text for m in got] == ["third", "second", "first"] and all(m.score == 0 for m in got)
    assert [m.text for m in await recall(stub, "   ")] == ["third", "second", "first"]


async def test_limit(runtime, stub):
    remember(runtime, [(f"note {i}", "observation", 5, float(i)) for i in range(25)])
    assert len(await recall(stub)) == 20                       # 0 = 20
    assert len(await recall(stub, "note", limit=3)) == 3
    assert len(await recall(stub, limit=1000)) == 25
    for bad in (1001, 5000):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await recall(stub, limit=bad)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "1-1000" in err.value.details()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await recall(stub, query="x" * 2001)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "query" in err.value.details()


async def test_kinds(runtime, stub):
    # written by the agent itself: a seed (register), an event and the player's words (step)
    runtime.unregister(NPC)
    runtime.register(NPC, Persona("Bram", "guard"), load_builtin_fsm("guard"), memories=[("I guard the north gate.", 5)])
    runtime.step(NPC, Percept(game_time_s=1.0, values={"player_distance": 9.0}, player_utterance="Hello there"),
                 [Event("greeting", "The player waved.")])
    remember(runtime, [("The player is polite.", "reflection", 6, 2), ("I chose to warn", "decision", 5, 3),
                       ("It is cold.", "observation", 1, 4)])
    kinds = {m.text: m.kind for m in await recall(stub, limit=100)}
    assert kinds == {
        "I guard the north gate.": pb.MEMORY_KIND_OBSERVATION,
        "The player waved.": pb.MEMORY_KIND_OBSERVATION,
        'The player said: "Hello there"': pb.MEMORY_KIND_DIALOGUE,
        "The player is polite.": pb.MEMORY_KIND_REFLECTION,
        "I chose to warn": pb.MEMORY_KIND_ESCALATION,
        "It is cold.": pb.MEMORY_KIND_OBSERVATION,
    }
    # one table covers every stored kind, and each maps onto a wire kind
    assert {recall_kind(k) for k in RECALL_KINDS} == {"observation", "dialogue", "reflection", "escalation"}
    assert recall_kind("event:theft") == "observation" and recall_kind("something_new") == "observation"


async def test_unknown_npc(stub):
    for npc_id in ("nobody", ""):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await recall(stub, "anything", npc_id=npc_id)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
