from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FinishReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FINISH_REASON_UNSPECIFIED: _ClassVar[FinishReason]
    FINISH_REASON_LENGTH: _ClassVar[FinishReason]
    FINISH_REASON_STOP: _ClassVar[FinishReason]
    FINISH_REASON_EOS: _ClassVar[FinishReason]
    FINISH_REASON_CANCELLED: _ClassVar[FinishReason]
    FINISH_REASON_EVICTED: _ClassVar[FinishReason]
    FINISH_REASON_CONTEXT_FULL: _ClassVar[FinishReason]
    FINISH_REASON_CONSTRAINT: _ClassVar[FinishReason]
    FINISH_REASON_ERROR: _ClassVar[FinishReason]
FINISH_REASON_UNSPECIFIED: FinishReason
FINISH_REASON_LENGTH: FinishReason
FINISH_REASON_STOP: FinishReason
FINISH_REASON_EOS: FinishReason
FINISH_REASON_CANCELLED: FinishReason
FINISH_REASON_EVICTED: FinishReason
FINISH_REASON_CONTEXT_FULL: FinishReason
FINISH_REASON_CONSTRAINT: FinishReason
FINISH_REASON_ERROR: FinishReason

class HandshakeRequest(_message.Message):
    __slots__ = ("protocol_version", "client_name")
    PROTOCOL_VERSION_FIELD_NUMBER: _ClassVar[int]
    CLIENT_NAME_FIELD_NUMBER: _ClassVar[int]
    protocol_version: str
    client_name: str
    def __init__(self, protocol_version: _Optional[str] = ..., client_name: _Optional[str] = ...) -> None: ...

class HandshakeResponse(_message.Message):
    __slots__ = ("protocol_version", "server_version", "capabilities", "max_tick_entries", "max_sessions")
    PROTOCOL_VERSION_FIELD_NUMBER: _ClassVar[int]
    SERVER_VERSION_FIELD_NUMBER: _ClassVar[int]
    CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    MAX_TICK_ENTRIES_FIELD_NUMBER: _ClassVar[int]
    MAX_SESSIONS_FIELD_NUMBER: _ClassVar[int]
    protocol_version: str
    server_version: str
    capabilities: _containers.RepeatedScalarFieldContainer[str]
    max_tick_entries: int
    max_sessions: int
    def __init__(self, protocol_version: _Optional[str] = ..., server_version: _Optional[str] = ..., capabilities: _Optional[_Iterable[str]] = ..., max_tick_entries: _Optional[int] = ..., max_sessions: _Optional[int] = ...) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("name", "kind", "precision", "context_length", "vocab_size", "target", "batch_dependent")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    PRECISION_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_LENGTH_FIELD_NUMBER: _ClassVar[int]
    VOCAB_SIZE_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    BATCH_DEPENDENT_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: str
    precision: str
    context_length: int
    vocab_size: int
    target: str
    batch_dependent: bool
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[str] = ..., precision: _Optional[str] = ..., context_length: _Optional[int] = ..., vocab_size: _Optional[int] = ..., target: _Optional[str] = ..., batch_dependent: _Optional[bool] = ...) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models",)
    MODELS_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[ModelInfo]
    def __init__(self, models: _Optional[_Iterable[_Union[ModelInfo, _Mapping]]] = ...) -> None: ...

class SamplingParams(_message.Message):
    __slots__ = ("temperature", "top_k", "top_p", "repetition_penalty", "seed", "stop")
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    TOP_P_FIELD_NUMBER: _ClassVar[int]
    REPETITION_PENALTY_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    STOP_FIELD_NUMBER: _ClassVar[int]
    temperature: float
    top_k: int
    top_p: float
    repetition_penalty: float
    seed: int
    stop: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, temperature: _Optional[float] = ..., top_k: _Optional[int] = ..., top_p: _Optional[float] = ..., repetition_penalty: _Optional[float] = ..., seed: _Optional[int] = ..., stop: _Optional[_Iterable[str]] = ...) -> None: ...

