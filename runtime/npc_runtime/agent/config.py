"""Agent configuration: keyword-only dataclasses with named defaults, from a mapping and the environment.

    agent:                      # the [agent] table of the server config, or AgentConfig.from_mapping(...)
      default_deadline_ms: 150
      reflection_threshold: 150
      memory_db: ~/.local/share/npcrt/memory.sqlite3
      escalation:
        provider: local          # or NPCRT_ESCALATION_PROVIDER=local|openai|anthropic
        confidence_threshold: 0.45
        budget: {global_cost_per_hour_usd: 0.5}
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any, Mapping

from npc_runtime.agent.budget import BudgetConfig
from npc_runtime.agent.escalation import EscalationConfig
from npc_runtime.agent.memory import RetrievalWeights
from npc_runtime.errors import InvalidArgument


@dataclass(frozen=True, kw_only=True)
class AgentConfig:
    # wall time a Step may take when the request gives none, milliseconds
    default_deadline_ms: float = 150.0
    # largest accepted deadline, milliseconds
    max_deadline_ms: float = 5_000.0
    # summed importance of new memories that triggers a reflection
    reflection_threshold: float = 150.0
    # prompt budget filled with retrieved memories (escalation prompts), tokens
    memory_token_budget: int = 200
    # spoken-line budget of the local dialogue model, tokens
    dialogue_max_tokens: int = 32
    # the policy proposal is used as is (no dialogue model) for quiet steps at or above this confidence
    policy_confidence_floor: float = 0.0
    max_npcs: int = 10_000
    # SQLite file; None = the default data dir (NPCRT_DATA_DIR or ~/.local/share/npcrt), ":memory:" for tests
    memory_db: str | None = None
    retrieval: RetrievalWeights = field(default_factory=RetrievalWeights)
    escalation: EscalationConfig = field(default_factory=EscalationConfig)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None = None, *, env: Mapping[str, str] | None = None) -> "AgentConfig":
        data = dict(data or {})
        env = os.environ if env is None else env
        esc = dict(data.pop("escalation", {}) or {})
        budget = BudgetConfig(**_known(BudgetConfig, esc.pop("budget", {}) or {}, "agent.escalation.budget"))
        if env.get("NPCRT_ESCALATION_PROVIDER"):
            esc["provider"] = env["NPCRT_ESCALATION_PROVIDER"]
        if "prices" in esc:
            esc["prices"] = _prices(esc["prices"])
        escalation = EscalationConfig(budget=budget, **_known(EscalationConfig, esc, "agent.escalation"))
        retrieval = RetrievalWeights(**_known(RetrievalWeights, data.pop("retrieval", {}) or {}, "agent.retrieval"))
        return cls(escalation=escalation, retrieval=retrieval, **_known(cls, data, "agent"))


def _prices(raw: Any) -> dict[str, tuple[float, float]]:
    """agent.escalation.prices: {model: [USD per 1M input tokens, USD per 1M output tokens]}."""
    try:
        return {str(model): (float(pair[0]), float(pair[1])) for model, pair in dict(raw).items()}
    except (TypeError, ValueError, IndexError, KeyError) as exc:
        raise InvalidArgument("agent.escalation.prices must map each model name to "
                              f"[input USD per 1M tokens, output USD per 1M tokens], got {raw!r}") from exc


def _known(cls, data: Mapping[str, Any], where: str) -> dict[str, Any]:
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise InvalidArgument(f"{where}: unknown setting(s) {unknown} (known: {sorted(names)})")
    return dict(data)
