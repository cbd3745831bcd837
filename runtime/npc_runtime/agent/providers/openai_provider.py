"""Any OpenAI-compatible endpoint (OpenAI, vLLM, llama.cpp server, Ollama...) through the official `openai` SDK.

Configured by `OPENAI_API_KEY` and `OPENAI_BASE_URL` (or explicit arguments). The SDK's own retries are
off (`max_retries=0`): the escalation manager retries with backoff and jitter under its deadline.
"""

from __future__ import annotations

import os

import openai

from npc_runtime.agent.providers.base import EscalationRequest, ProviderReply, sdk_errors, usage_count
from npc_runtime.errors import Unauthenticated

DEFAULT_OPENAI_MODEL = "gpt-4o-mini"


class OpenAIProvider:
    name = "openai"

    def __init__(self, *, model: str | None = None, api_key: str | None = None, base_url: str | None = None,
                 json_mode: bool = True):
        self.model = model or os.environ.get("NPCRT_ESCALATION_MODEL") or DEFAULT_OPENAI_MODEL
        key = api_key or os.environ.get("OPENAI_API_KEY")
        if not key:
            raise Unauthenticated("the openai escalation provider needs OPENAI_API_KEY (or api_key in the config)")
        self.json_mode = json_mode
        self._client = openai.OpenAI(api_key=key, base_url=base_url or os.environ.get("OPENAI_BASE_URL") or None,
                                     max_retries=0)

    def complete(self, request: EscalationRequest, *, timeout_s: float) -> ProviderReply:
        extra = {"response_format": {"type": "json_object"}} if self.json_mode else {}
        with sdk_errors("openai", openai, openai.OpenAIError, timeout_s=timeout_s):
            resp = self._client.chat.completions.create(
                model=self.model,
                messages=[{"role": "system", "content": request.system}, {"role": "user", "content": request.user}],
                max_tokens=request.max_output_tokens, temperature=0.3, timeout=timeout_s, **extra)
        text = ""
        if resp.choices:
            text = resp.choices[0].message.content or ""
        usage = resp.usage   # the SDK keeps whatever the endpoint sent: checked by usage_count / sane_usage
        return ProviderReply(
            text=text,
            input_tokens=usage_count(getattr(usage, "prompt_tokens", None)),
            output_tokens=usage_count(getattr(usage, "completion_tokens", None)),
            model=resp.model if isinstance(resp.model, str) and resp.model else self.model,
        )
