from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DecisionSource(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DECISION_SOURCE_UNSPECIFIED: _ClassVar[DecisionSource]
    DECISION_SOURCE_FSM: _ClassVar[DecisionSource]
    DECISION_SOURCE_POLICY: _ClassVar[DecisionSource]
    DECISION_SOURCE_LOCAL_MODEL: _ClassVar[DecisionSource]
    DECISION_SOURCE_CLOUD: _ClassVar[DecisionSource]
    DECISION_SOURCE_FALLBACK: _ClassVar[DecisionSource]

class MemoryKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MEMORY_KIND_UNSPECIFIED: _ClassVar[MemoryKind]
    MEMORY_KIND_OBSERVATION: _ClassVar[MemoryKind]
    MEMORY_KIND_DIALOGUE: _ClassVar[MemoryKind]
    MEMORY_KIND_REFLECTION: _ClassVar[MemoryKind]
    MEMORY_KIND_ESCALATION: _ClassVar[MemoryKind]
DECISION_SOURCE_UNSPECIFIED: DecisionSource
DECISION_SOURCE_FSM: DecisionSource
DECISION_SOURCE_POLICY: DecisionSource
DECISION_SOURCE_LOCAL_MODEL: DecisionSource
DECISION_SOURCE_CLOUD: DecisionSource
DECISION_SOURCE_FALLBACK: DecisionSource
MEMORY_KIND_UNSPECIFIED: MemoryKind
MEMORY_KIND_OBSERVATION: MemoryKind
MEMORY_KIND_DIALOGUE: MemoryKind
MEMORY_KIND_REFLECTION: MemoryKind
MEMORY_KIND_ESCALATION: MemoryKind

class Persona(_message.Message):
    __slots__ = ("name", "role", "traits", "backstory")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    TRAITS_FIELD_NUMBER: _ClassVar[int]
    BACKSTORY_FIELD_NUMBER: _ClassVar[int]
    name: str
    role: str
    traits: _containers.RepeatedScalarFieldContainer[str]
    backstory: str
    def __init__(self, name: _Optional[str] = ..., role: _Optional[str] = ..., traits: _Optional[_Iterable[str]] = ..., backstory: _Optional[str] = ...) -> None: ...

class MemorySeed(_message.Message):
    __slots__ = ("text", "importance")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    IMPORTANCE_FIELD_NUMBER: _ClassVar[int]
    text: str
    importance: float
    def __init__(self, text: _Optional[str] = ..., importance: _Optional[float] = ...) -> None: ...

class RegisterNpcRequest(_message.Message):
    __slots__ = ("npc_id", "persona", "fsm_name", "fsm_yaml", "memories", "replace")
    NPC_ID_FIELD_NUMBER: _ClassVar[int]
    PERSONA_FIELD_NUMBER: _ClassVar[int]
    FSM_NAME_FIELD_NUMBER: _ClassVar[int]
    FSM_YAML_FIELD_NUMBER: _ClassVar[int]
    MEMORIES_FIELD_NUMBER: _ClassVar[int]
    REPLACE_FIELD_NUMBER: _ClassVar[int]
    npc_id: str
    persona: Persona
    fsm_name: str
    fsm_yaml: str
    memories: _containers.RepeatedCompositeFieldContainer[MemorySeed]
    replace: bool
    def __init__(self, npc_id: _Optional[str] = ..., persona: _Optional[_Union[Persona, _Mapping]] = ..., fsm_name: _Optional[str] = ..., fsm_yaml: _Optional[str] = ..., memories: _Optional[_Iterable[_Union[MemorySeed, _Mapping]]] = ..., replace: _Optional[bool] = ...) -> None: ...

class RegisterNpcResponse(_message.Message):
    __slots__ = ("npc_id", "state", "allowed_actions")
    NPC_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_ACTIONS_FIELD_NUMBER: _ClassVar[int]
    npc_id: str
    state: str
    allowed_actions: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, npc_id: _Optional[str] = ..., state: _Optional[str] = ..., allowed_actions: _Optional[_Iterable[str]] = ...) -> None: ...

class UnregisterNpcRequest(_message.Message):
    __slots__ = ("npc_id", "forget")
    NPC_ID_FIELD_NUMBER: _ClassVar[int]
    FORGET_FIELD_NUMBER: _ClassVar[int]
    npc_id: str
    forget: bool
    def __init__(self, npc_id: _Optional[str] = ..., forget: _Optional[bool] = ...) -> None: ...

class UnregisterNpcResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Observation(_message.Message):
    __slots__ = ("game_time_s", "values", "tags", "player_utterance")
    class ValuesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class TagsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    GAME_TIME_S_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    PLAYER_UTTERANCE_FIELD_NUMBER: _ClassVar[int]
    game_time_s: float
    values: _containers.ScalarMap[str, float]
    tags: _containers.ScalarMap[str, str]
    player_utterance: str
    def __init__(self, game_time_s: _Optional[float] = ..., values: _Optional[_Mapping[str, float]] = ..., tags: _Optional[_Mapping[str, str]] = ..., player_utterance: _Optional[str] = ...) -> None: ...

class GameEvent(_message.Message):
    __slots__ = ("kind", "description", "importance", "story_critical", "attributes")
    class AttributesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    KIND_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    IMPORTANCE_FIELD_NUMBER: _ClassVar[int]
    STORY_CRITICAL_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    kind: str
    description: str
    importance: float
    story_critical: bool
    attributes: _containers.ScalarMap[str, str]
    def __init__(self, kind: _Optional[str] = ..., description: _Optional[str] = ..., importance: _Optional[float] = ..., story_critical: _Optional[bool] = ..., attributes: _Optional[_Mapping[str, str]] = ...) -> None: ...

class StepRequest(_message.Message):
    __slots__ = ("npc_id", "observation", "events", "deadline_ms")
    NPC_ID_FIELD_NUMBER: _ClassVar[int]
    OBSERVATION_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_MS_FIELD_NUMBER: _ClassVar[int]
    npc_id: str
    observation: Observation
    events: _containers.RepeatedCompositeFieldContainer[GameEvent]
    deadline_ms: float
    def __init__(self, npc_id: _Optional[str] = ..., observation: _Optional[_Union[Observation, _Mapping]] = ..., events: _Optional[_Iterable[_Union[GameEvent, _Mapping]]] = ..., deadline_ms: _Optional[float] = ...) -> None: ...

class Decision(_message.Message):
    __slots__ = ("npc_id", "state", "action", "arguments", "dialogue", "escalated", "reason", "confidence", "source", "allowed_actions", "latency_ms", "memories_written", "rejected_action", "policy_version")
    class ArgumentsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NPC_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    ARGUMENTS_FIELD_NUMBER: _ClassVar[int]
    DIALOGUE_FIELD_NUMBER: _ClassVar[int]
    ESCALATED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_ACTIONS_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    MEMORIES_WRITTEN_FIELD_NUMBER: _ClassVar[int]
    REJECTED_ACTION_FIELD_NUMBER: _ClassVar[int]
    POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    npc_id: str
    state: str
    action: str
    arguments: _containers.ScalarMap[str, str]
    dialogue: str
    escalated: bool
    reason: str
    confidence: float
    source: DecisionSource
    allowed_actions: _containers.RepeatedScalarFieldContainer[str]
    latency_ms: float
    memories_written: int
    rejected_action: bool
    policy_version: str
    def __init__(self, npc_id: _Optional[str] = ..., state: _Optional[str] = ..., action: _Optional[str] = ..., arguments: _Optional[_Mapping[str, str]] = ..., dialogue: _Optional[str] = ..., escalated: _Optional[bool] = ..., reason: _Optional[str] = ..., confidence: _Optional[float] = ..., source: _Optional[_Union[DecisionSource, str]] = ..., allowed_actions: _Optional[_Iterable[str]] = ..., latency_ms: _Optional[float] = ..., memories_written: _Optional[int] = ..., rejected_action: _Optional[bool] = ..., policy_version: _Optional[str] = ...) -> None: ...

class PlayRequest(_message.Message):
    __slots__ = ("seq", "register", "steps")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    REGISTER_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    seq: int
    register: _containers.RepeatedCompositeFieldContainer[RegisterNpcRequest]
    steps: _containers.RepeatedCompositeFieldContainer[StepRequest]
    def __init__(self, seq: _Optional[int] = ..., register: _Optional[_Iterable[_Union[RegisterNpcRequest, _Mapping]]] = ..., steps: _Optional[_Iterable[_Union[StepRequest, _Mapping]]] = ...) -> None: ...

