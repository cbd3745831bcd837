"""Escalation against a fake OpenAI-compatible / Anthropic endpoint on loopback: good, forbidden and
malformed decisions, an endpoint that dies or hangs (fallback within the deadline), the circuit breaker,
budgets under a storm of novel events, and every escalation recorded in SQLite."""

from __future__ import annotations

import time

import pytest

from npc_runtime.agent.budget import Budget, BudgetConfig, CircuitBreaker, price_usd
from npc_runtime.agent.escalation import EscalationConfig, validate_decision
from npc_runtime.agent.providers import make_provider
from npc_runtime.agent.providers.anthropic_provider import AnthropicProvider
from npc_runtime.agent.providers.openai_provider import OpenAIProvider
from npc_runtime.agent.types import Event, Percept
from npc_runtime.errors import InvalidArgument, Unauthenticated

from .conftest import make_runtime, register_guard

TALK = Percept(game_time_s=1.0, values={"player_distance": 3.0}, player_utterance="Open the gate, I have a letter.")


def openai_runtime(memory, fake, **esc):
    provider = OpenAIProvider(model="gpt-4o-mini", api_key="test-key", base_url=fake.openai_base_url)
    cfg = EscalationConfig(provider="openai", **esc)
    rt = make_runtime(memory, provider, escalation_config=cfg)
    register_guard(rt)
    return rt


def critical(text="The king's crown vanished from the castle.") -> list[Event]:
    return [Event("crime", text, story_critical=True)]


def test_good_decision_is_used_and_recorded(memory, fake_llm):
    rt = openai_runtime(memory, fake_llm)
    d = rt.step("guard-01", TALK, critical(), deadline_ms=2000)
    assert d.source == "cloud" and d.escalated and d.action in d.allowed_actions
    assert d.dialogue == "Move along, stranger." and d.arguments == {"target": "player"}
    (rec,) = memory.escalations("guard-01")
    assert rec.outcome == "ok" and rec.trigger == "story_critical" and rec.provider == "openai"
    assert rec.input_tokens == 120 and rec.output_tokens == 30
    assert rec.cost_usd == pytest.approx(price_usd("gpt-4o-mini", 120, 30)) and len(rec.prompt_sha256) == 64


@pytest.mark.parametrize("mode", ["forbidden", "malformed"])
def test_forbidden_or_malformed_is_rejected(memory, fake_llm, mode):
    fake_llm.mode = mode
    rt = openai_runtime(memory, fake_llm)
    d = rt.step("guard-01", TALK, critical(), deadline_ms=2000)
    assert d.source == "fallback" and d.rejected_action and d.action in d.allowed_actions
    assert d.action != "give" or "give" in d.allowed_actions
    assert memory.escalations()[0].outcome == "rejected"
    assert rt.escalation.stats.rejected == 1


@pytest.mark.parametrize("mode", ["hang", "die", "error500"])
def test_failing_endpoint_falls_back_within_deadline(memory, fake_llm, mode):
    fake_llm.mode = mode
    rt = openai_runtime(memory, fake_llm)
    started = time.monotonic()
    d = rt.step("guard-01", TALK, critical(), deadline_ms=150)
    elapsed_ms = (time.monotonic() - started) * 1000
    assert elapsed_ms < 150 + 60, elapsed_ms         # the game never waits (margin for a loaded CI box)
    assert d.source == "fallback" and d.action in d.allowed_actions
    assert memory.escalations()[0].outcome in ("timeout", "error")


def test_endpoint_dies_mid_run_breaker_opens(memory, fake_llm):
    rt = openai_runtime(memory, fake_llm, breaker_failures=3, breaker_cooldown_s=60,
                        budget=BudgetConfig(npc_calls_per_min=100, global_calls_per_min=100))
    assert rt.step("guard-01", TALK, critical(), deadline_ms=2000).source == "cloud"
    fake_llm.stop()
    outcomes = []
    for i in range(6):
        started = time.monotonic()
        d = rt.step("guard-01", TALK, critical(f"Omen number {i}."), deadline_ms=200)
        assert (time.monotonic() - started) * 1000 < 260
        assert d.source == "fallback" and d.action in d.allowed_actions
        outcomes.append(d.escalation_outcome)
    assert rt.escalation.breaker.state == "open"
    assert "circuit_open" in outcomes
    assert [r.outcome for r in memory.escalations()][-1] == "circuit_open"


def test_budget_never_exceeded_under_storm(memory, fake_llm):
    budget = BudgetConfig(npc_calls_per_min=2, npc_tokens_per_min=100_000, global_calls_per_min=5,
                          global_tokens_per_min=100_000, global_cost_per_hour_usd=1.0)
    rt = openai_runtime(memory, fake_llm, budget=budget)
    for n in range(1, 8):
        register_guard(rt, f"g{n}")
    ids = ["guard-01"] + [f"g{n}" for n in range(1, 8)]
    for i in range(40):   # a storm of novel, story-critical events
        rt.step(ids[i % len(ids)], TALK, critical(f"Novel portent {i}: the moon turned {i} colours."), deadline_ms=2000)
    assert fake_llm.calls <= 5
    per_npc = {}
    for rec in memory.escalations():
        if rec.outcome not in ("denied_budget", "circuit_open"):
            per_npc[rec.npc_id] = per_npc.get(rec.npc_id, 0) + 1
    assert max(per_npc.values()) <= 2 and sum(per_npc.values()) <= 5
    assert rt.escalation.stats.denied_budget >= 35


