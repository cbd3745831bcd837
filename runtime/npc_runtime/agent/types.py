"""Plain data the agent works with (the gRPC layer translates to and from these)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

SOURCES = ("fsm", "policy", "local_model", "cloud", "fallback")


@dataclass(frozen=True)
class Persona:
    name: str
    role: str
    traits: tuple[str, ...] = ()
    backstory: str = ""


@dataclass(frozen=True)
class Percept:
    """One step's observation; times are game seconds."""

    game_time_s: float = 0.0
    values: Mapping[str, float] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)
    player_utterance: str = ""


@dataclass(frozen=True)
class Event:
    kind: str
    description: str = ""
    importance: float = 0.0            # 0 = let the runtime judge
    story_critical: bool = False
    attributes: Mapping[str, str] = field(default_factory=dict)


@dataclass
class AgentDecision:
    npc_id: str
    state: str
    action: str
    arguments: dict[str, str]
    dialogue: str
    escalated: bool
    reason: str
    confidence: float
    source: str                        # one of SOURCES
    allowed_actions: tuple[str, ...]
    latency_ms: float = 0.0
    memories_written: int = 0
    rejected_action: bool = False
    tokens: int = 0                    # dialogue tokens generated locally this step
    escalation_outcome: str = ""       # "" when not escalated
    policy_version: str = ""           # the policy version that proposed (agent/versions.py); "" for FSM reflexes