class Constraint(_message.Message):
    __slots__ = ("allowed", "json_schema")
    ALLOWED_FIELD_NUMBER: _ClassVar[int]
    JSON_SCHEMA_FIELD_NUMBER: _ClassVar[int]
    allowed: AllowedSequences
    json_schema: str
    def __init__(self, allowed: _Optional[_Union[AllowedSequences, _Mapping]] = ..., json_schema: _Optional[str] = ...) -> None: ...

class AllowedSequences(_message.Message):
    __slots__ = ("sequences",)
    SEQUENCES_FIELD_NUMBER: _ClassVar[int]
    sequences: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, sequences: _Optional[_Iterable[str]] = ...) -> None: ...

class SessionLimits(_message.Message):
    __slots__ = ("max_new_tokens", "max_context", "idle_timeout_s")
    MAX_NEW_TOKENS_FIELD_NUMBER: _ClassVar[int]
    MAX_CONTEXT_FIELD_NUMBER: _ClassVar[int]
    IDLE_TIMEOUT_S_FIELD_NUMBER: _ClassVar[int]
    max_new_tokens: int
    max_context: int
    idle_timeout_s: int
    def __init__(self, max_new_tokens: _Optional[int] = ..., max_context: _Optional[int] = ..., idle_timeout_s: _Optional[int] = ...) -> None: ...

class OpenSessionRequest(_message.Message):
    __slots__ = ("model", "npc_id", "prefix", "prompt", "sampling", "limits", "constraint", "apply_chat_template")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    NPC_ID_FIELD_NUMBER: _ClassVar[int]
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    SAMPLING_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    CONSTRAINT_FIELD_NUMBER: _ClassVar[int]
    APPLY_CHAT_TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    model: str
    npc_id: str
    prefix: str
    prompt: str
    sampling: SamplingParams
    limits: SessionLimits
    constraint: Constraint
    apply_chat_template: bool
    def __init__(self, model: _Optional[str] = ..., npc_id: _Optional[str] = ..., prefix: _Optional[str] = ..., prompt: _Optional[str] = ..., sampling: _Optional[_Union[SamplingParams, _Mapping]] = ..., limits: _Optional[_Union[SessionLimits, _Mapping]] = ..., constraint: _Optional[_Union[Constraint, _Mapping]] = ..., apply_chat_template: _Optional[bool] = ...) -> None: ...

class OpenSessionResponse(_message.Message):
    __slots__ = ("session_id", "prompt_tokens", "cached_prefix_tokens")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CACHED_PREFIX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    prompt_tokens: int
    cached_prefix_tokens: int
    def __init__(self, session_id: _Optional[str] = ..., prompt_tokens: _Optional[int] = ..., cached_prefix_tokens: _Optional[int] = ...) -> None: ...

class TickEntry(_message.Message):
    __slots__ = ("session_id", "budget_ms", "max_tokens", "new_input", "constraint")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    BUDGET_MS_FIELD_NUMBER: _ClassVar[int]
    MAX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    NEW_INPUT_FIELD_NUMBER: _ClassVar[int]
    CONSTRAINT_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    budget_ms: float
    max_tokens: int
    new_input: str
    constraint: Constraint
    def __init__(self, session_id: _Optional[str] = ..., budget_ms: _Optional[float] = ..., max_tokens: _Optional[int] = ..., new_input: _Optional[str] = ..., constraint: _Optional[_Union[Constraint, _Mapping]] = ...) -> None: ...

class TickRequest(_message.Message):
    __slots__ = ("entries",)
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[TickEntry]
    def __init__(self, entries: _Optional[_Iterable[_Union[TickEntry, _Mapping]]] = ...) -> None: ...

class TickStats(_message.Message):
    __slots__ = ("tick_ms", "steps", "max_batch", "pending_prefill_tokens", "context_tokens", "restore_ms", "restored_from")
    TICK_MS_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    MAX_BATCH_FIELD_NUMBER: _ClassVar[int]
    PENDING_PREFILL_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    RESTORE_MS_FIELD_NUMBER: _ClassVar[int]
    RESTORED_FROM_FIELD_NUMBER: _ClassVar[int]
    tick_ms: float
    steps: int
    max_batch: int
    pending_prefill_tokens: int
    context_tokens: int
    restore_ms: float
    restored_from: str
    def __init__(self, tick_ms: _Optional[float] = ..., steps: _Optional[int] = ..., max_batch: _Optional[int] = ..., pending_prefill_tokens: _Optional[int] = ..., context_tokens: _Optional[int] = ..., restore_ms: _Optional[float] = ..., restored_from: _Optional[str] = ...) -> None: ...

