"""Sessions, the scheduler (one step = one forward pass over a batch), the engine and its one facade.

Knows nothing of NPCs or gRPC. `Engine` is the synchronous core (tests, benchmarks); `EngineFacade` owns one
on its own thread and is what the servers and the agent call (sessions/facade.py).
"""

from npc_runtime.config import EngineConfig, SessionLimits
from npc_runtime.decode.constraints import ConstraintSpec
from npc_runtime.decode.sampling import SamplingParams
from npc_runtime.sessions.engine import Engine, EngineStats, ModelInfo, TickResult, TickStats, TokenChunk
from npc_runtime.sessions.facade import EngineFacade, GenerateStream
from npc_runtime.sessions.requests import (GenerateRequest, OpenedSession, OpenRequest, RequestLimits, TickRequest,
                                           Turn)
from npc_runtime.sessions.session import FinishReason, SessionStatus

__all__ = ["ConstraintSpec", "Engine", "EngineConfig", "EngineFacade", "EngineStats", "FinishReason",
           "GenerateRequest", "GenerateStream", "ModelInfo", "OpenRequest", "OpenedSession", "RequestLimits",
           "SamplingParams", "SessionLimits", "SessionStatus", "TickRequest", "TickResult", "TickStats",
           "TokenChunk", "Turn"]
