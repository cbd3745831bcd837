"""Proto messages <-> the engine's request and result types: the only module that knows both.

Mapping only: the engine validates every request once (`sessions/requests.py`), so a bad field gives the
same message over gRPC and HTTP. What is decided here is the wire's own convention: a zero / empty proto
field means "unset" (the server default), e.g. `TickEntry.budget_ms = 0` is the default budget and
`GenerateRequest.max_tokens = 0` lets the session's max_new_tokens end the turn.
"""

from __future__ import annotations

from npc_proto.v1 import runtime_pb2 as pb
from npc_runtime.config import SessionLimits
from npc_runtime.decode.constraints import ConstraintSpec
from npc_runtime.decode.sampling import SamplingParams
from npc_runtime.sessions.engine import ModelInfo, TickResult, TokenChunk
from npc_runtime.sessions.requests import GenerateRequest, OpenRequest, TickRequest, Turn
from npc_runtime.sessions.session import FinishReason

# ------------------------------------------------------------------------------------- proto -> domain

def sampling_from_proto(msg: pb.SamplingParams) -> SamplingParams:
    return SamplingParams(
        temperature=msg.temperature,
        top_k=msg.top_k,
        top_p=msg.top_p or 1.0,                                  # 0 = disabled
        repetition_penalty=msg.repetition_penalty or 1.0,        # 0 = disabled
        seed=msg.seed or None,                                   # 0 = derived by the engine
        stop=tuple(msg.stop),
    )


def limits_from_proto(msg: pb.SessionLimits) -> SessionLimits | None:
    """None when every field is 0 (the engine's default limits); else a zero field takes the
    `SessionLimits` default (max_new_tokens 256, the engine's max_context and idle timeout)."""
    given = {"max_new_tokens": msg.max_new_tokens, "max_context": msg.max_context,
             "idle_timeout_s": float(msg.idle_timeout_s)}
    if not any(given.values()):
        return None
    return SessionLimits(**{k: v for k, v in given.items() if v})


def constraint_from_proto(msg: pb.Constraint) -> ConstraintSpec | None:
    """None when unset; else the engine's constraint spec (the schema stays JSON text, checked by the engine)."""
    kind = msg.WhichOneof("kind")
    if kind is None:
        return None
    if kind == "allowed":
        return ConstraintSpec.one_of(list(msg.allowed.sequences))
    return ConstraintSpec(json_schema=msg.json_schema)


def open_request(req: pb.OpenSessionRequest) -> OpenRequest:
    return OpenRequest(
        model=req.model, npc_id=req.npc_id, prefix=req.prefix, prompt=req.prompt,
        apply_chat_template=bool(req.apply_chat_template),
        # unset: the server's default sampling ([engine.default_sampling], greedy unless configured)
        sampling=sampling_from_proto(req.sampling) if req.HasField("sampling") else None,
        limits=limits_from_proto(req.limits),
        constraint=constraint_from_proto(req.constraint))


def tick_request(entry: pb.TickEntry) -> TickRequest:
    # HasField first: reading an unset sub-message builds an empty one, per entry of every Tick
    constraint = constraint_from_proto(entry.constraint) if entry.HasField("constraint") else None
    return TickRequest(entry.session_id, budget_ms=entry.budget_ms or None, max_tokens=entry.max_tokens or None,
                       new_input=entry.new_input or None, constraint=constraint)


def generate_request(req: pb.GenerateRequest) -> GenerateRequest:
    return GenerateRequest(session_id=req.session_id, turns=(Turn(
        input=req.input or None, max_tokens=req.max_tokens or None,
        constraint=constraint_from_proto(req.constraint)),))


# ------------------------------------------------------------------------------------- domain -> proto

# every engine finish reason has its wire value (a test checks the table is complete)
FINISH_REASONS: dict[FinishReason, int] = {
    FinishReason.LENGTH: pb.FINISH_REASON_LENGTH,
    FinishReason.STOP: pb.FINISH_REASON_STOP,
    FinishReason.EOS: pb.FINISH_REASON_EOS,
    FinishReason.CANCELLED: pb.FINISH_REASON_CANCELLED,
    FinishReason.EVICTED: pb.FINISH_REASON_EVICTED,
    FinishReason.ERROR: pb.FINISH_REASON_ERROR,
    FinishReason.CONTEXT_FULL: pb.FINISH_REASON_CONTEXT_FULL,
}


def finish_reason_to_proto(reason: FinishReason | None) -> int:
    return pb.FINISH_REASON_UNSPECIFIED if reason is None else FINISH_REASONS[reason]


def model_info_to_proto(info: ModelInfo) -> pb.ModelInfo:
    return pb.ModelInfo(name=info.name, kind=info.kind, precision=info.precision,
                        context_length=int(info.context_length or 0), vocab_size=int(info.vocab_size or 0),
                        target=info.target, batch_dependent=not info.batch_invariant)


def tick_result_to_proto(result: TickResult) -> pb.TickResult:
    message = pb.TickResult()
    fill_tick_result(message, result)
    return message


def fill_tick_result(message: pb.TickResult, result: TickResult) -> None:
    """Writes `result` into `message`, typically `response.results.add()`: building each TickResult apart
    and passing the list to TickResponse copies every message again (half the cost of a 64-entry reply).
    Zero fields are left unset (the same bytes on the wire)."""
    stats = result.stats
    message.session_id = result.session_id
    if result.token_ids:
        message.token_ids.extend(result.token_ids)   # ints (numpy ints convert through __index__)
    if result.text_delta:
        message.text_delta = result.text_delta
    if result.finished:
        message.finished = True
        message.finish_reason = finish_reason_to_proto(result.finish_reason)
    st = message.stats
    st.tick_ms = stats.engine_ms
    st.steps = stats.steps
    st.max_batch = stats.max_batch
    st.pending_prefill_tokens = stats.pending_prefill_tokens
    st.context_tokens = stats.context_tokens
    if stats.restored_from:
        st.restore_ms = stats.restore_ms
        st.restored_from = stats.restored_from


def chunk_to_proto(chunk: TokenChunk) -> pb.GenerateChunk:
    if chunk.finished:
        return pb.GenerateChunk(token_ids=chunk.token_ids, text=chunk.text_delta or "", finished=True,
                                finish_reason=finish_reason_to_proto(chunk.finish_reason))
    return pb.GenerateChunk(token_ids=chunk.token_ids, text=chunk.text_delta or "")
