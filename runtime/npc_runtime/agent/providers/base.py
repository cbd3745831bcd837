"""The escalation provider interface: one structured-decision request in, raw text and usage out.

Providers raise only runtime errors: `Unavailable` (connection failed, 429, 5xx: retried),
`DeadlineExceeded` (the attempt timed out: retried while the deadline allows), `Unauthenticated` /
`InvalidArgument` (a bad key or request: not retried).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, Sequence

from npc_runtime.agent.dialogue import DialoguePrompt


@dataclass(frozen=True)
class EscalationRequest:
    npc_id: str
    system: str                          # instructions: the reply format, the untrusted-input rule
    user: str                            # JSON with the NPC, its state, allowed actions, memories, player_said
    allowed_actions: tuple[str, ...]
    max_output_tokens: int
    trigger: str                         # low_confidence | low_margin | novelty | story_critical
    local_prompt: DialoguePrompt | None = None   # for the `local` provider (same chat format as the small model)
    local_hint: Sequence[str] = field(default_factory=tuple)  # allowed actions ordered by the policy, best first


@dataclass(frozen=True)
class ProviderReply:
    text: str
    input_tokens: int
    output_tokens: int
    model: str


class EscalationProvider(Protocol):
    name: str    # "openai" | "anthropic" | "local"
    model: str

    def complete(self, request: EscalationRequest, *, timeout_s: float) -> ProviderReply: ...
