"""A provider's reported usage is untrusted: an endpoint on loopback that reports -1,000,000 tokens (or
nonsense) cannot spend past the budget, record a negative cost, or make its calls free; each such reply is
logged and counted (npc_agent_escalation_usage_sanitised_total)."""

from __future__ import annotations

import json
import logging
import math

import pytest

from npc_runtime.agent.budget import BudgetConfig, price_usd, sane_usage
from npc_runtime.agent.escalation import EscalationConfig, EscalationManager
from npc_runtime.agent.providers.base import EscalationRequest, ProviderReply, usage_count
from npc_runtime.agent.providers.openai_provider import OpenAIProvider
from npc_runtime.serving.agent_metrics import AgentCollector

from .conftest import make_runtime
from .fake_llm import FakeLLM

ALLOWED = ("warn", "talk", "idle")
# every limit but the hourly cost is out of the way: the cost budget is what must hold
COST_ONLY = dict(npc_calls_per_min=10_000, npc_tokens_per_min=10**9, global_calls_per_min=10_000,
                 global_tokens_per_min=10**9)


def request(npc_id: str = "guard-01", max_output_tokens: int = 200) -> EscalationRequest:
    return EscalationRequest(npc_id=npc_id, system="Decide.", user=json.dumps({"allowed_actions": list(ALLOWED)}),
                             allowed_actions=ALLOWED, max_output_tokens=max_output_tokens, trigger="story_critical")


def manager(provider, memory, *, cost_per_hour: float) -> EscalationManager:
    config = EscalationConfig(provider="openai", max_attempts=1,
                              budget=BudgetConfig(global_cost_per_hour_usd=cost_per_hour, **COST_ONLY))
    return EscalationManager(provider, config=config, memory=memory)


