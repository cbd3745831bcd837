"""Anthropic through the official `anthropic` SDK (`ANTHROPIC_API_KEY`, optional `ANTHROPIC_BASE_URL`).

SDK retries are off (`max_retries=0`): the escalation manager owns retries and deadlines.
"""

from __future__ import annotations

import os

import anthropic

from npc_runtime.agent.providers.base import EscalationRequest, ProviderReply, sdk_errors, usage_count
from npc_runtime.errors import Unauthenticated

DEFAULT_ANTHROPIC_MODEL = "claude-3-5-haiku-latest"


class AnthropicProvider:
    name = "anthropic"

    def __init__(self, *, model: str | None = None, api_key: str | None = None, base_url: str | None = None):
        self.model = model or os.environ.get("NPCRT_ESCALATION_MODEL") or DEFAULT_ANTHROPIC_MODEL
        key = api_key or os.environ.get("ANTHROPIC_API_KEY")
        if not key:
            raise Unauthenticated("the anthropic escalation provider needs ANTHROPIC_API_KEY (or api_key in the config)")
        self._client = anthropic.Anthropic(api_key=key, base_url=base_url or os.environ.get("ANTHROPIC_BASE_URL") or None,
                                           max_retries=0)

    def complete(self, request: EscalationRequest, *, timeout_s: float) -> ProviderReply:
        with sdk_errors("anthropic", anthropic, anthropic.AnthropicError, timeout_s=timeout_s):
            resp = self._client.messages.create(
                model=self.model, max_tokens=request.max_output_tokens, system=request.system,
                messages=[{"role": "user", "content": request.user}], timeout=timeout_s)
        text = "".join(getattr(block, "text", "") for block in resp.content if getattr(block, "type", "") == "text")
        usage = resp.usage   # the SDK keeps whatever the endpoint sent: checked by usage_count / sane_usage
        return ProviderReply(
            text=text,
            input_tokens=usage_count(getattr(usage, "input_tokens", None)),
            output_tokens=usage_count(getattr(usage, "output_tokens", None)),
            model=resp.model if isinstance(resp.model, str) and resp.model else self.model,
        )
