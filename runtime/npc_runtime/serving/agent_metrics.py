"""Prometheus metrics of the NPC brains, read from the agent's own counters at scrape time (the agent knows
nothing of Prometheus; nothing is counted twice).

    npc_agent_decisions_total{source}          decisions by where they came from (fsm, policy, local_model, cloud, fallback)
    npc_agent_rejected_actions_total           proposed actions refused by the allowlist (not allowed / malformed)
    npc_agent_fallbacks_total                  decisions that fell back after a failed or refused escalation
    npc_agent_escalations_total{outcome}       escalation requests by outcome (ok, rejected, failed, denied_budget,
                                               circuit_open)
    npc_agent_escalation_tokens_total{direction}  provider tokens (input, output)
    npc_agent_escalation_cost_usd_total        provider cost, US dollars (from the price table)
    npc_agent_escalation_usage_sanitised_total provider replies whose reported usage was missing, negative or
                                               absurd (settled at the reservation instead)
    npc_agent_version_{decisions,escalations,rejected_actions,cost_usd}_total{version}  the same per policy version
    npc_agent_registered_npcs                  NPCs registered now
"""

from __future__ import annotations

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector


class AgentCollector(Collector):
    def __init__(self, runtime) -> None:
        self._runtime = runtime

    def collect(self):
        runtime = self._runtime
        stats = runtime.stats
        decisions = CounterMetricFamily("npc_agent_decisions", "Agent decisions by source", labels=["source"])
        for source, count in sorted(stats.by_source.items()):
            decisions.add_metric([source], count)
        yield decisions
        yield CounterMetricFamily("npc_agent_rejected_actions", "Proposed actions refused by the FSM allowlist",
                                  value=stats.rejected_actions)
        yield CounterMetricFamily("npc_agent_fallbacks", "Decisions that fell back after a failed escalation",
                                  value=stats.fallbacks)
        escalation = runtime.escalation
        if escalation is not None:
            e = escalation.stats
            outcomes = CounterMetricFamily("npc_agent_escalations", "Escalation requests by outcome",
                                           labels=["outcome"])
            for outcome, count in (("ok", e.ok), ("rejected", e.rejected), ("failed", e.failures),
                                   ("denied_budget", e.denied_budget), ("circuit_open", e.circuit_open)):
                outcomes.add_metric([outcome], count)
            yield outcomes
            tokens = CounterMetricFamily("npc_agent_escalation_tokens", "Escalation provider tokens",
                                         labels=["direction"])
            tokens.add_metric(["input"], e.input_tokens)
            tokens.add_metric(["output"], e.output_tokens)
            yield tokens
            yield CounterMetricFamily("npc_agent_escalation_cost_usd", "Escalation cost, US dollars",
                                      value=e.cost_usd)
            yield CounterMetricFamily("npc_agent_escalation_usage_sanitised",
                                      "Provider replies whose usage was missing, negative or absurd",
                                      value=e.usage_sanitised)
        # per policy version (agent/versions.py): decisions, escalations, rejected actions, escalation cost
        families = {key: CounterMetricFamily(f"npc_agent_version_{key}", f"Per policy version: {help_}",
                                             labels=["version"])
                    for key, help_ in (("decisions", "decisions"), ("escalations", "escalations attempted"),
                                       ("rejected_actions", "actions refused by the allowlist"),
                                       ("cost_usd", "escalation cost, US dollars"))}
        for version, v in sorted(dict(stats.versions).items()):
            for key, family in families.items():
                family.add_metric([version], getattr(v, key))
        yield from families.values()
        yield GaugeMetricFamily("npc_agent_registered_npcs", "NPCs registered now", value=len(runtime))