def test_negative_usage_cannot_break_the_cost_budget(memory, caplog):
    budget_usd = 0.01
    with FakeLLM(usage={"prompt_tokens": -1_000_000, "completion_tokens": -1_000_000,
                        "total_tokens": -2_000_000}) as fake:
        provider = OpenAIProvider(model="gpt-4o-mini", api_key="k", base_url=fake.openai_base_url)
        esc = manager(provider, memory, cost_per_hour=budget_usd)
        with caplog.at_level(logging.WARNING, logger="npc_runtime.agent.escalation"):
            results = [esc.decide(request(f"npc-{i}"), deadline_s=5.0) for i in range(150)]
        esc.close()
    ok = [r for r in results if r.outcome == "ok"]
    denied = [r for r in results if r.outcome == "denied_budget"]
    # each call settles at its reservation (prompt estimate + max output), so the budget runs out
    reserved = price_usd("gpt-4o-mini", ok[0].input_tokens, 200)
    assert ok and denied and len(ok) + len(denied) == 150
    assert len(ok) <= budget_usd / reserved + 1
    assert fake.calls == len(ok)
    assert all(r.input_tokens > 0 and r.output_tokens == 200 and r.cost_usd > 0 for r in ok)
    assert esc.budget.snapshot().cost_last_hour_usd <= budget_usd + 1e-9
    assert esc.budget.total_cost_usd > 0 and esc.stats.cost_usd > 0
    assert all(rec.cost_usd >= 0 and rec.input_tokens >= 0 and rec.output_tokens >= 0
               for rec in memory.escalations())
    assert esc.stats.usage_sanitised == len(ok)
    assert any("-1000000" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("usage", [
    {},                                                             # missing
    {"prompt_tokens": "many", "completion_tokens": None},           # not numbers
    {"prompt_tokens": 10**15, "completion_tokens": 10**15},         # absurd
    {"prompt_tokens": 1.5, "completion_tokens": -3},                # fractional, negative
])
def test_unusable_usage_settles_at_the_reservation(memory, usage):
    with FakeLLM(usage=usage or {"unrelated": 1}) as fake:
        provider = OpenAIProvider(model="gpt-4o-mini", api_key="k", base_url=fake.openai_base_url)
        esc = manager(provider, memory, cost_per_hour=1.0)
        result = esc.decide(request(), deadline_s=5.0)
        esc.close()
    assert result.outcome == "ok"
    assert result.output_tokens == 200 and 0 < result.input_tokens < 1_000
    assert result.cost_usd == pytest.approx(price_usd("gpt-4o-mini", result.input_tokens, 200))
    assert esc.stats.usage_sanitised == 1


def test_plausible_usage_is_kept(memory):
    with FakeLLM(usage={"prompt_tokens": 120, "completion_tokens": 30, "total_tokens": 150}) as fake:
        provider = OpenAIProvider(model="gpt-4o-mini", api_key="k", base_url=fake.openai_base_url)
        esc = manager(provider, memory, cost_per_hour=1.0)
        result = esc.decide(request(), deadline_s=5.0)
        esc.close()
    assert (result.input_tokens, result.output_tokens) == (120, 30)
    assert esc.stats.usage_sanitised == 0


class _ClaimsToBeFree:
    """An endpoint (at the test edge) whose replies name the free `local` model."""

    name, model = "openai", "gpt-4o"

    def complete(self, request: EscalationRequest, *, timeout_s: float) -> ProviderReply:
        return ProviderReply(text=json.dumps({"action": "warn", "arguments": {}, "dialogue": "Halt."}),
                             input_tokens=100, output_tokens=20, model="local")


def test_a_reply_naming_a_free_model_is_priced_as_the_configured_one(memory):
    esc = manager(_ClaimsToBeFree(), memory, cost_per_hour=1.0)
    result = esc.decide(request(), deadline_s=2.0)
    esc.close()
    assert result.outcome == "ok"
    assert result.cost_usd == pytest.approx(price_usd("gpt-4o", 100, 20)) and result.cost_usd > 0


def test_sane_usage_rules():
    assert sane_usage(120, 30, estimated_input=100, max_output=200).problem == ""
    for given in [(None, 30), (-5, 30), (10**9, 30)]:
        u = sane_usage(*given, estimated_input=100, max_output=200)
        assert (u.input_tokens, u.output_tokens) == (100, 30) and u.problem
    for out in (None, -1, 201, 10**12):
        u = sane_usage(120, out, estimated_input=100, max_output=200)
        assert (u.input_tokens, u.output_tokens) == (120, 200) and u.problem
    # a long prompt may tokenize denser than the estimate: up to 8x (or +4096) is kept
    assert sane_usage(4_000, 10, estimated_input=100, max_output=200).input_tokens == 4_000


def test_usage_count_accepts_only_whole_numbers():
    assert [usage_count(v) for v in (7, 7.0, -3)] == [7, 7, -3]
    assert all(usage_count(v) is None for v in (None, True, "7", 7.5, math.nan, math.inf, [7], {"n": 7}))


def test_settle_never_frees_budget(memory):
    esc = manager(_ClaimsToBeFree(), memory, cost_per_hour=1.0)
    reservation = esc.budget.reserve("npc", 500, 0.25)
    esc.budget.settle(reservation, -10**6, -112.5)
    esc.budget.settle(esc.budget.reserve("npc", 500, 0.25), 10, math.nan)
    esc.close()
    snap = esc.budget.snapshot()
    assert snap.cost_last_hour_usd == pytest.approx(0.5) and snap.tokens_last_min == 510


def test_sanitised_replies_are_a_metric(memory):
    with FakeLLM(usage={"prompt_tokens": -1_000_000, "completion_tokens": 5}) as fake:
        provider = OpenAIProvider(model="gpt-4o-mini", api_key="k", base_url=fake.openai_base_url)
        runtime = make_runtime(memory, provider, escalation_config=EscalationConfig(provider="openai"))
        runtime.escalation.decide(request(), deadline_s=5.0)
    families = {f.name: f for f in AgentCollector(runtime).collect()}
    [sample] = families["npc_agent_escalation_usage_sanitised"].samples
    assert sample.name == "npc_agent_escalation_usage_sanitised_total" and sample.value == 1
    runtime.escalation.close()