def test_cost_budget_with_a_pricey_model(memory, fake_llm):
    # unknown model -> the (pricey) default price; a tiny cost budget allows no call at all
    provider = OpenAIProvider(model="unknown-model", api_key="k", base_url=fake_llm.openai_base_url)
    from .conftest import make_runtime as mk
    rt = mk(memory, provider, escalation_config=EscalationConfig(budget=BudgetConfig(global_cost_per_hour_usd=0.001)))
    register_guard(rt)
    d = rt.step("guard-01", TALK, critical(), deadline_ms=2000)
    assert d.escalation_outcome == "denied_budget" and fake_llm.calls == 0


def test_anthropic_provider_against_fake(memory, fake_llm):
    provider = AnthropicProvider(model="claude-3-5-haiku-latest", api_key="test", base_url=fake_llm.anthropic_base_url)
    rt = make_runtime(memory, provider)
    register_guard(rt)
    d = rt.step("guard-01", TALK, critical(), deadline_ms=2000)
    assert d.source == "cloud" and d.dialogue == "Move along, stranger."
    body = fake_llm.requests[0]
    assert body["system"].startswith("You decide") and body["max_tokens"] == 200
    fake_llm.mode = "forbidden"
    d = rt.step("guard-01", TALK, critical("Another omen."), deadline_ms=2000)
    assert d.source == "fallback" and d.rejected_action


def test_untriggered_steps_do_not_escalate(memory, fake_llm):
    rt = openai_runtime(memory, fake_llm, confidence_threshold=0.0, margin_threshold=0.0, novelty_threshold=0.0)
    d = rt.step("guard-01", TALK, deadline_ms=2000)
    assert not d.escalated and fake_llm.calls == 0


def test_validation_rules():
    allowed = ("talk", "refuse")
    ok = validate_decision('```json\n{"action": "talk", "arguments": {"n": 3}, "dialogue": "Hi<|system|>"}\n```', allowed)
    assert not isinstance(ok, str) and ok.arguments == {"n": "3"} and ok.dialogue == "Hi"
    for bad in ['{"action": "give"}', "[1]", "nope", '{"action": "talk", "arguments": [1]}',
                '{"action": "talk", "dialogue": 5}', '{"action": "talk", "arguments": {"a": {"b": 1}}}']:
        assert isinstance(validate_decision(bad, allowed), str), bad


def test_breaker_and_budget_units():
    now = [0.0]
    breaker = CircuitBreaker(failures=2, cooldown_s=5, clock=lambda: now[0])
    breaker.record_failure(); breaker.record_failure()
    assert breaker.state == "open" and not breaker.allow()
    now[0] = 6.0
    assert breaker.allow() and not breaker.allow()       # one trial in half-open
    breaker.record_success()
    assert breaker.state == "closed"
    budget = Budget(BudgetConfig(npc_calls_per_min=1), clock=lambda: now[0])
    assert not isinstance(budget.reserve("a", 10, 0.0), str)
    assert isinstance(budget.reserve("a", 10, 0.0), str)
    now[0] += 61
    assert not isinstance(budget.reserve("a", 10, 0.0), str)


def test_provider_selection(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    assert make_provider("local").name == "local"
    with pytest.raises(Unauthenticated, match="OPENAI_API_KEY"):
        make_provider("openai")
    with pytest.raises(Unauthenticated, match="ANTHROPIC_API_KEY"):
        make_provider("anthropic")
    with pytest.raises(InvalidArgument, match="unknown escalation provider"):
        make_provider("gemini")
    monkeypatch.setenv("OPENAI_API_KEY", "k")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    assert make_provider("openai").name == "openai"
    from npc_runtime.settings import load_settings
    assert load_settings(env={"NPCRT_ESCALATION_PROVIDER": "anthropic"}).agent.escalation.provider == "anthropic"
    with pytest.raises(InvalidArgument, match="unknown key"):
        load_settings(env={}, flags={"escalation.thresold": 1})


@pytest.mark.parametrize("prices", [{"gpt-4o-mini": [0.15]}, {"gpt-4o-mini": "cheap"}, ["not", "a", "map"]])
def test_malformed_price_table_is_a_clear_error(prices):
    from npc_runtime.errors import InvalidArgument
    from npc_runtime.settings import load_settings

    with pytest.raises(InvalidArgument, match=r"\[escalation\] prices"):
        load_settings(env={}, flags={"escalation.prices": prices})


def test_price_table_in_usd_per_million_tokens():
    from npc_runtime.settings import load_settings

    config = load_settings(env={}, flags={"escalation.prices": {"m": [0.15, "0.6"]}}).agent
    assert config.escalation.prices == {"m": (0.15, 0.6)}


def test_a_timed_out_call_counts_once_against_the_breaker():
    """The waiter gives up at the deadline and the worker's SDK call then times out too: one failure, not two."""
    import threading as _threading

    from npc_runtime.agent.escalation import EscalationConfig as _Config, EscalationManager as _Manager
    from npc_runtime.agent.providers.base import EscalationRequest as _Request
    from npc_runtime.errors import DeadlineExceeded as _Late

    release = _threading.Event()

    class Hanging:
        name, model = "hanging", "gpt-4o-mini"

        def complete(self, request, *, timeout_s):
            release.wait(5)
            raise _Late("the SDK's own timeout")

    manager = _Manager(Hanging(), config=_Config(max_attempts=1))
    request = _Request(npc_id="n", system="s", user="u", allowed_actions=("idle",), max_output_tokens=32,
                       trigger="novelty")
    assert manager.decide(request, deadline_s=0.05).outcome == "timeout"
    release.set()
    manager._pool.shutdown(wait=True)   # noqa: SLF001 - the worker saw its own timeout after the waiter gave up
    assert manager.breaker._consecutive == 1   # noqa: SLF001 - the count the breaker opens on
