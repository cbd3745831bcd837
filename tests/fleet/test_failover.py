"""A fleet survives the loss of a replica (issue 11): 3 real `npcrt serve` replicas sharing a real PostgreSQL,
behind a real nginx running deploy/nginx/nginx.conf (consistent hash on `x-npc-id`). 200 NPCs are registered
and stepped through the proxy; the replica holding the most NPCs is SIGKILLed; every NPC's next step succeeds
(on another replica for the moved ones), in the FSM state it had reached, and no agent memory is lost.

Each of the 200 NPCs also holds a conversation (an NpcRuntime session), and those survive too: each replica
writes a session's snapshot (KV included) to the shared Redis when a turn ends; the replica that gets the next
turn of a session it does not hold restores it from there, and every conversation's next turn has the greedy
tokens of a conversation on a server that never failed."""

from __future__ import annotations

import collections
import time

import grpc

from npc_proto.v1 import agent_pb2, agent_pb2_grpc, runtime_pb2, runtime_pb2_grpc
from npc_runtime.agent.memory import MemoryStore
from tests.helpers.fleet import Fleet, replica_of

NPCS = 200


def _step(stub, npc_id: str, t: float, hostility: float):
    request = agent_pb2.StepRequest(
        npc_id=npc_id, deadline_ms=2000,
        observation=agent_pb2.Observation(game_time_s=t, values={"player_distance": 3.0,
                                                                  "player_hostility": hostility}),
        events=[agent_pb2.GameEvent(kind="speech", description=f"The player greets {npc_id} at t={t:.0f}.",
                                    importance=4)])
    return stub.Step.with_call(request, metadata=Fleet.route(npc_id), timeout=30)


PROMPTS = ["I am the guard of the northern gate.", "The blacksmith sells", "Would you like to trade?"]


def _turn(stub, session_id: str, npc_id: str, new_input: str | None = None):
    """Tick a session's turn to its end through the proxy; (tokens, replica of the first tick, its stats)."""
    tokens, replica, stats = [], "", None
    while True:
        entry = runtime_pb2.TickEntry(session_id=session_id, budget_ms=2000, max_tokens=64)
        if new_input is not None and not tokens and not replica:
            entry.new_input = new_input
        reply, call = stub.Tick.with_call(runtime_pb2.TickRequest(entries=[entry]), metadata=Fleet.route(npc_id),
                                          timeout=30)
        (result,) = reply.results
        assert not result.error, result.error
        replica, stats = replica or replica_of(call), stats or result.stats
        tokens += result.token_ids
        if result.finished:
            return tokens, replica, stats


def test_every_npc_survives_a_killed_replica(postgres, redis_server, nginx):
    # room for every conversation on the two replicas left after the kill
    extra = ["--snapshot-store", redis_server.url, "--max-sessions", "256"]
    with Fleet(postgres, replicas=3, extra_args=extra) as fleet:
        channel = grpc.insecure_channel(fleet.grpc_target)
        stub = agent_pb2_grpc.NpcAgentStub(channel)
        runtime = runtime_pb2_grpc.NpcRuntimeStub(channel)
        ids = [f"npc-{i:03d}" for i in range(NPCS)]
        conversations = {}      # every NPC also holds a conversation (an engine session) with the player
        for i, npc_id in enumerate(ids):
            opened = runtime.OpenSession(runtime_pb2.OpenSessionRequest(
                npc_id=npc_id, prompt=PROMPTS[i % len(PROMPTS)], limits=runtime_pb2.SessionLimits(max_new_tokens=8)),
                metadata=Fleet.route(npc_id), timeout=30)
            first, where, _ = _turn(runtime, opened.session_id, npc_id)
            conversations[npc_id] = (opened.session_id, where, first)
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
        survivor = next(name for name in fleet.names if name != victim)
        time.sleep(0.5)             # the write-behind of the last finished turns (bounded, asynchronous)
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

        # engine sessions: the next turn of every conversation, through the proxy, after the kill
        direct = runtime_pb2_grpc.NpcRuntimeStub(
            grpc.insecure_channel(f"127.0.0.1:{fleet.replicas[survivor].grpc_port}"))
        uninterrupted = {}      # per prompt: both turns on a replica that never failed
        for prompt in PROMPTS:
            reference = direct.OpenSession(runtime_pb2.OpenSessionRequest(
                prompt=prompt, limits=runtime_pb2.SessionLimits(max_new_tokens=8)), timeout=30)
            uninterrupted[prompt] = (_turn(direct, reference.session_id, "")[0],
                                     _turn(direct, reference.session_id, "", new_input=" Who goes there?")[0])
            direct.CloseSession(runtime_pb2.CloseSessionRequest(session_id=reference.session_id), timeout=30)
        taken_over = 0
        for i, (npc_id, (session_id, where, first)) in enumerate(conversations.items()):
            second, served_by, stats = _turn(runtime, session_id, npc_id, new_input=" Who goes there?")
            assert (first, second) == uninterrupted[PROMPTS[i % len(PROMPTS)]], \
                "a conversation continues with the tokens of an uninterrupted one"
            if where == victim:
                taken_over += 1
                assert served_by != victim and stats.restored_from == "store"
        assert taken_over > 0, "the killed replica held some conversations"
        memories.close()
        channel.close()
