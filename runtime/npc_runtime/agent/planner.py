"""Plan: choose the action (always among the FSM's allowed ones), its arguments and a line of dialogue.

Order of authority, fastest first:
  1. an FSM reflex                          -> source "fsm" (no model)
  2. nothing to answer (no words, no events) -> the policy model's proposal, source "policy"
  3. the local dialogue model, its `[action]` constrained to the allowed set -> source "local_model"
  4. escalation (unsure / novel / story-critical), started in parallel with 3 and awaited only until the
     step's deadline -> source "cloud" when it answers a valid decision, else "fallback" (the local
     decision of 3, or the state's safe default).
A proposal outside the allowed set, or malformed, is never executed: the state's default action is,
with whatever text came with it ("talks, does nothing"), and the decision is flagged rejected_action.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

from npc_runtime.agent.dialogue import DialogueModel, DialoguePrompt, DialogueReply
from npc_runtime.agent.policy_model import PolicyProposal
from npc_runtime.errors import NpcRuntimeError


@dataclass(frozen=True)
class LocalDecision:
    action: str
    line: str
    confidence: float
    margin: float
    source: str          # policy | local_model
    rejected: bool
    reason: str
    tokens: int = 0


def order_allowed(allowed: Sequence[str], proposal: PolicyProposal) -> tuple[str, ...]:
    """Allowed actions, the policy's favourite first (a hint for constrained decoding and the local provider)."""
    return tuple(sorted(allowed, key=lambda a: -proposal.probs.get(a, 0.0)))


def decide_quiet(proposal: PolicyProposal, *, default: str, floor: float) -> LocalDecision:
    """No words and no events to answer: the policy's proposal (or the safe default when it is unsure)."""
    if proposal.confidence >= floor and proposal.margin > 1e-9:
        return LocalDecision(proposal.action, "", proposal.confidence, proposal.margin, "policy", False,
                             f"policy: {proposal.action} p={proposal.confidence:.2f}")
    # unsure, or no preference at all (a tie, e.g. no policy model): the state's safe default
    return LocalDecision(default, "", proposal.confidence, proposal.margin, "policy", False,
                         f"policy unsure (p={proposal.confidence:.2f}, margin {proposal.margin:.2f}): state default")


def decide_with_dialogue(dialogue: DialogueModel, prompt: DialoguePrompt, proposal: PolicyProposal, *,
                         allowed: Sequence[str], default: str, max_tokens: int, npc_id: str,
                         timeout_s: float | None = None) -> LocalDecision:
    ordered = order_allowed(allowed, proposal)
    try:
        reply: DialogueReply = dialogue.reply(prompt, allowed_actions=ordered, max_tokens=max_tokens, npc_id=npc_id,
                                              timeout_s=timeout_s)
    except NpcRuntimeError as exc:
        return dialogue_failed(exc, proposal)
    return decide_from_reply(reply, proposal, allowed=allowed, default=default)


def dialogue_failed(exc: NpcRuntimeError, proposal: PolicyProposal) -> LocalDecision:
    """Engine busy, session limit, timeout: act on the policy, say nothing."""
    return LocalDecision(proposal.action, "", proposal.confidence, proposal.margin, "policy", False,
                         f"dialogue model failed ({exc}); policy: {proposal.action}")


def decide_from_reply(reply: DialogueReply, proposal: PolicyProposal, *, allowed: Sequence[str],
                      default: str) -> LocalDecision:
    """The local model's reply (whole, or its tag alone while the line still streams) -> the decision."""
    if reply.action is None or reply.action not in allowed:
        return LocalDecision(default, reply.line, proposal.probs.get(default, 0.0), proposal.margin, "local_model",
                             True, f"local model proposed {reply.action!r} (not allowed or malformed): state default",
                             reply.tokens)
    # the dialogue model's own token probabilities for its `[action]` tag when it reports them (renormalised
    # over the allowed actions), else the policy model's
    probs: Mapping[str, float] = reply.action_probs or proposal.probs
    confidence = float(probs.get(reply.action, 0.0))
    # margin: the chosen action over the best other one (negative when sampling took a less likely one)
    others = [float(p) for a, p in probs.items() if a != reply.action and a in allowed]
    margin = confidence - max(others) if others else 1.0
    basis = "token probabilities" if reply.action_probs else "policy model"
    return LocalDecision(reply.action, reply.line, confidence, margin, "local_model", False,
                         f"local model: {reply.action} (confidence {confidence:.2f}, margin {margin:.2f} "
                         f"from {basis})", reply.tokens)
