"""`npcrt serve` as a real process: it prints where it listens, serves, and on SIGTERM finishes the in-flight
stream, then exits 0."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading

import grpc
import pytest

from npc_proto.v1 import runtime_pb2 as pb
from npc_proto.v1 import runtime_pb2_grpc

LISTENING = re.compile(r"listening grpc=\S+:(\d+) http=\S+:(\d+)")


def test_sigterm_finishes_in_flight_work_and_exits_0(tiny_package, tmp_path):
    config = tmp_path / "server.toml"
    config.write_text('[server]\nhost = "127.0.0.1"\ngrace_s = 20\n[engine]\nmax_sessions = 4\n')
    proc = subprocess.Popen(
        [sys.executable, "-m", "npc_runtime.cli", "serve", "--model", str(tiny_package), "--config", str(config),
         "--port", "0", "--http-port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        line = proc.stdout.readline()
        match = LISTENING.search(line)
        assert match, line + proc.stderr.read() if proc.poll() is not None else line
        port = int(match.group(1))
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = runtime_pb2_grpc.NpcRuntimeStub(channel)
            sid = stub.OpenSession(pb.OpenSessionRequest(prompt="Hello", limits=pb.SessionLimits(
                max_new_tokens=150))).session_id
            stream = stub.Generate(pb.GenerateRequest(session_id=sid))
            first = next(stream)
            assert first.token_ids
            # the NpcAgent service is registered beside NpcRuntime
            from npc_proto.v1 import agent_pb2, agent_pb2_grpc

            with pytest.raises(grpc.RpcError) as info:
                agent_pb2_grpc.NpcAgentStub(channel).UnregisterNpc(agent_pb2.UnregisterNpcRequest(npc_id="nobody"))
            assert info.value.code() is grpc.StatusCode.NOT_FOUND
            proc.send_signal(signal.SIGTERM)
            rest = list(stream)  # the stream in flight runs to its end
            assert rest[-1].finished and rest[-1].finish_reason == pb.FINISH_REASON_LENGTH
            assert len(first.token_ids) + sum(len(c.token_ids) for c in rest) == 150
        assert proc.wait(timeout=30) == 0
        logs = proc.stderr.read()
        assert '"msg": "shutdown requested"' in logs and "Traceback" not in logs
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
