"""The NPC brain: FSM, memory (SQLite), planner, escalation to cloud providers.

Knows nothing of gRPC: `serving/agent_servicer.py` translates the wire contract to `NpcBrain` calls.
"""

from npc_runtime.agent.actions import ACTIONS

__all__ = ["ACTIONS"]
