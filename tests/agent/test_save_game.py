"""NPC save-games (NpcAgent.SaveNpc / RestoreNpc) over a real server: the NPC comes back on another server in
its FSM state with its memories (same recall) and its conversation (same greedy continuation); a hostile or
damaged blob is INVALID_ARGUMENT and registers nothing."""

from __future__ import annotations

import grpc
import pytest

from npc_proto.v1 import agent_pb2 as pb
from npc_proto.v1 import agent_pb2_grpc, runtime_pb2, runtime_pb2_grpc
from npc_runtime.assembly import build_system
from npc_runtime.settings import load_settings

from .test_npc_store import CUSTOM_FSM



async def _server(tmp_path, name):
    settings = load_settings(None, env={}, flags={"server.host@": "127.0.0.1", "server.port@": 0,
                                                   "server.http_port@": -1, "server.data_dir@": str(tmp_path / name),
                                                   "server.snapshot_store@": "off"})
    system = build_system(settings)
    server = system.server()
    await server.start()
    return system, server


async def _turn(stub, sid, new_input=None):
    tokens = []
    while True:
        entry = runtime_pb2.TickEntry(session_id=sid, budget_ms=5000, max_tokens=32)
        if new_input is not None and not tokens:
            entry.new_input, new_input = new_input, None
        (r,) = (await stub.Tick(runtime_pb2.TickRequest(entries=[entry]))).results
        assert not r.error, r.error
        tokens += r.token_ids
        if r.finished:
            return tokens


async def test_an_npc_moves_to_another_server_whole(tmp_path):
    sys_a, srv_a = await _server(tmp_path, "a")
    sys_b, srv_b = await _server(tmp_path, "b")
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{srv_a.grpc_port}") as ca, \
                grpc.aio.insecure_channel(f"127.0.0.1:{srv_b.grpc_port}") as cb:
            agent_a, agent_b = agent_pb2_grpc.NpcAgentStub(ca), agent_pb2_grpc.NpcAgentStub(cb)
            rt_a, rt_b = runtime_pb2_grpc.NpcRuntimeStub(ca), runtime_pb2_grpc.NpcRuntimeStub(cb)
            await agent_a.RegisterNpc(pb.RegisterNpcRequest(
                npc_id="ada", persona=pb.Persona(name="Ada", role="guard", traits=["wary"]), fsm_yaml=CUSTOM_FSM,
                memories=[pb.MemorySeed(text="The mill burned down last winter.", importance=8)]))
            d = await agent_a.Step(pb.StepRequest(npc_id="ada", observation=pb.Observation(
                game_time_s=5.0, values={"player_hostility": 0.9}), events=[pb.GameEvent(
                kind="theft", description="The player stole a sword from the armory.", importance=7)]))
            assert d.state == "alert"
            opened = await rt_a.OpenSession(runtime_pb2.OpenSessionRequest(
                npc_id="ada", prompt="Halt! Who goes there?", limits=runtime_pb2.SessionLimits(max_new_tokens=6)))
            await _turn(rt_a, opened.session_id)
            saved = await agent_a.SaveNpc(pb.SaveNpcRequest(npc_id="ada", session_id=opened.session_id))
            assert saved.memories >= 2 and saved.conversation_tokens > 0
            recall_a = await agent_a.RecallMemories(pb.RecallMemoriesRequest(npc_id="ada", query="sword theft"))

            loaded = await agent_b.RestoreNpc(pb.RestoreNpcRequest(data=saved.data))
            assert loaded.npc_id == "ada" and loaded.state == "alert" and loaded.memories == saved.memories
            recall_b = await agent_b.RecallMemories(pb.RecallMemoriesRequest(npc_id="ada", query="sword theft"))
            assert [m.text for m in recall_b.memories] == [m.text for m in recall_a.memories]
            assert await _turn(rt_b, loaded.session_id, " Answer me!") == \
                await _turn(rt_a, opened.session_id, " Answer me!")

            with pytest.raises(grpc.aio.AioRpcError) as err:
                await agent_b.RestoreNpc(pb.RestoreNpcRequest(data=saved.data))         # "ada" is taken
            assert err.value.code() is grpc.StatusCode.ALREADY_EXISTS
            for bad in (b"", saved.data[:-1], b"NPCSAVE\x00" + bytes(64), saved.data[:30] + b"x" + saved.data[31:]):
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await agent_b.RestoreNpc(pb.RestoreNpcRequest(data=bad, npc_id="other"))
                assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await agent_b.Step(pb.StepRequest(npc_id="other", observation=pb.Observation(game_time_s=1)))
            assert err.value.code() is grpc.StatusCode.NOT_FOUND
    finally:
        for system, server in ((sys_a, srv_a), (sys_b, srv_b)):
            await server.stop(0)
            system.close()


def test_a_hostile_header_is_refused_field_by_field():
    from npc_runtime.agent import save_game
    from npc_runtime.agent.types import Persona
    from npc_runtime.errors import InvalidArgument

    good = save_game.NpcSaveState("x", Persona("X", "guard"), "fsms/guard.yaml", "", "patrol", 0.0,
                                  [("hello", "observation", 5.0, 0.0, 0.0)])
    state, conv = save_game.decode(save_game.encode(good))
    assert state == good and conv == b""
    import json
    import struct
    import zlib

    def blob(header: dict) -> bytes:      # what an edited save file could hold
        head = json.dumps(header).encode()
        body = save_game.MAGIC + struct.pack("<II", 1, len(head)) + head + struct.pack("<I", 0)
        return body + struct.pack("<I", zlib.crc32(body))
    header = json.loads(save_game.encode(good)[16:-8])
    for broken in ({"memories": [["x", "observation", 50.0, 0.0, 0.0]]}, {"entered_s": float("inf")},
                   {"persona": {"name": 1}}, {"memories": [["x"]] * 3}, {"fsm": {"source": "fsms/nope.yaml", "yaml": ""}}):
        with pytest.raises(InvalidArgument):
            save_game.rebuild_fsm(save_game.decode(blob({**header, **broken}))[0])
