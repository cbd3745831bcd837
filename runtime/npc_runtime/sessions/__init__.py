"""Sessions, the scheduler (one step = one forward pass over a batch), the engine and its asyncio facade.

Knows nothing of NPCs or gRPC.
"""

from npc_runtime.config import EngineConfig, SessionLimits
from npc_runtime.decode.constraints import ConstraintSpec
from npc_runtime.decode.sampling import SamplingParams
from npc_runtime.sessions.engine import (Engine, EngineStats, ModelInfo, TickRequest, TickResult, TickStats,
                                         TokenChunk)
from npc_runtime.sessions.session import FinishReason, SessionStatus

__all__ = ["ConstraintSpec", "Engine", "EngineConfig", "EngineStats", "FinishReason", "ModelInfo",
           "SamplingParams", "SessionLimits", "SessionStatus", "TickRequest", "TickResult", "TickStats",
           "TokenChunk"]