class TickResult(_message.Message):
    __slots__ = ("session_id", "token_ids", "text_delta", "finished", "finish_reason", "stats", "error", "error_code")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    TOKEN_IDS_FIELD_NUMBER: _ClassVar[int]
    TEXT_DELTA_FIELD_NUMBER: _ClassVar[int]
    FINISHED_FIELD_NUMBER: _ClassVar[int]
    FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    STATS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    token_ids: _containers.RepeatedScalarFieldContainer[int]
    text_delta: str
    finished: bool
    finish_reason: FinishReason
    stats: TickStats
    error: str
    error_code: int
    def __init__(self, session_id: _Optional[str] = ..., token_ids: _Optional[_Iterable[int]] = ..., text_delta: _Optional[str] = ..., finished: _Optional[bool] = ..., finish_reason: _Optional[_Union[FinishReason, str]] = ..., stats: _Optional[_Union[TickStats, _Mapping]] = ..., error: _Optional[str] = ..., error_code: _Optional[int] = ...) -> None: ...

class TickResponse(_message.Message):
    __slots__ = ("results", "tick_ms")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    TICK_MS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[TickResult]
    tick_ms: float
    def __init__(self, results: _Optional[_Iterable[_Union[TickResult, _Mapping]]] = ..., tick_ms: _Optional[float] = ...) -> None: ...

class GenerateRequest(_message.Message):
    __slots__ = ("session_id", "input", "max_tokens", "constraint")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    MAX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CONSTRAINT_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    input: str
    max_tokens: int
    constraint: Constraint
    def __init__(self, session_id: _Optional[str] = ..., input: _Optional[str] = ..., max_tokens: _Optional[int] = ..., constraint: _Optional[_Union[Constraint, _Mapping]] = ...) -> None: ...

class GenerateChunk(_message.Message):
    __slots__ = ("token_ids", "text", "finished", "finish_reason")
    TOKEN_IDS_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_FIELD_NUMBER: _ClassVar[int]
    FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    token_ids: _containers.RepeatedScalarFieldContainer[int]
    text: str
    finished: bool
    finish_reason: FinishReason
    def __init__(self, token_ids: _Optional[_Iterable[int]] = ..., text: _Optional[str] = ..., finished: _Optional[bool] = ..., finish_reason: _Optional[_Union[FinishReason, str]] = ...) -> None: ...

class CancelRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class CancelResponse(_message.Message):
    __slots__ = ("was_running",)
    WAS_RUNNING_FIELD_NUMBER: _ClassVar[int]
    was_running: bool
    def __init__(self, was_running: _Optional[bool] = ...) -> None: ...

class CloseSessionRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class CloseSessionResponse(_message.Message):
    __slots__ = ("context_tokens",)
    CONTEXT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    context_tokens: int
    def __init__(self, context_tokens: _Optional[int] = ...) -> None: ...

class SaveSessionRequest(_message.Message):
    __slots__ = ("session_id", "include_kv")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_KV_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    include_kv: bool
    def __init__(self, session_id: _Optional[str] = ..., include_kv: _Optional[bool] = ...) -> None: ...

class SessionSnapshot(_message.Message):
    __slots__ = ("data", "session_id", "model", "context_tokens")
    DATA_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    session_id: str
    model: str
    context_tokens: int
    def __init__(self, data: _Optional[bytes] = ..., session_id: _Optional[str] = ..., model: _Optional[str] = ..., context_tokens: _Optional[int] = ...) -> None: ...

class RestoreSessionRequest(_message.Message):
    __slots__ = ("snapshot", "session_id")
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    snapshot: SessionSnapshot
    session_id: str
    def __init__(self, snapshot: _Optional[_Union[SessionSnapshot, _Mapping]] = ..., session_id: _Optional[str] = ...) -> None: ...
