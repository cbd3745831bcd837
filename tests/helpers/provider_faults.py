"""Driving `npcrt serve`'s escalation path against a fake OpenAI-compatible endpoint on loopback
(tests/agent/fake_llm.py): the server's config, story-critical steps that always escalate, and the
escalation counters read back from /metrics."""

from __future__ import annotations

import re
import socket

from tests.helpers.serve_process import ServeProcess

# A model missing from the price table is priced at the stricter 5 / 20 USD per 1M tokens, so one call's
# reservation (~1,000 prompt tokens + 200 output) costs ~$0.009: a $0.01/h budget allows about one call.
MODEL = "hostile-model"


def provider_config(*, cost_per_hour_usd: float = 100.0, max_attempts: int = 3, breaker_failures: int = 5,
                    breaker_cooldown_s: float = 10.0) -> str:
    """TOML for serve: escalation to the `openai` provider, budgets generous except the hourly cost."""
    return f"""
[escalation]
max_attempts = {max_attempts}
breaker_failures = {breaker_failures}
breaker_cooldown_s = {breaker_cooldown_s}

[escalation.provider_options]
model = "{MODEL}"

[budgets]
npc_calls_per_min = 100000
npc_tokens_per_min = 1000000000
global_calls_per_min = 100000
global_tokens_per_min = 1000000000
global_cost_per_hour_usd = {cost_per_hour_usd}
"""


def dead_url() -> str:
    """An OpenAI base URL on a loopback port nothing listens on (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def register_guard(server: ServeProcess, npc_id: str) -> None:
    from npc_proto.v1 import agent_pb2 as apb

    server.agent_stub().RegisterNpc(apb.RegisterNpcRequest(
        npc_id=npc_id, persona=apb.Persona(name="Bram", role="guard", traits=["stern"]), fsm_name="guard",
        replace=True), metadata=server.metadata(), timeout=60)


def critical_step(server: ServeProcess, npc_id: str, *, deadline_ms: float = 1000.0, n: int = 0,
                  timeout: float = 60.0):
    """One Step with a story-critical event (always escalated while the budget and breaker allow)."""
    from npc_proto.v1 import agent_pb2 as apb

    request = apb.StepRequest(npc_id=npc_id, deadline_ms=deadline_ms, observation=apb.Observation(
        game_time_s=10.0 + n, values={"player_distance": 3.0}, player_utterance="Give me the crown."),
        events=[apb.GameEvent(kind="crime", description=f"The king's crown vanished ({n}).", story_critical=True)])
    return server.agent_stub().Step(request, metadata=server.metadata(), timeout=timeout)


_SAMPLE = re.compile(r'^(npc_agent_[a-z_]+?)(?:_total)?(?:\{([^}]*)\})? ([-+0-9.eEinfNa]+)$')


def agent_metrics(server: ServeProcess) -> dict[str, float]:
    """The npc_agent_* samples of /metrics as {"escalations{outcome=ok}": 3.0, "escalation_cost_usd": ...}."""
    reply = server.http("GET", "/metrics")
    assert reply.status == 200, f"/metrics answered {reply.status}"
    samples: dict[str, float] = {}
    for line in reply.body.decode().splitlines():
        match = _SAMPLE.match(line)
        if not match:
            continue
        name, labels, value = match.groups()
        if name.endswith("_created"):
            continue
        key = name.removeprefix("npc_agent_") + (f"{{{labels.replace(chr(34), '')}}}" if labels else "")
        samples[key] = float(value)
    return samples


def outcome_count(metrics: dict[str, float], outcome: str) -> float:
    return metrics.get(f"escalations{{outcome={outcome}}}", 0.0)
