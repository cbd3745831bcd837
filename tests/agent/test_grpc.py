"""NpcAgent over real gRPC: a grpc.aio server on port 0 (loopback) with the servicer registered by the
same `agent_hook` that `serving.server.create_server(extra_servicers=...)` calls (create_server itself needs
an engine; the demo runs that path end to end)."""

from __future__ import annotations


import grpc
import pytest

from npc_proto.v1 import agent_pb2 as pb

from .conftest import agent_server, make_runtime


@pytest.fixture
async def stub(memory):
    async with agent_server(make_runtime(memory), workers=4) as (stub, services):
        assert services == ["npc.v1.NpcAgent"]
        yield stub


def guard(npc_id="guard-01", **kw):
    return pb.RegisterNpcRequest(npc_id=npc_id, persona=pb.Persona(name="Bram", role="guard", traits=["stern"]),
                                 fsm_name="guard", memories=[pb.MemorySeed(text="I guard the north gate.")], **kw)


async def test_register_step_unregister(stub):
    reg = await stub.RegisterNpc(guard())
    assert reg.state == "patrol" and "patrol" in reg.allowed_actions
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.RegisterNpc(guard())
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert (await stub.RegisterNpc(guard(replace=True))).state == "patrol"

    d = await stub.Step(pb.StepRequest(npc_id="guard-01", observation=pb.Observation(
        game_time_s=1.0, values={"player_distance": 2.0, "player_is_stealing": 1.0}),
        events=[pb.GameEvent(kind="theft", description="The player grabbed an apple.")]))
    assert d.state == "alert" and d.action == "call_guards" and d.source == pb.DECISION_SOURCE_FSM
    assert d.memories_written == 1 and d.action in d.allowed_actions and d.latency_ms > 0

    d = await stub.Step(pb.StepRequest(npc_id="guard-01", observation=pb.Observation(
        game_time_s=2.0, values={"player_distance": 5.0}, player_utterance="Sorry, here is a coin.")))
    assert d.action in d.allowed_actions and d.source == pb.DECISION_SOURCE_LOCAL_MODEL and d.dialogue

    await stub.UnregisterNpc(pb.UnregisterNpcRequest(npc_id="guard-01", forget=True))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Step(pb.StepRequest(npc_id="guard-01"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_invalid_fsm_names_the_line(stub):
    bad = pb.RegisterNpcRequest(npc_id="x", persona=pb.Persona(name="X", role="guard"),
                                fsm_yaml="name: x\ninitial: a\nstates:\n  a:\n    allowed: [idle, fly]\n    default: idle\n")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.RegisterNpc(bad)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "fsm_yaml[x]:5:" in err.value.details() and "fly" in err.value.details()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Step(pb.StepRequest(npc_id="ghost", deadline_ms=-1))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_play_stream_in_order_with_per_npc_errors(stub):
    async def updates():
        yield pb.PlayRequest(seq=1, register=[guard("g1"), guard("g2"),
                                              pb.RegisterNpcRequest(npc_id="m1", persona=pb.Persona(name="Mara", role="merchant"))])
        for seq in range(2, 12):
            steps = [pb.StepRequest(npc_id=n, observation=pb.Observation(game_time_s=seq * 0.1, values={"player_distance": 10}))
                     for n in ("g1", "g2", "m1")]
            steps.append(pb.StepRequest(npc_id="nobody"))
            yield pb.PlayRequest(seq=seq, steps=steps)

    responses = [r async for r in stub.Play(updates())]
    assert [r.seq for r in responses] == list(range(1, 12))
    assert not responses[0].errors
    for r in responses[1:]:
        assert [d.npc_id for d in r.decisions] == ["g1", "g2", "m1"]
        assert [(e.npc_id, e.code) for e in r.errors] == [("nobody", grpc.StatusCode.NOT_FOUND.value[0])]
        assert all(d.action in d.allowed_actions for d in r.decisions)


async def test_play_bad_deadline_only_fails_that_npc(stub):
    async def updates():
        yield pb.PlayRequest(seq=1, register=[guard("g1"), guard("g2")], steps=[
            pb.StepRequest(npc_id="g1", deadline_ms=-5), pb.StepRequest(npc_id="g2")])

    (resp,) = [r async for r in stub.Play(updates())]
    assert [d.npc_id for d in resp.decisions] == ["g2"]
    assert [(e.npc_id, e.code) for e in resp.errors] == [("g1", grpc.StatusCode.INVALID_ARGUMENT.value[0])]
