"""`npcrt serve` is the whole product: a real server process (built-in models, one config file) whose NpcAgent
escalates to an OpenAI-compatible endpoint on loopback, holds its budgets and allowlist, reports it on
/metrics, and keeps memories and registered NPCs across a restart with the same data dir."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import grpc
import pytest

from npc_proto.v1 import agent_pb2 as pb
from npc_proto.v1 import agent_pb2_grpc
from tests.agent.fake_llm import FakeLLM

LISTENING = re.compile(r"listening grpc=\S+:(\d+) http=\S+:(\d+)")

CONFIG = """
[server]
port = 0
http_port = 0
log_level = "WARNING"

[engine]
max_sessions = 8

[agent]
default_deadline_ms = 2000

[escalation]
provider = "openai"
max_attempts = 1
breaker_failures = 50

[escalation.provider_options]
model = "gpt-4o-mini"

[budgets]
npc_calls_per_min = 3
"""


@contextmanager
def served(data_dir: Path, config: Path, env: dict[str, str]):
    proc = subprocess.Popen(
        [sys.executable, "-m", "npc_runtime.cli", "serve", "--config", str(config), "--data-dir", str(data_dir)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **env})
    try:
        line = proc.stdout.readline()
        match = LISTENING.search(line)
        assert match, line + (proc.stderr.read() if proc.poll() is not None else "")
        grpc_port, http_port = int(match.group(1)), int(match.group(2))
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            yield agent_pb2_grpc.NpcAgentStub(channel), http_port
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        err = proc.stderr.read()
        assert "Traceback" not in err, err
        assert f"data dir {data_dir.resolve()}" in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def metric(http_port: int, name: str, labels: str = "") -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics", timeout=10).read().decode()
    pattern = re.compile(rf"^{re.escape(name)}{re.escape(labels)} (\S+)$", re.M)
    found = pattern.search(text)
    return float(found.group(1)) if found else 0.0


def register(stub, npc_id: str):
    return stub.RegisterNpc(pb.RegisterNpcRequest(
        npc_id=npc_id, persona=pb.Persona(name="Bram", role="guard", traits=["stern"]), fsm_name="guard",
        memories=[pb.MemorySeed(text="The king's crown is kept in the castle vault.", importance=6)]))


def crown_stolen(stub, npc_id: str, t: float, deadline_ms: float = 2000):
    return stub.Step(pb.StepRequest(
        npc_id=npc_id, deadline_ms=deadline_ms,
        observation=pb.Observation(game_time_s=t, values={"player_distance": 3.0}),
        events=[pb.GameEvent(kind="crime", story_critical=True, importance=10,
                             description="A messenger shouts that the king's crown was stolen.")]))


@pytest.mark.slow
def test_served_agent_escalates_holds_budgets_and_survives_restart(tmp_path):
    data_dir = tmp_path / "data"
    config = tmp_path / "npcrt.toml"
    config.write_text(CONFIG)
    with FakeLLM(action=None) as cloud:
        env = {"OPENAI_BASE_URL": cloud.openai_base_url, "OPENAI_API_KEY": "sk-test-key-123456",
               "NPCRT_ESCALATION_PROVIDER": "openai"}
        with served(data_dir, config, env) as (stub, http_port):
            assert register(stub, "guard-a").state
            # story-critical: goes to the cloud, and the cloud's (allowed) action executes
            good = crown_stolen(stub, "guard-a", 1.0)
            assert cloud.calls == 1 and good.escalated and good.source == pb.DECISION_SOURCE_CLOUD
            assert good.action in good.allowed_actions and good.dialogue == "Move along, stranger."
            # a forbidden or malformed cloud reply never executes, and is counted
            for mode, t in (("forbidden", 2.0), ("malformed", 3.0)):
                cloud.mode = mode
                d = crown_stolen(stub, "guard-a", t)
                assert d.escalated and d.source == pb.DECISION_SOURCE_FALLBACK, (mode, d)
                assert d.action in d.allowed_actions and d.action not in ("give_item",)
            assert cloud.calls == 3
            assert metric(http_port, "npc_agent_escalations_total", '{outcome="ok"}') == 1
            assert metric(http_port, "npc_agent_escalations_total", '{outcome="rejected"}') == 2
            assert metric(http_port, "npc_agent_fallbacks_total") >= 2
            # the per-NPC budget (3 calls/min) stops the next call: the local decision stands
            cloud.mode = "good"
            d = crown_stolen(stub, "guard-a", 4.0)
            assert cloud.calls == 3 and not d.escalated and d.action in d.allowed_actions
            assert metric(http_port, "npc_agent_escalations_total", '{outcome="denied_budget"}') >= 1
            # the endpoint dies: a fallback within the deadline, never an error
            register(stub, "guard-b")
            cloud.stop()
            d = crown_stolen(stub, "guard-b", 5.0, deadline_ms=800)
            assert d.source == pb.DECISION_SOURCE_FALLBACK and d.action in d.allowed_actions
            assert d.latency_ms < 800 + 500
            assert metric(http_port, "npc_agent_escalation_cost_usd_total") > 0
            last_state = d.state

    # the registry and the memories are on disk
    with sqlite3.connect(data_dir / "memory.sqlite3") as db:
        rows = dict(db.execute("SELECT npc_id, fsm_state FROM npcs").fetchall())
    assert rows.keys() == {"guard-a", "guard-b"} and rows["guard-b"] == last_state

    # restart with the same data dir (and a local provider: no network): the NPCs and their memories are back
    with served(data_dir, config, {"NPCRT_ESCALATION_PROVIDER": "local"}) as (stub, _):
        with pytest.raises(grpc.RpcError) as info:
            register(stub, "guard-a")
        assert info.value.code() == grpc.StatusCode.ALREADY_EXISTS
        recalled = stub.RecallMemories(pb.RecallMemoriesRequest(npc_id="guard-a", query="the stolen crown", limit=50))
        texts = [m.text for m in recalled.memories]
        assert any("crown was stolen" in t for t in texts), texts
        assert any("castle vault" in t for t in texts), texts
        d = stub.Step(pb.StepRequest(npc_id="guard-b", observation=pb.Observation(game_time_s=6.0)))
        assert d.npc_id == "guard-b" and d.action in d.allowed_actions