class NpcError(_message.Message):
    __slots__ = ("npc_id", "code", "message")
    NPC_ID_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    npc_id: str
    code: int
    message: str
    def __init__(self, npc_id: _Optional[str] = ..., code: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...

class PlayResponse(_message.Message):
    __slots__ = ("seq", "decisions", "errors")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    DECISIONS_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    seq: int
    decisions: _containers.RepeatedCompositeFieldContainer[Decision]
    errors: _containers.RepeatedCompositeFieldContainer[NpcError]
    def __init__(self, seq: _Optional[int] = ..., decisions: _Optional[_Iterable[_Union[Decision, _Mapping]]] = ..., errors: _Optional[_Iterable[_Union[NpcError, _Mapping]]] = ...) -> None: ...

class ActionChosen(_message.Message):
    __slots__ = ("npc_id", "state", "action", "arguments", "escalated", "source", "confidence", "allowed_actions", "latency_ms")
    class ArgumentsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NPC_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    ARGUMENTS_FIELD_NUMBER: _ClassVar[int]
    ESCALATED_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_ACTIONS_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    npc_id: str
    state: str
    action: str
    arguments: _containers.ScalarMap[str, str]
    escalated: bool
    source: DecisionSource
    confidence: float
    allowed_actions: _containers.RepeatedScalarFieldContainer[str]
    latency_ms: float
    def __init__(self, npc_id: _Optional[str] = ..., state: _Optional[str] = ..., action: _Optional[str] = ..., arguments: _Optional[_Mapping[str, str]] = ..., escalated: _Optional[bool] = ..., source: _Optional[_Union[DecisionSource, str]] = ..., confidence: _Optional[float] = ..., allowed_actions: _Optional[_Iterable[str]] = ..., latency_ms: _Optional[float] = ...) -> None: ...

class DialogueDelta(_message.Message):
    __slots__ = ("text", "sentence_end", "latency_ms")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    SENTENCE_END_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    text: str
    sentence_end: bool
    latency_ms: float
    def __init__(self, text: _Optional[str] = ..., sentence_end: _Optional[bool] = ..., latency_ms: _Optional[float] = ...) -> None: ...

class StepChunk(_message.Message):
    __slots__ = ("action", "dialogue", "done")
    ACTION_FIELD_NUMBER: _ClassVar[int]
    DIALOGUE_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    action: ActionChosen
    dialogue: DialogueDelta
    done: Decision
    def __init__(self, action: _Optional[_Union[ActionChosen, _Mapping]] = ..., dialogue: _Optional[_Union[DialogueDelta, _Mapping]] = ..., done: _Optional[_Union[Decision, _Mapping]] = ...) -> None: ...

class RecallMemoriesRequest(_message.Message):
    __slots__ = ("npc_id", "query", "limit")
    NPC_ID_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    npc_id: str
    query: str
    limit: int
    def __init__(self, npc_id: _Optional[str] = ..., query: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class Memory(_message.Message):
    __slots__ = ("text", "importance", "game_time_s", "kind", "score")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    IMPORTANCE_FIELD_NUMBER: _ClassVar[int]
    GAME_TIME_S_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    text: str
    importance: float
    game_time_s: float
    kind: MemoryKind
    score: float
    def __init__(self, text: _Optional[str] = ..., importance: _Optional[float] = ..., game_time_s: _Optional[float] = ..., kind: _Optional[_Union[MemoryKind, str]] = ..., score: _Optional[float] = ...) -> None: ...

class RecallMemoriesResponse(_message.Message):
    __slots__ = ("memories",)
    MEMORIES_FIELD_NUMBER: _ClassVar[int]
    memories: _containers.RepeatedCompositeFieldContainer[Memory]
    def __init__(self, memories: _Optional[_Iterable[_Union[Memory, _Mapping]]] = ...) -> None: ...

class ListPoliciesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class PolicyVersionInfo(_message.Message):
    __slots__ = ("name", "package", "is_default", "base_version", "generation", "records", "decisions", "escalations", "escalation_rate", "rejected_actions", "cost_usd")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PACKAGE_FIELD_NUMBER: _ClassVar[int]
    IS_DEFAULT_FIELD_NUMBER: _ClassVar[int]
    BASE_VERSION_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    DECISIONS_FIELD_NUMBER: _ClassVar[int]
    ESCALATIONS_FIELD_NUMBER: _ClassVar[int]
    ESCALATION_RATE_FIELD_NUMBER: _ClassVar[int]
    REJECTED_ACTIONS_FIELD_NUMBER: _ClassVar[int]
    COST_USD_FIELD_NUMBER: _ClassVar[int]
    name: str
    package: str
    is_default: bool
    base_version: str
    generation: int
    records: int
    decisions: int
    escalations: int
    escalation_rate: float
    rejected_actions: int
    cost_usd: float
    def __init__(self, name: _Optional[str] = ..., package: _Optional[str] = ..., is_default: _Optional[bool] = ..., base_version: _Optional[str] = ..., generation: _Optional[int] = ..., records: _Optional[int] = ..., decisions: _Optional[int] = ..., escalations: _Optional[int] = ..., escalation_rate: _Optional[float] = ..., rejected_actions: _Optional[int] = ..., cost_usd: _Optional[float] = ...) -> None: ...

class PolicyRoutingRule(_message.Message):
    __slots__ = ("version", "match", "fraction")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    MATCH_FIELD_NUMBER: _ClassVar[int]
    FRACTION_FIELD_NUMBER: _ClassVar[int]
    version: str
    match: str
    fraction: float
    def __init__(self, version: _Optional[str] = ..., match: _Optional[str] = ..., fraction: _Optional[float] = ...) -> None: ...

class ListPoliciesResponse(_message.Message):
    __slots__ = ("versions", "default_version", "routing", "generation")
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_VERSION_FIELD_NUMBER: _ClassVar[int]
    ROUTING_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    versions: _containers.RepeatedCompositeFieldContainer[PolicyVersionInfo]
    default_version: str
    routing: _containers.RepeatedCompositeFieldContainer[PolicyRoutingRule]
    generation: int
    def __init__(self, versions: _Optional[_Iterable[_Union[PolicyVersionInfo, _Mapping]]] = ..., default_version: _Optional[str] = ..., routing: _Optional[_Iterable[_Union[PolicyRoutingRule, _Mapping]]] = ..., generation: _Optional[int] = ...) -> None: ...

class ReloadPoliciesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ReloadPoliciesResponse(_message.Message):
    __slots__ = ("policies", "summary")
    POLICIES_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    policies: ListPoliciesResponse
    summary: str
    def __init__(self, policies: _Optional[_Union[ListPoliciesResponse, _Mapping]] = ..., summary: _Optional[str] = ...) -> None: ...

class SaveNpcRequest(_message.Message):
    __slots__ = ("npc_id", "session_id", "include_kv")
    NPC_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_KV_FIELD_NUMBER: _ClassVar[int]
    npc_id: str
    session_id: str
    include_kv: bool
    def __init__(self, npc_id: _Optional[str] = ..., session_id: _Optional[str] = ..., include_kv: _Optional[bool] = ...) -> None: ...

class NpcSave(_message.Message):
    __slots__ = ("data", "npc_id", "memories", "conversation_tokens")
    DATA_FIELD_NUMBER: _ClassVar[int]
    NPC_ID_FIELD_NUMBER: _ClassVar[int]
    MEMORIES_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_TOKENS_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    npc_id: str
    memories: int
    conversation_tokens: int
    def __init__(self, data: _Optional[bytes] = ..., npc_id: _Optional[str] = ..., memories: _Optional[int] = ..., conversation_tokens: _Optional[int] = ...) -> None: ...

class RestoreNpcRequest(_message.Message):
    __slots__ = ("data", "npc_id", "replace")
    DATA_FIELD_NUMBER: _ClassVar[int]
    NPC_ID_FIELD_NUMBER: _ClassVar[int]
    REPLACE_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    npc_id: str
    replace: bool
    def __init__(self, data: _Optional[bytes] = ..., npc_id: _Optional[str] = ..., replace: _Optional[bool] = ...) -> None: ...

class RestoreNpcResponse(_message.Message):
    __slots__ = ("npc_id", "state", "memories", "session_id")
    NPC_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    MEMORIES_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    npc_id: str
    state: str
    memories: int
    session_id: str
    def __init__(self, npc_id: _Optional[str] = ..., state: _Optional[str] = ..., memories: _Optional[int] = ..., session_id: _Optional[str] = ...) -> None: ...
