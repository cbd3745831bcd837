"""Escalation providers, chosen by name (`NPCRT_ESCALATION_PROVIDER=local|openai|anthropic|rules` or config)."""

from __future__ import annotations

from typing import Any, Callable, Mapping

from npc_runtime.agent.dialogue import DialogueModel
from npc_runtime.agent.providers.base import EscalationProvider, EscalationRequest, ProviderReply
from npc_runtime.errors import InvalidArgument


def _openai(options: Mapping[str, Any], dialogue: DialogueModel | None) -> EscalationProvider:
    from npc_runtime.agent.providers.openai_provider import OpenAIProvider

    return OpenAIProvider(model=options.get("model"), api_key=options.get("api_key"), base_url=options.get("base_url"))


def _anthropic(options: Mapping[str, Any], dialogue: DialogueModel | None) -> EscalationProvider:
    from npc_runtime.agent.providers.anthropic_provider import AnthropicProvider

    return AnthropicProvider(model=options.get("model"), api_key=options.get("api_key"), base_url=options.get("base_url"))


def _local(options: Mapping[str, Any], dialogue: DialogueModel | None) -> EscalationProvider:
    from npc_runtime.agent.dialogue import TemplateDialogue
    from npc_runtime.agent.providers.local_provider import LocalProvider

    return LocalProvider(dialogue or TemplateDialogue(), candidates=int(options.get("candidates", 3)),
                         max_tokens=int(options.get("max_tokens", 48)))


def _rules(options: Mapping[str, Any], dialogue: DialogueModel | None) -> EscalationProvider:
    from npc_runtime.agent.providers.rules_provider import RulesProvider

    return RulesProvider(model=str(options.get("model") or "rules"))


PROVIDERS: dict[str, Callable[[Mapping[str, Any], DialogueModel | None], EscalationProvider]] = {
    "local": _local, "openai": _openai, "anthropic": _anthropic, "rules": _rules,
}


def make_provider(name: str, options: Mapping[str, Any] | None = None, *,
                  dialogue: DialogueModel | None = None) -> EscalationProvider:
    factory = PROVIDERS.get(name)
    if factory is None:
        raise InvalidArgument(f"unknown escalation provider {name!r} (choose one of: {', '.join(PROVIDERS)})")
    return factory(options or {}, dialogue)


__all__ = ["EscalationProvider", "EscalationRequest", "ProviderReply", "PROVIDERS", "make_provider"]
