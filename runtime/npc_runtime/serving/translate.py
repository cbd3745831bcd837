"""Proto messages <-> engine domain types: the only module that knows both.

Every request field is checked here (ranges, NaN, sizes) and a bad one raises `InvalidArgument` naming the
field, e.g. "entries[3].budget_ms must be a finite number in [0, 10000] (got nan)". The engine checks its
own invariants again (model limits, session state); this layer stops what the wire can carry but the engine
should never see.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from npc_proto.v1 import runtime_pb2 as pb
from npc_runtime.config import SessionLimits
from npc_runtime.decode.constraints import ConstraintSpec
from npc_runtime.decode.sampling import SamplingParams
from npc_runtime.errors import InvalidArgument
from npc_runtime.serving.config import ServerConfig
from npc_runtime.serving.engine_port import TickItem
from npc_runtime.sessions.engine import ModelInfo, TickResult, TokenChunk

MAX_ID_CHARS = 256
MAX_IDLE_TIMEOUT_S = 7 * 24 * 3600
MAX_TEMPERATURE = 5.0
MAX_REPETITION_PENALTY = 3.0
MAX_TOKENS_PER_REQUEST = 1 << 20


# ---------------------------------------------------------------------------------------------- checks

def _finite_in(value: float, low: float, high: float, field: str) -> float:
    value = float(value)
    if not math.isfinite(value) or not low <= value <= high:
        raise InvalidArgument(f"{field} must be a finite number in [{low:g}, {high:g}] (got {value!r})")
    return value


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def check_text(value: str, field: str, config: ServerConfig) -> str:
    if len(value) > config.max_text_chars:
        raise InvalidArgument(f"{field} is {len(value)} characters long; the limit is {config.max_text_chars}")
    return value


def _count(value: int, field: str, high: int) -> int:
    if value > high:
        raise InvalidArgument(f"{field} must be <= {high} (got {value})")
    return int(value)


def session_id(value: str, field: str = "session_id") -> str:
    if not value:
        raise InvalidArgument(f"{field} is empty; pass the id returned by OpenSession")
    if len(value) > MAX_ID_CHARS:
        raise InvalidArgument(f"{field} is longer than {MAX_ID_CHARS} characters; pass the id returned by OpenSession")
    return value


# ------------------------------------------------------------------------------------- proto -> domain

def sampling_from_proto(msg: pb.SamplingParams, config: ServerConfig, field: str = "sampling") -> SamplingParams:
    temperature = _finite_in(msg.temperature, 0.0, MAX_TEMPERATURE, _join(field, "temperature"))
    top_p = _finite_in(msg.top_p, 0.0, 1.0, _join(field, "top_p"))
    penalty = _finite_in(msg.repetition_penalty, 0.0, MAX_REPETITION_PENALTY, _join(field, "repetition_penalty"))
    if len(msg.stop) > config.max_stop_sequences:
        raise InvalidArgument(f"{_join(field, 'stop')} has {len(msg.stop)} entries; at most {config.max_stop_sequences}")
    for i, stop in enumerate(msg.stop):
        if not stop:
            raise InvalidArgument(f"{_join(field, 'stop')}[{i}] is empty; remove it or give the text to stop at")
        check_text(stop, f"{_join(field, 'stop')}[{i}]", config)
    return SamplingParams(
        temperature=temperature,
        top_k=int(msg.top_k),
        top_p=top_p if top_p > 0.0 else 1.0,                 # 0 = disabled
        repetition_penalty=penalty if penalty > 0.0 else 1.0,  # 0 = disabled
        seed=int(msg.seed) if msg.seed else None,              # 0 = derived by the engine
        stop=tuple(msg.stop),
    ).validate()


def limits_from_proto(msg: pb.SessionLimits, field: str = "limits") -> SessionLimits | None:
    """None when every field is 0 (the engine's default limits); else a zero field takes the
    `SessionLimits` default (max_new_tokens 256, the engine's max_context and idle timeout)."""
    given = {
        "max_new_tokens": _count(msg.max_new_tokens, f"{field}.max_new_tokens", MAX_TOKENS_PER_REQUEST),
        "max_context": _count(msg.max_context, f"{field}.max_context", MAX_TOKENS_PER_REQUEST),
        "idle_timeout_s": float(_count(msg.idle_timeout_s, f"{field}.idle_timeout_s", MAX_IDLE_TIMEOUT_S)),
    }
    if not any(given.values()):
        return None
    return SessionLimits(**{k: v for k, v in given.items() if v}).validate()


def constraint_from_proto(msg: pb.Constraint, config: ServerConfig,
                          field: str = "constraint") -> ConstraintSpec | None:
    """None when unset; else the engine's constraint spec."""
    kind = msg.WhichOneof("kind")
    if kind is None:
        return None
    if kind == "allowed":
        sequences = list(msg.allowed.sequences)
        if not sequences:
            raise InvalidArgument(f"{field}.allowed.sequences is empty; list the strings the model may produce")
        if len(sequences) > config.max_allowed_sequences:
            raise InvalidArgument(f"{field}.allowed.sequences has {len(sequences)} entries; "
                                  f"at most {config.max_allowed_sequences}")
        for i, seq in enumerate(sequences):
            if not seq:
                raise InvalidArgument(f"{field}.allowed.sequences[{i}] is empty")
            check_text(seq, f"{field}.allowed.sequences[{i}]", config)
        return ConstraintSpec.one_of(sequences)
    schema_text = check_text(msg.json_schema, f"{field}.json_schema", config)
    try:
        schema = json.loads(schema_text)
    except json.JSONDecodeError as exc:
        raise InvalidArgument(f"{field}.json_schema is not valid JSON: {exc}") from exc
    if not isinstance(schema, dict):
        raise InvalidArgument(f"{field}.json_schema must be a JSON object (a schema), got {type(schema).__name__}")
    return ConstraintSpec.json(schema)


@dataclass(frozen=True, kw_only=True)
class OpenSessionArgs:
    model: str
    npc_id: str
    prefix: str
    prompt: str
    apply_chat_template: bool
    sampling: SamplingParams | None
    limits: SessionLimits | None
    constraint: ConstraintSpec | None


def _short_id(value: str, field: str, hint: str) -> str:
    if len(value) > MAX_ID_CHARS:
        raise InvalidArgument(f"{field} is longer than {MAX_ID_CHARS} characters; {hint}")
    return value


def open_session_from_proto(req: pb.OpenSessionRequest, config: ServerConfig) -> OpenSessionArgs:
    return OpenSessionArgs(
        model=_short_id(req.model, "model", "use a name from ListModels"),
        npc_id=_short_id(req.npc_id, "npc_id", "use a shorter game-side id"),
        prefix=check_text(req.prefix, "prefix", config),
        prompt=check_text(req.prompt, "prompt", config),
        apply_chat_template=bool(req.apply_chat_template),
        # unset: the server's default sampling ([engine.default_sampling], greedy unless configured)
        sampling=sampling_from_proto(req.sampling, config) if req.HasField("sampling") else None,
        limits=limits_from_proto(req.limits),
        constraint=constraint_from_proto(req.constraint, config),
    )


@dataclass(frozen=True, kw_only=True)
class TickEntryArgs:
    session_id: str
    budget_ms: float
    max_tokens: int
    new_input: str | None
    constraint: ConstraintSpec | None


def tick_entry_from_proto(entry: pb.TickEntry, config: ServerConfig, field: str) -> TickEntryArgs:
    sid = session_id(entry.session_id, f"{field}.session_id")
    budget = _finite_in(entry.budget_ms, 0.0, config.max_budget_ms, f"{field}.budget_ms")
    max_tokens = _count(entry.max_tokens, f"{field}.max_tokens", MAX_TOKENS_PER_REQUEST)
    new_input = check_text(entry.new_input, f"{field}.new_input", config)
    constraint = constraint_from_proto(entry.constraint, config, f"{field}.constraint")
    if constraint is not None and not new_input:
        raise InvalidArgument(f"{field}.constraint needs {field}.new_input (a constraint applies to a new turn)")
    return TickEntryArgs(session_id=sid, budget_ms=budget or config.default_budget_ms, max_tokens=max_tokens,
                         new_input=new_input or None, constraint=constraint)


def check_tick_size(req: pb.TickRequest, config: ServerConfig) -> None:
    if len(req.entries) > config.max_tick_entries:
        raise InvalidArgument(f"entries has {len(req.entries)} items; at most {config.max_tick_entries} per Tick "
                              "(see HandshakeResponse.max_tick_entries)")


@dataclass(frozen=True, kw_only=True)
class GenerateArgs:
    session_id: str
    input: str | None
    max_tokens: int
    constraint: ConstraintSpec | None


def generate_from_proto(req: pb.GenerateRequest, config: ServerConfig) -> GenerateArgs:
    constraint = constraint_from_proto(req.constraint, config)
    text = check_text(req.input, "input", config)
    if constraint is not None and not text:
        raise InvalidArgument("constraint needs input (a constraint applies to a new turn)")
    return GenerateArgs(session_id=session_id(req.session_id), input=text or None,
                        max_tokens=_count(req.max_tokens, "max_tokens", MAX_TOKENS_PER_REQUEST),
                        constraint=constraint)


# ------------------------------------------------------------------------------------- domain -> proto

# engine finish reason (string or enum value) -> proto enum
FINISH_REASONS: dict[str, int] = {
    "": pb.FINISH_REASON_UNSPECIFIED,
    "none": pb.FINISH_REASON_UNSPECIFIED,
    "length": pb.FINISH_REASON_LENGTH,
    "max_tokens": pb.FINISH_REASON_LENGTH,
    "stop": pb.FINISH_REASON_STOP,
    "eos": pb.FINISH_REASON_EOS,
    "cancelled": pb.FINISH_REASON_CANCELLED,
    "evicted": pb.FINISH_REASON_EVICTED,
    "context_full": pb.FINISH_REASON_CONTEXT_FULL,
    "constraint": pb.FINISH_REASON_CONSTRAINT,
    "error": pb.FINISH_REASON_ERROR,
}

# proto enum -> OpenAI finish_reason
OPENAI_FINISH_REASONS: dict[int, str | None] = {
    pb.FINISH_REASON_UNSPECIFIED: None,
    pb.FINISH_REASON_LENGTH: "length",
    pb.FINISH_REASON_CONTEXT_FULL: "length",
    pb.FINISH_REASON_STOP: "stop",
    pb.FINISH_REASON_EOS: "stop",
    pb.FINISH_REASON_CONSTRAINT: "stop",
    pb.FINISH_REASON_CANCELLED: "stop",
    pb.FINISH_REASON_EVICTED: "stop",
    pb.FINISH_REASON_ERROR: "stop",
}


def finish_reason_to_proto(reason: Any) -> int:
    if reason is None:
        return pb.FINISH_REASON_UNSPECIFIED
    key = str(getattr(reason, "value", reason)).lower()
    key = key.removeprefix("finish_reason_").removeprefix("finishreason.")
    return FINISH_REASONS.get(key, pb.FINISH_REASON_ERROR)


def model_info_to_proto(info: ModelInfo) -> pb.ModelInfo:
    return pb.ModelInfo(name=info.name, kind=info.kind, precision=info.precision,
                        context_length=int(info.context_length or 0), vocab_size=int(info.vocab_size or 0),
                        target=info.target)


def tick_item_to_domain(args: TickEntryArgs) -> TickItem:
    return TickItem(session_id=args.session_id, budget_ms=args.budget_ms, max_tokens=args.max_tokens,
                    new_input=args.new_input, constraint=args.constraint)


def tick_result_to_proto(result: TickResult) -> pb.TickResult:
    stats = result.stats
    return pb.TickResult(
        session_id=result.session_id,
        token_ids=[int(t) for t in result.token_ids],
        text_delta=result.text_delta or "",
        finished=bool(result.finished),
        finish_reason=finish_reason_to_proto(result.finish_reason) if result.finished else pb.FINISH_REASON_UNSPECIFIED,
        stats=pb.TickStats(
            tick_ms=float(stats.engine_ms),
            steps=int(stats.steps),
            max_batch=int(stats.max_batch),
            pending_prefill_tokens=int(stats.pending_prefill_tokens),
            context_tokens=int(stats.context_tokens),
        ),
    )


def chunk_to_proto(chunk: TokenChunk) -> pb.GenerateChunk:
    finished = bool(chunk.finished)
    return pb.GenerateChunk(token_ids=[int(t) for t in chunk.token_ids], text=chunk.text_delta or "", finished=finished,
                            finish_reason=finish_reason_to_proto(chunk.finish_reason) if finished
                            else pb.FINISH_REASON_UNSPECIFIED)
