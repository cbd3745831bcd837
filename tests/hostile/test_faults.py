"""Faults a real `npcrt serve` survives with nothing lost: SIGKILL during memory writes and SIGTERM under
load (then a restart on the same --data-dir), and an escalation provider that hangs, answers with hostile
replies, or is dead (a fake OpenAI-compatible endpoint on loopback, tests/agent/fake_llm.py)."""

from __future__ import annotations

import time

import pytest

from npc_proto.v1 import agent_pb2 as apb
from tests.agent.fake_llm import FakeLLM
from tests.helpers import fault_scenarios
from tests.helpers.provider_faults import (agent_metrics, critical_step, dead_url, outcome_count, provider_config,
                                           register_guard)

pytestmark = pytest.mark.timeout(300)

# tests/agent/fake_llm.py's "hang" mode answers after 3 s: a step that returns well before that did not
# wait for the provider
HANG_S = 3.0


def _no_data_lost(result: dict) -> None:
    assert result["acknowledged"] > 0, result
    assert not result["missing_npcs"], f"NPCs did not come back: {result['missing_npcs']}"
    assert not result["lost"], f"{len(result['lost'])} acknowledged memories lost: {result['lost'][:10]}"
    assert not result["wrong_states"], f"FSM states not restored: {result['wrong_states']}"
    assert all(v == "ok" for v in result["integrity"].values()) and result["integrity"], result["integrity"]


def test_sigkill_during_memory_writes_loses_nothing_acknowledged(serve_factory, tmp_path):
    result = fault_scenarios.sigkill_during_writes(serve_factory, tmp_path / "data")
    assert result["killed_exit"] == -9
    assert set(result["writer_endings"].values()) <= {"UNAVAILABLE", "stopped"}, result["writer_endings"]
    _no_data_lost(result)


def test_sigterm_under_load_finishes_or_refuses_in_flight_work(serve_factory, tmp_path):
    result = fault_scenarios.sigterm_under_load(serve_factory, tmp_path / "data")
    assert result["exit_code"] == 0 and not result["traceback"], result
    assert result["ticks"] > 0 and result["chats"] > 0, result
    # in flight: finished (OK / 200) or refused as the server goes (UNAVAILABLE / 503 / connection closed)
    assert set(result["writer_endings"].values()) <= {"UNAVAILABLE", "stopped"}, result["writer_endings"]
    assert set(result["tick_answers"]) <= {"OK", "UNAVAILABLE"}, result["tick_answers"]
    assert all(a in ("200", "503") or a.startswith("connection ") for a in result["http_answers"]), result
    _no_data_lost(result)


def _timed_step(server, npc_id: str, *, deadline_ms: float, n: int):
    start = time.monotonic()
    decision = critical_step(server, npc_id, deadline_ms=deadline_ms, n=n)
    return decision, time.monotonic() - start


def test_hanging_provider_falls_back_locally_within_the_deadline(serve_factory):
    with FakeLLM(mode="hang") as fake:
        server = serve_factory(provider_url=fake.openai_base_url, config=provider_config(breaker_failures=100))
        register_guard(server, "guard-01")
        for n in range(3):
            decision, wall_s = _timed_step(server, "guard-01", deadline_ms=300, n=n)
            assert decision.source == apb.DECISION_SOURCE_FALLBACK and decision.escalated, decision
            assert decision.action in decision.allowed_actions
            assert wall_s < HANG_S - 0.5, f"the step waited {wall_s:.2f} s: it waited on the hanging provider"
        assert fake.calls >= 1
        metrics = agent_metrics(server)
        server.check_alive()
    assert metrics.get("fallbacks", 0) >= 3, metrics


def test_hostile_provider_replies_are_refused_and_the_allowlist_holds(serve_factory):
    """Malformed JSON and forbidden actions are rejected (fallback); a 5 MB line is cut to the dialogue limit.
    One server, the endpoint switching modes between rounds (a server start costs more than the steps)."""
    with FakeLLM(huge_chars=5_000_000) as fake:
        server = serve_factory(provider_url=fake.openai_base_url, config=provider_config())
        register_guard(server, "guard-01")
        rss_before = server.rss_kib()
        rounds = {}
        for mode in ("malformed", "forbidden", "huge"):
            fake.mode = mode
            calls = fake.calls
            rounds[mode] = [critical_step(server, "guard-01", deadline_ms=3000, n=len(rounds) * 3 + n)
                            for n in range(3)]
            assert fake.calls - calls >= 3, f"{mode}: the provider was not asked"
        rss_after = server.rss_kib()
        metrics = agent_metrics(server)
        server.check_alive()
    for mode, decisions in rounds.items():
        for d in decisions:
            assert d.action in d.allowed_actions, (mode, d)
            assert len(d.dialogue) <= 1000, f"{mode}: a {len(d.dialogue)}-character line reached the game"
        if mode == "huge":   # a well-formed decision with an endless line: the line is cut, the action stands
            assert all(d.source == apb.DECISION_SOURCE_CLOUD for d in decisions), decisions
        else:
            assert all(d.source == apb.DECISION_SOURCE_FALLBACK and d.rejected_action for d in decisions), decisions
    assert outcome_count(metrics, "rejected") == 6, metrics
    assert rss_after - rss_before < 200 * 1024, f"RSS grew {(rss_after - rss_before) // 1024} MiB"


def test_dead_provider_falls_back_and_opens_the_breaker(serve_factory):
    server = serve_factory(provider_url=dead_url(), config=provider_config(
        max_attempts=1, breaker_failures=3, breaker_cooldown_s=600))
    register_guard(server, "guard-01")
    decisions = [critical_step(server, "guard-01", deadline_ms=1000, n=n) for n in range(6)]
    for d in decisions:
        assert d.source == apb.DECISION_SOURCE_FALLBACK and d.action in d.allowed_actions, d
    metrics = agent_metrics(server)
    # three refused connections open the breaker (fewer if a slow attempt also timed out), then no calls
    failed, refused = outcome_count(metrics, "failed"), outcome_count(metrics, "circuit_open")
    assert 1 <= failed <= 3 and refused >= 3 and failed + refused == 6, metrics
    server.check_alive()
