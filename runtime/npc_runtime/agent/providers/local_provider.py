"""The default escalation provider: no key, no network. The local dialogue model with a bigger budget.

It samples several candidate replies (each constrained to the allowed actions) with a longer token
budget, keeps the action most candidates agree on (ties broken by the policy's order), and answers
with the same JSON decision a cloud model would, so it goes through the same validation.
"""

from __future__ import annotations

import json
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, TimeoutError as FutureTimeout

from npc_runtime.agent.dialogue import DialogueModel
from npc_runtime.agent.providers.base import EscalationRequest, ProviderReply
from npc_runtime.errors import DeadlineExceeded, FailedPrecondition


class LocalProvider:
    name = "local"
    trusted_usage = True   # its counts come from this process's engine (several candidates may exceed the
                           # request's max_output_tokens together): not sanitised like an endpoint's

    def __init__(self, dialogue: DialogueModel, *, candidates: int = 3, max_tokens: int = 48):
        self.dialogue = dialogue
        self.model = "local"
        self.candidates = candidates
        self.max_tokens = max_tokens
        self._pool = ThreadPoolExecutor(max_workers=4 * candidates, thread_name_prefix="npcrt-local-candidates")

    def complete(self, request: EscalationRequest, *, timeout_s: float) -> ProviderReply:
        if request.local_prompt is None:
            raise FailedPrecondition("local escalation needs the dialogue prompt")
        # candidates run concurrently, so the engine decodes them in one batch
        futures = [
            self._pool.submit(self.dialogue.reply, request.local_prompt, allowed_actions=request.allowed_actions,
                              max_tokens=self.max_tokens, npc_id=request.npc_id, seed=1000 + i, timeout_s=timeout_s)
            for i in range(self.candidates)
        ]
        try:
            replies = [f.result(timeout=timeout_s) for f in futures]
        except FutureTimeout as exc:
            raise DeadlineExceeded(f"local provider: {self.candidates} candidates not done in {timeout_s * 1000:.0f} ms") from exc
        votes = Counter(r.action for r in replies if r.action)
        order = {a: i for i, a in enumerate(request.local_hint or request.allowed_actions)}
        if votes:
            action = max(votes, key=lambda a: (votes[a], -order.get(a, 99)))
            line = next(r.line for r in replies if r.action == action)
        else:
            action, line = (request.local_hint or request.allowed_actions)[0], ""
        text = json.dumps({"action": action, "arguments": {}, "dialogue": line})
        return ProviderReply(text=text, input_tokens=sum(r.prefill_tokens for r in replies),
                             output_tokens=sum(r.tokens for r in replies), model=self.model)
