"""The `rules` escalation provider: a deterministic, offline teacher. No key, no network, no model.

It answers with the rule the built-in policy was trained to imitate (npc_export.builtin.policy_rules.
rule_action) applied to the request's observation, kept inside the allowed actions: when the rule's action
is not allowed in the NPC's state, the first allowed action of a fixed de-escalating preference order.
It is the teacher of the distillation demo (`npcrt demo --days N`): a teacher whose answers are a pure
function of what the policy sees, so a student can learn them and the loop's figures mean something.
Its replies go through the same validation as any cloud model's, and its usage is counted in tokens
(estimated) priced as `model` (default "rules", free; set provider_options.model to price it as a cloud
model would be, e.g. for a cost projection).
"""

from __future__ import annotations

import json

from npc_runtime.agent.memory import estimate_tokens
from npc_runtime.agent.providers.base import EscalationRequest, ProviderReply

# when the rule's action is not allowed: the first of these that is (calm options first)
PREFERENCE = ("warn", "refuse", "call_guards", "flee", "talk", "greet", "idle", "patrol", "follow", "trade", "give",
              "attack")
LINES = {
    "greet": "Good day to you.", "talk": "What can I do for you?", "trade": "Have a look at my wares.",
    "refuse": "No. Not today.", "warn": "Watch yourself, stranger.", "attack": "Have at you!",
    "flee": "Help! Stay away from me!", "call_guards": "Guards! Guards!", "patrol": "", "follow": "Come with me.",
    "give": "Here, take this.", "idle": "",
}


def teacher_action(observation, allowed) -> str:
    from npc_export.builtin.policy_rules import FEATURE_NAMES, rule_action

    full = {name: float(observation.get(name, 0.0)) for name in FEATURE_NAMES}
    choice = rule_action(full)
    if choice in allowed:
        return choice
    return next((a for a in PREFERENCE if a in allowed), allowed[0])


class RulesProvider:
    name = "rules"

    def __init__(self, *, model: str = "rules"):
        self.model = model

    def complete(self, request: EscalationRequest, *, timeout_s: float) -> ProviderReply:
        action = teacher_action(request.observation, request.allowed_actions)
        text = json.dumps({"action": action, "arguments": {}, "dialogue": LINES.get(action, "")})
        return ProviderReply(text=text, input_tokens=estimate_tokens(request.system + request.user),
                             output_tokens=estimate_tokens(text), model=self.model)
