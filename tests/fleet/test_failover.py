"""A fleet survives the loss of a replica (issue 11): 3 real `npcrt serve` replicas sharing a real PostgreSQL,
behind a real nginx running deploy/nginx/nginx.conf (consistent hash on `x-npc-id`). 200 NPCs are registered
and stepped through the proxy; the replica holding the most NPCs is SIGKILLed; every NPC's next step succeeds
(on another replica for the moved ones), in the FSM state it had reached, and no agent memory is lost.

What does not survive yet: open engine sessions (NpcRuntime.OpenSession / Tick) live in one replica's KV pool;
session snapshots are the part of issue 11 still open (docs/deploy.md)."""

from __future__ import annotations

import collections
import os
import time

import grpc
import pytest

from npc_proto.v1 import agent_pb2, agent_pb2_grpc
from npc_runtime.agent.memory import MemoryStore
from tests.helpers.fleet import Fleet, find_nginx, replica_of
from tests.helpers.postgres import PostgresServer, find_pg_bin

NPCS = 200


@pytest.fixture(scope="module")
def postgres():
    if find_pg_bin() is None or find_nginx() is None:
        if os.environ.get("NPCRT_REQUIRE_POSTGRES") == "1":
            pytest.fail("the fleet test needs PostgreSQL and nginx (apt-get install postgresql nginx)")
        pytest.skip("the fleet test needs PostgreSQL and nginx (apt-get install postgresql nginx)")
    server = PostgresServer(find_pg_bin()).start()
    yield server
    server.stop()


def _step(stub, npc_id: str, t: float, hostility: float):
    request = agent_pb2.StepRequest(
        npc_id=npc_id, deadline_ms=2000,
        observation=agent_pb2.Observation(game_time_s=t, values={"player_distance": 3.0,
                                                                  "player_hostility": hostility}),
        events=[agent_pb2.GameEvent(kind="speech", description=f"The player greets {npc_id} at t={t:.0f}.",
                                    importance=4)])
    return stub.Step.with_call(request, metadata=Fleet.route(npc_id), timeout=30)


def test_every_npc_survives_a_killed_replica(postgres):
    with Fleet(postgres, replicas=3) as fleet:
        channel = grpc.insecure_channel(fleet.grpc_target)
        stub = agent_pb2_grpc.NpcAgentStub(channel)
        ids = [f"npc-{i:03d}" for i in range(NPCS)]
        home: dict[str, str] = {}
        for npc_id in ids:
            _, call = stub.RegisterNpc.with_call(agent_pb2.RegisterNpcRequest(
                npc_id=npc_id, persona=agent_pb2.Persona(name=npc_id, role="guard"), fsm_name="guard"),
                metadata=Fleet.route(npc_id), timeout=30)
            home[npc_id] = replica_of(call)
        state: dict[str, str] = {}
        for turn in (1, 2):
            for npc_id in ids:
                decision, call = _step(stub, npc_id, float(turn), hostility=0.0)
                assert replica_of(call) == home[npc_id], "the proxy must keep one NPC on one replica"
                state[npc_id] = decision.state
        per_replica = collections.Counter(home.values())
        assert set(per_replica) == set(fleet.names), f"the hash spreads NPCs over every replica: {per_replica}"

        memories = MemoryStore(fleet.memory_url)
        before = {npc_id: memories.count(npc_id) for npc_id in ids}
        victim = per_replica.most_common(1)[0][0]
        fleet.kill(victim)

        failover_ms = []
        for npc_id in ids:
            start = time.perf_counter()
            decision, call = _step(stub, npc_id, 3.0, hostility=0.0)
            served_by = replica_of(call)
            if home[npc_id] == victim:
                failover_ms.append((time.perf_counter() - start) * 1000)
                assert served_by not in ("", victim)
            else:
                assert served_by == home[npc_id], "NPCs of the live replicas stay where they are"
            assert decision.npc_id == npc_id and decision.action
            assert decision.state == state[npc_id], "the NPC continues in the FSM state it had reached"
        after = {npc_id: memories.count(npc_id) for npc_id in ids}
        assert all(after[n] >= before[n] for n in ids), "no memory written before the kill is lost"
        assert len(failover_ms) == per_replica[victim]
        memories.close()
        channel.close()
