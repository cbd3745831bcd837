"""`npcrt serve` as a real process: it prints where it listens, serves, and on SIGTERM finishes the in-flight
stream, then exits 0. (The process wiring is tests/helpers/serve_process.py, shared with tests/hostile/.)"""

from __future__ import annotations

import signal

import grpc
import pytest

from npc_proto.v1 import runtime_pb2 as pb
from tests.helpers.serve_process import ServeProcess


def test_sigterm_finishes_in_flight_work_and_exits_0(tiny_package, tmp_path):
    config = '[server]\nhost = "127.0.0.1"\ngrace_s = 20\n[engine]\nmax_sessions = 4\n'
    with ServeProcess(workdir=tmp_path, models=[str(tiny_package)], config=config,
                      extra_args=["--grace", "20"]) as server:
        stub = server.runtime_stub()
        sid = stub.OpenSession(pb.OpenSessionRequest(prompt="Hello", limits=pb.SessionLimits(
            max_new_tokens=150))).session_id
        stream = stub.Generate(pb.GenerateRequest(session_id=sid))
        first = next(stream)
        assert first.token_ids
        # the NpcAgent service is registered beside NpcRuntime
        from npc_proto.v1 import agent_pb2

        with pytest.raises(grpc.RpcError) as info:
            server.agent_stub().UnregisterNpc(agent_pb2.UnregisterNpcRequest(npc_id="nobody"))
        assert info.value.code() is grpc.StatusCode.NOT_FOUND
        server.proc.send_signal(signal.SIGTERM)
        rest = list(stream)  # the stream in flight runs to its end
        assert rest[-1].finished and rest[-1].finish_reason == pb.FINISH_REASON_LENGTH
        assert len(first.token_ids) + sum(len(c.token_ids) for c in rest) == 150
        assert server.proc.wait(timeout=30) == 0
        server.stop()   # already ended: collects the rest of its log
        logs = server.stderr
        assert '"msg": "shutdown requested"' in logs and "Traceback" not in logs
