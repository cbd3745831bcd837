"""A fleet on this machine (issue 11): agent-step throughput through nginx with 1, 2 and 3 `npcrt serve`
replicas sharing PostgreSQL and Redis, and the failover time when one of 3 replicas is SIGKILLed.

    python -m bench.bench_fleet                     # needs postgresql, redis-server and nginx installed
    python -m bench.bench_fleet --seconds 5 --npcs 60

Throughput: `--clients` threads step `--npcs` NPCs (quiet observations: the FSM and policy path, the common
case in a game) through the proxy for `--seconds`. Failover: every NPC stepped once, the replica holding the
most NPCs killed, then each NPC stepped again: for the NPCs that moved, the latency of that first step (the
proxy's retry on the next replica of the ring, and loading the NPC from PostgreSQL). All processes share this
machine's cores, so more replicas cannot add CPU here: the scaling on separate machines is reasoned in
docs/deploy.md from the one-replica figure. Writes bench/results/fleet.json.
"""

from __future__ import annotations

import argparse
import collections
import threading
import time

import grpc
import numpy as np

from bench.common import print_table, result_metadata, write_json
from npc_proto.v1 import agent_pb2, agent_pb2_grpc
from tests.helpers.fleet import Fleet, replica_of
from tests.helpers.postgres import PostgresServer, find_pg_bin
from tests.helpers.redis_server import RedisServer


def _register(stub, ids: list[str]) -> dict[str, str]:
    home = {}
    for npc_id in ids:
        _, call = stub.RegisterNpc.with_call(agent_pb2.RegisterNpcRequest(
            npc_id=npc_id, persona=agent_pb2.Persona(name=npc_id, role="guard"), fsm_name="guard", replace=True),
            metadata=Fleet.route(npc_id), timeout=30)
        home[npc_id] = replica_of(call)
    return home


def _step(stub, npc_id: str, t: float):
    request = agent_pb2.StepRequest(npc_id=npc_id, deadline_ms=2000, observation=agent_pb2.Observation(
        game_time_s=t, values={"player_distance": 30.0}))
    return stub.Step.with_call(request, metadata=Fleet.route(npc_id), timeout=30)


def throughput(fleet: Fleet, ids: list[str], *, clients: int, seconds: float) -> dict:
    channel = grpc.insecure_channel(fleet.grpc_target)
    stub = agent_pb2_grpc.NpcAgentStub(channel)
    _register(stub, ids)
    for npc_id in ids:                                  # warm: every NPC loaded on its replica
        _step(stub, npc_id, 0.0)
    latencies: list[float] = []
    errors = [0]
    stop = time.monotonic() + seconds
    lock = threading.Lock()

    def client(k: int) -> None:
        mine = ids[k::clients]
        t, i = 1.0, 0
        local = []
        while time.monotonic() < stop:
            started = time.perf_counter()
            try:
                _step(stub, mine[i % len(mine)], t)
                local.append((time.perf_counter() - started) * 1000)
            except grpc.RpcError:
                errors[0] += 1
            i += 1
            t += 0.1
        with lock:
            latencies.extend(local)
    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    started = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    elapsed = time.perf_counter() - started
    channel.close()
    a = np.asarray(latencies) if latencies else np.zeros(1)
    return {"steps": len(latencies), "steps_per_s": len(latencies) / elapsed, "errors": errors[0],
            "p50_ms": float(np.percentile(a, 50)), "p99_ms": float(np.percentile(a, 99))}


def failover(fleet: Fleet, ids: list[str]) -> dict:
    channel = grpc.insecure_channel(fleet.grpc_target)
    stub = agent_pb2_grpc.NpcAgentStub(channel)
    home = _register(stub, ids)
    for npc_id in ids:
        _step(stub, npc_id, 1.0)
    victim = collections.Counter(home.values()).most_common(1)[0][0]
    fleet.kill(victim)
    killed_at = time.perf_counter()
    moved_ms, first_success_ms, errors = [], None, 0
    for npc_id in ids:
        started = time.perf_counter()
        try:
            _, call = _step(stub, npc_id, 2.0)
        except grpc.RpcError:
            errors += 1
            continue
        if home[npc_id] == victim:
            moved_ms.append((time.perf_counter() - started) * 1000)
            if first_success_ms is None:
                first_success_ms = (time.perf_counter() - killed_at) * 1000
            assert replica_of(call) != victim
    channel.close()
    a = np.asarray(moved_ms) if moved_ms else np.zeros(1)
    return {"npcs": len(ids), "moved": len(moved_ms), "errors": errors, "victim": victim,
            "first_success_after_kill_ms": first_success_ms,
            "moved_first_step_p50_ms": float(np.percentile(a, 50)),
            "moved_first_step_p99_ms": float(np.percentile(a, 99))}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--npcs", type=int, default=200)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--replicas", type=int, nargs="+", default=[1, 2, 3])
    args = parser.parse_args(argv)
    meta = result_metadata(argv)
    postgres = PostgresServer(find_pg_bin()).start()
    redis = RedisServer().start()
    rows, data = [], {"throughput": {}, "clients": args.clients, "npcs": args.npcs, "seconds": args.seconds}
    try:
        ids = [f"npc-{i:03d}" for i in range(args.npcs)]
        for n in args.replicas:
            with Fleet(postgres, replicas=n, extra_args=["--snapshot-store", redis.url]) as fleet:
                result = throughput(fleet, ids, clients=args.clients, seconds=args.seconds)
            data["throughput"][str(n)] = result
            rows.append({"replicas": n, "steps/s": f"{result['steps_per_s']:.0f}",
                         "p50 ms": f"{result['p50_ms']:.1f}", "p99 ms": f"{result['p99_ms']:.1f}",
                         "errors": result["errors"]})
        with Fleet(postgres, replicas=3, extra_args=["--snapshot-store", redis.url]) as fleet:
            data["failover"] = failover(fleet, ids)
    finally:
        redis.stop()
        postgres.stop()
    base = data["throughput"].get("1", {}).get("steps_per_s")
    for row in rows:
        row["vs 1 replica"] = f"{float(row['steps/s']) / base:.2f}x" if base else ""
    print_table(rows, [(c, c) for c in ("replicas", "steps/s", "vs 1 replica", "p50 ms", "p99 ms", "errors")],
                title=f"agent steps through nginx, {args.clients} clients, {args.npcs} NPCs")
    f = data["failover"]
    print(f"failover: {f['moved']} NPCs moved off {f['victim']}; first success {f['first_success_after_kill_ms']:.0f} ms "
          f"after the kill; their first step p50 {f['moved_first_step_p50_ms']:.1f} ms, "
          f"p99 {f['moved_first_step_p99_ms']:.1f} ms; errors {f['errors']}")
    write_json("fleet", data, meta=meta)
    return data


if __name__ == "__main__":
    main()
