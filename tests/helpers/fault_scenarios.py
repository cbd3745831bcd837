"""Faults a real `npcrt serve` must survive without losing data, as scenarios that return what happened
(tests/hostile/test_faults.py asserts on it, bench/bench_hostile.py records it):

  sigkill_during_writes   SIGKILL while NPCs write memories; restart on the same --data-dir
  sigterm_under_load      SIGTERM while steps, ticks and chat completions run; restart on the same --data-dir

A memory counts as acknowledged when the Step that wrote it answered. After the restart every acknowledged
memory must be recalled, every SQLite file in the data dir must pass `PRAGMA integrity_check`, and every NPC
must come back in the FSM state of its last acknowledged step."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.helpers.serve_process import ServeProcess

NPCS = ("guard-a", "guard-b", "guard-c")


def marker(npc_id: str, i: int) -> str:
    # "#7." never matches inside "#17.": each marker is found only where it was written
    return f"marker {npc_id} #{i}."


@dataclass
class WriterLog:
    """Acknowledged steps per NPC, (index, game time, state after the step); and how each writer ended."""
    acked: dict[str, list[tuple[int, float, str]]] = field(default_factory=lambda: {n: [] for n in NPCS})
    endings: dict[str, str] = field(default_factory=dict)

    def count(self) -> int:
        return sum(len(v) for v in self.acked.values())


def register_npcs(server: ServeProcess) -> None:
    from tests.helpers.provider_faults import register_guard

    for npc_id in NPCS:
        register_guard(server, npc_id)


def _step_request(npc_id: str, i: int, *, game_time_s: float, said: str):
    from npc_proto.v1 import agent_pb2 as apb

    return apb.StepRequest(npc_id=npc_id, deadline_ms=150, observation=apb.Observation(
        game_time_s=game_time_s, values={"player_distance": 3.0}, player_utterance=said))


def write_memories(server: ServeProcess, log: WriterLog, stop: threading.Event) -> list[threading.Thread]:
    """One thread per NPC stepping it with a new marker line until `stop` or the first error."""
    import grpc

    from npc_proto.v1 import agent_pb2_grpc

    def run(npc_id: str) -> None:
        # a channel of its own, as _tick_loop's: the helper closes its shared channel once the process ended,
        # which would cancel a call in flight client-side (CANCELLED: not what the server answered)
        channel = grpc.insecure_channel(server.grpc_target)
        stub, md = agent_pb2_grpc.NpcAgentStub(channel), server.metadata()
        i = 0
        try:
            while not stop.is_set():
                game_time = 1.0 + 0.1 * i
                try:
                    decision = stub.Step(_step_request(npc_id, i, game_time_s=game_time, said=marker(npc_id, i)),
                                         metadata=md, timeout=30)
                except grpc.RpcError as exc:
                    log.endings[npc_id] = exc.code().name
                    return
                log.acked[npc_id].append((i, game_time, decision.state))
                i += 1
            log.endings[npc_id] = "stopped"
        finally:
            channel.close()

    threads = [threading.Thread(target=run, args=(n,), daemon=True) for n in NPCS]
    for thread in threads:
        thread.start()
    return threads


def wait_for(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def integrity(data_dir: Path) -> dict[str, str]:
    """PRAGMA integrity_check of every SQLite file in the data dir (opening it replays its WAL)."""
    results = {}
    for path in sorted(data_dir.glob("*.sqlite3")):
        try:
            with sqlite3.connect(path) as db:
                results[path.name] = db.execute("PRAGMA integrity_check").fetchone()[0]
        except sqlite3.Error as exc:
            results[path.name] = f"{type(exc).__name__}: {exc}"
    return results


def verify_restored(server: ServeProcess, log: WriterLog) -> dict:
    """Lost memories and wrong states of each NPC after a restart, from RecallMemories and one quiet Step."""
    import grpc
    from npc_proto.v1 import agent_pb2 as apb

    stub, md = server.agent_stub(), server.metadata()
    lost, states, missing_npcs = [], {}, []
    for npc_id, acked in log.acked.items():
        try:
            memories = stub.RecallMemories(apb.RecallMemoriesRequest(npc_id=npc_id, limit=1000), metadata=md,
                                           timeout=30).memories
        except grpc.RpcError as exc:
            missing_npcs.append(f"{npc_id}: {exc.code().name} {exc.details()}")
            continue
        texts = "\n".join(m.text for m in memories)
        lost += [marker(npc_id, i) for i, _, _ in acked if marker(npc_id, i) not in texts]
        if acked:
            # nothing said, a tenth of a second later: the FSM stays in the state it was restored to
            _, game_time, expected = acked[-1]
            after = stub.Step(_step_request(npc_id, 10_000, game_time_s=game_time + 0.1, said=""), metadata=md,
                              timeout=30)
            states[npc_id] = {"expected": expected, "restored": after.state}
    wrong_states = {n: s for n, s in states.items() if s["expected"] != s["restored"]}
    return {"acknowledged": log.count(), "lost": lost, "missing_npcs": missing_npcs, "states": states,
            "wrong_states": wrong_states}


def sigkill_during_writes(start: Callable[..., ServeProcess], data_dir: Path, *, min_acked: int = 8) -> dict:
    """Kill -9 serve while three NPCs write memories, then restart it on the same data dir."""
    server = start(data_dir=data_dir)
    register_npcs(server)
    log, stop = WriterLog(), threading.Event()
    threads = write_memories(server, log, stop)
    wait_for(lambda: all(len(a) >= min_acked for a in log.acked.values()), timeout=60)
    server.kill()
    stop.set()
    for thread in threads:
        thread.join(timeout=30)
    checks = integrity(data_dir)
    restarted = start(data_dir=data_dir)
    result = verify_restored(restarted, log)
    result.update(integrity=checks, writer_endings=dict(log.endings), killed_exit=server.proc.returncode)
    return result


def sigterm_under_load(start: Callable[..., ServeProcess], data_dir: Path, *, load_s: float = 1.5) -> dict:
    """SIGTERM while memory writers, a Tick loop and a chat-completion loop run; restart on the same data dir."""
    server = start(data_dir=data_dir)
    register_npcs(server)
    log, stop = WriterLog(), threading.Event()
    threads = write_memories(server, log, stop)
    answers: dict[str, list[str]] = {"tick": [], "http": []}
    threads += [threading.Thread(target=_tick_loop, args=(server, stop, answers["tick"]), daemon=True),
                threading.Thread(target=_chat_loop, args=(server, stop, answers["http"]), daemon=True)]
    for thread in threads[len(NPCS):]:
        thread.start()
    time.sleep(load_s)
    begin = time.monotonic()
    code = server.stop(timeout=60)
    stop_s = time.monotonic() - begin
    stop.set()
    for thread in threads:
        thread.join(timeout=30)
    checks = integrity(data_dir)
    restarted = start(data_dir=data_dir)
    result = verify_restored(restarted, log)
    result.update(integrity=checks, exit_code=code, stop_s=round(stop_s, 2), writer_endings=dict(log.endings),
                  tick_answers=sorted(set(answers["tick"])), http_answers=sorted(set(answers["http"])),
                  ticks=answers["tick"].count("OK"), chats=answers["http"].count("200"),
                  traceback="Traceback" in server.stderr)
    return result


def _tick_loop(server: ServeProcess, stop: threading.Event, answers: list[str]) -> None:
    import grpc

    from npc_proto.v1 import runtime_pb2_grpc

    # a channel of its own: `server.stop()` closes the helper's shared channel once the process has ended, and
    # closing a channel cancels its calls on the client side (CANCELLED), which is not what the server answered
    channel = grpc.insecure_channel(server.grpc_target)
    stub = runtime_pb2_grpc.NpcRuntimeStub(channel)
    try:
        while not stop.is_set():
            try:
                server.tick_once(timeout=30, stub=stub)
                answers.append("OK")
            except grpc.RpcError as exc:
                answers.append(exc.code().name)
                return
    finally:
        channel.close()


def _chat_loop(server: ServeProcess, stop: threading.Event, answers: list[str]) -> None:
    while not stop.is_set():
        try:
            reply = server.chat(timeout=30)
        except OSError as exc:          # refused / reset once the server has closed its port
            answers.append(f"connection {type(getattr(exc, 'reason', exc)).__name__}")
            return
        answers.append(str(reply.status))
        if reply.status != 200:
            return
