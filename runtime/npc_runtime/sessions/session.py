"""Per-session state: token history, KV slot, sampling params + RNG, limits, status, finish reason."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import Enum

import numpy as np

from npc_runtime.config import SessionLimits
from npc_runtime.decode.constraints import Constraint
from npc_runtime.decode.sampling import SamplingParams, StopMatcher


class FinishReason(Enum):
    """Why a turn ended. An enum, not a string: compare members (`r.finish_reason is FinishReason.EOS`);
    `.value` is the name used in logs and session_info."""
    LENGTH = "length"              # max_new_tokens of the turn (or of the generate call) reached
    STOP = "stop"                  # a stop sequence, or a constraint completed
    EOS = "eos"                    # the model emitted an end-of-sequence token
    CANCELLED = "cancelled"
    EVICTED = "evicted"
    ERROR = "error"
    CONTEXT_FULL = "context_full"


class SessionStatus(str, Enum):
    GENERATING = "generating"      # a turn is in progress (tick/generate produce tokens)
    FINISHED = "finished"          # the turn ended; append_input starts the next one
    EVICTED = "evicted"            # gone (idle timeout); the id answers FailedPrecondition
    CLOSED = "closed"


@dataclass(eq=False, slots=True)
class Session:
    id: str
    model: str
    npc_id: str
    sampling: SamplingParams
    limits: SessionLimits
    capacity: int                              # max tokens of this session (KV positions)
    rng: np.random.Generator
    tokens: list[int] = field(default_factory=list)   # full history: prompt, inputs, generated
    kv_len: int = 0                            # tokens[:kv_len] are in the KV slot
    slot: int | None = None
    status: SessionStatus = SessionStatus.GENERATING
    finish_reason: FinishReason | None = None
    turn_tokens: int = 0                       # generated in the current turn
    prefix_insert_upto: int = 0                # prompt tokens whose KV blocks may go to the prefix cache
    prefix_looked_up: bool = False             # the prefix cache was consulted for this KV (once)
    constraint: Constraint | None = None
    constraint_state: object = None
    detokenizer: object = None                 # IncrementalDetokenizer or None (fake models)
    stop_matcher: StopMatcher | None = None
    text_out: str = ""                         # text produced but not yet handed out
    created: float = field(default_factory=time.monotonic)
    last_active: float = field(default_factory=time.monotonic)
    generated_total: int = 0
    prefix_hit_tokens: int = 0
    snapshots: bool = True                     # False: a session that lives for one request (a stream opened it and
                                               # closes it): no takeover snapshot is written or deleted for it

    @property
    def pending(self) -> int:
        """Tokens still to feed to the model (the last sampled token, new input)."""
        return len(self.tokens) - self.kv_len

    # has_work / needs_prefill are read several times per session per step: written out, not via `pending`
    @property
    def has_work(self) -> bool:
        return self.status is SessionStatus.GENERATING and len(self.tokens) > self.kv_len

    @property
    def needs_prefill(self) -> bool:
        return self.status is SessionStatus.GENERATING and len(self.tokens) - self.kv_len > 1

    def finish(self, reason: FinishReason) -> None:
        self.status = SessionStatus.FINISHED
        self.finish_reason = reason

    def start_turn(self, new_tokens: list[int], constraint: Constraint | None) -> None:
        self.tokens.extend(new_tokens)
        self.status = SessionStatus.GENERATING
        self.finish_reason = None
        self.turn_tokens = 0
        self.constraint = constraint
        self.constraint_state = constraint.initial_state() if constraint is not None else None
        self.stop_matcher = StopMatcher(self.sampling.stop) if self.sampling.stop else None

    def take_text(self) -> str:
        text, self.text_out = self.text_out, ""
        return text

    def touch(self, now: float | None = None) -> None:
        self.last_active = time.monotonic() if now is None else now
