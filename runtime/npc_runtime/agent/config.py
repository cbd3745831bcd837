"""Agent configuration: a keyword-only dataclass with named defaults.

It is read from the [agent], [escalation], [budgets] and [memory] tables of the one configuration
(`npc_runtime.settings.load_settings`, which also applies the environment and checks types and ranges).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from npc_runtime.agent.escalation import EscalationConfig
from npc_runtime.agent.memory import RetrievalWeights


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
    # threads that run agent steps for the NpcAgent service (steps block on the model and the cloud)
    step_workers: int = 32
    # served model the NPCs speak with; None = the server's default (first) model
    dialogue_model: str | None = None
    # policy model package directory; None = the built-in npc-policy package
    policy_model: str | None = None
    # more policy versions served side by side: version name -> package directory (agent/versions.py);
    # policy_model is always loaded too, as version "base"
    policy_versions: Mapping[str, str] = field(default_factory=dict)
    # the version NPCs play with unless a routing rule takes them; None = "base"
    policy_default: str | None = None
    # routing rules, tried in order: [{version = "v2", match = "guard-*", fraction = 0.1}] (match: glob over
    # the NPC id, default "*"; fraction: sticky share of the matching NPCs by a hash of the id, default 1)
    policy_routing: list = field(default_factory=list)
    # dialogue model per version: version name -> served model name (a --model package). A name that is not a
    # policy version makes a version with the base policy and that dialogue model (A/B of dialogue packages,
    # routed by policy_routing like any version)
    dialogue_versions: Mapping[str, str] = field(default_factory=dict)
    # append each settled escalation's training example to <data_dir>/escalations/*.jsonl (`npcrt distill`)
    record_escalations: bool = True
    # SQLite file; None = <server data_dir>/memory.sqlite3 (the [memory] db key), ":memory:" for tests
    memory_db: str | None = None
    retrieval: RetrievalWeights = field(default_factory=RetrievalWeights)
    escalation: EscalationConfig = field(default_factory=EscalationConfig)
