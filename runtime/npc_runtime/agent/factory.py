"""One call to build an `AgentRuntime` from config and what the server already has (for `npcrt serve`, the demo).

    runtime = build_agent_runtime(AgentConfig.from_mapping(cfg.get("agent")), async_engine=engine,
                                  dialogue_model="npc-dialogue", policy_package="models/npc-policy")
    create_server(engine, config=server_cfg, extra_servicers=[agent_hook(runtime)])
"""

from __future__ import annotations

from pathlib import Path

from npc_runtime.agent.brain import AgentRuntime
from npc_runtime.agent.config import AgentConfig
from npc_runtime.agent.dialogue import DialogueModel, TemplateDialogue
from npc_runtime.agent.escalation import EscalationManager
from npc_runtime.agent.memory import MemoryStore
from npc_runtime.agent.policy_model import OnnxPolicyModel, Policy, UniformPolicy
from npc_runtime.agent.providers import make_provider


def build_agent_runtime(config: AgentConfig, *, async_engine=None, dialogue_model: str | None = None,
                        policy_package: str | Path | None = None) -> AgentRuntime:
    """Without `async_engine`/`dialogue_model` the NPCs speak fixed lines per action; without a policy package
    every allowed action is equally likely (so interactions escalate). Both are named in `.dialogue.name` /
    `.policy.name`."""
    memory = MemoryStore(config.memory_db, weights=config.retrieval)
    policy: Policy = OnnxPolicyModel(policy_package) if policy_package else UniformPolicy()
    dialogue: DialogueModel = TemplateDialogue()
    if async_engine is not None and dialogue_model:
        from npc_runtime.agent.engine_dialogue import EngineDialogueModel

        dialogue = EngineDialogueModel(async_engine, dialogue_model)
    provider = make_provider(config.escalation.provider, config.escalation.provider_options, dialogue=dialogue)
    escalation = EscalationManager(provider, config=config.escalation, memory=memory)
    return AgentRuntime(config=config, memory=memory, policy=policy, dialogue=dialogue, escalation=escalation)
