"""The `NpcAgent` gRPC servicer (grpc.aio) over `npc_runtime.agent.AgentRuntime`.

Translation only: protobuf <-> agent dataclasses here, errors through `serving/status.py`. Agent steps
block (local model, escalation wait bounded by the step deadline), so they run on a thread pool; the
steps of one `PlayRequest` run concurrently and are answered in request order. A `StepStream` runs its
step on that pool too; the step hands each chunk to the event loop as it is made (action, text deltas),
and a client cancel sets a flag that stops the decoding.
Register it with `create_server(..., extra_servicers=[agent_hook(runtime)])`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Sequence

import grpc

from npc_proto.v1 import agent_pb2 as pb
from npc_proto.v1 import agent_pb2_grpc
from npc_runtime.agent import save_game
from npc_runtime.agent.brain import MAX_NPC_ID, AgentRuntime
from npc_runtime.agent.fsm import FsmDefinition
from npc_runtime.agent.fsm_loader import BUILTIN_FSMS, load_builtin_fsm, parse_fsm
from npc_runtime.agent.memory import Memory, recall_kind
from npc_runtime.agent.types import AgentDecision, Event, Percept, Persona
from npc_runtime.errors import FailedPrecondition, InvalidArgument, NpcRuntimeError
from npc_runtime.serving import status
from npc_runtime.sessions.snapshot import peek as snapshot_header

log = logging.getLogger("npc_runtime.serving.agent")

SERVICE_NAME = "npc.v1.NpcAgent"
MAX_FSM_YAML_CHARS = 64 * 1024
MAX_TEXT_CHARS = 2_000
MAX_STEPS_PER_PLAY = 4_096
DEFAULT_RECALL = 20
# bounds on what one request may carry; every float is checked finite (NaN passes range checks unnoticed)
MAX_GAME_TIME_S = 1e12            # ~31,700 years of game time
MAX_MAP_ENTRIES = 256             # Observation.values / .tags, GameEvent.attributes
MAX_KEY_CHARS = 64
MAX_TAG_CHARS = 256
MAX_SEED_MEMORIES = 256

SOURCE_TO_PB = {
    "fsm": pb.DECISION_SOURCE_FSM, "policy": pb.DECISION_SOURCE_POLICY, "local_model": pb.DECISION_SOURCE_LOCAL_MODEL,
    "cloud": pb.DECISION_SOURCE_CLOUD, "fallback": pb.DECISION_SOURCE_FALLBACK,
}


# ---- translation ------------------------------------------------------------------------------------
def finite(value: float, field: str, low: float, high: float) -> float:
    if not math.isfinite(value) or not low <= value <= high:
        raise InvalidArgument(f"{field} must be a finite number in [{low:g}, {high:g}] (got {value!r})")
    return value


def npc_id_field(value: str, field: str = "npc_id") -> str:
    """Checked before any lookup: a NotFound message quotes the id, so it must be short (an empty one is
    simply not found)."""
    if len(value) > MAX_NPC_ID:
        raise InvalidArgument(f"{field} must be 1-{MAX_NPC_ID} characters (got {len(value)})")
    return value


def string_map(m, field: str, *, max_value_chars: int) -> dict[str, str]:
    if len(m) > MAX_MAP_ENTRIES:
        raise InvalidArgument(f"{field} has {len(m)} entries; at most {MAX_MAP_ENTRIES}")
    for key, value in m.items():
        if not key or len(key) > MAX_KEY_CHARS:
            raise InvalidArgument(f"{field}: keys must be 1-{MAX_KEY_CHARS} characters (got {key[:MAX_KEY_CHARS]!r}...)")
        if len(value) > max_value_chars:
            raise InvalidArgument(f"{field}[{key!r}] is {len(value)} characters; at most {max_value_chars}")
    return dict(m)


def number_map(m, field: str) -> dict[str, float]:
    if len(m) > MAX_MAP_ENTRIES:
        raise InvalidArgument(f"{field} has {len(m)} entries; at most {MAX_MAP_ENTRIES}")
    for key, value in m.items():
        if not key or len(key) > MAX_KEY_CHARS:
            raise InvalidArgument(f"{field}: keys must be 1-{MAX_KEY_CHARS} characters (got {key[:MAX_KEY_CHARS]!r}...)")
        if not math.isfinite(value):
            raise InvalidArgument(f"{field}[{key!r}] must be a finite number (got {value!r})")
    return dict(m)


def fsm_from_request(req: pb.RegisterNpcRequest) -> FsmDefinition:
    which = req.WhichOneof("fsm")
    if which == "fsm_yaml":
        if len(req.fsm_yaml) > MAX_FSM_YAML_CHARS:
            raise InvalidArgument(f"fsm_yaml: at most {MAX_FSM_YAML_CHARS} characters")
        with status.client_input("fsm_yaml"):
            return parse_fsm(req.fsm_yaml, source_name=f"fsm_yaml[{req.npc_id[:MAX_NPC_ID]}]")
    name = req.fsm_name if which == "fsm_name" else req.persona.role
    if name not in BUILTIN_FSMS:
        raise InvalidArgument(f"fsm: give fsm_yaml or fsm_name (built-ins: {', '.join(BUILTIN_FSMS)}), got {name!r}")
    return load_builtin_fsm(name)


def persona_from_pb(p: pb.Persona) -> Persona:
    if not p.name:
        raise InvalidArgument("persona.name is required")
    if len(p.backstory) > MAX_TEXT_CHARS:
        raise InvalidArgument(f"persona.backstory: at most {MAX_TEXT_CHARS} characters")
    return Persona(name=p.name[:64], role=p.role[:64], traits=tuple(t[:32] for t in p.traits[:8]), backstory=p.backstory)


def memories_from_pb(memories) -> list[tuple[str, float]]:
    if len(memories) > MAX_SEED_MEMORIES:
        raise InvalidArgument(f"memories has {len(memories)} entries; at most {MAX_SEED_MEMORIES}")
    return [(m.text[:MAX_TEXT_CHARS], finite(m.importance, f"memories[{i}].importance", 0.0, 10.0))
            for i, m in enumerate(memories)]


def step_from_pb(req: pb.StepRequest) -> tuple[Percept, list[Event], float]:
    npc_id_field(req.npc_id)
    obs = req.observation
    if len(obs.player_utterance) > MAX_TEXT_CHARS:
        raise InvalidArgument(f"observation.player_utterance: at most {MAX_TEXT_CHARS} characters")
    percept = Percept(game_time_s=finite(obs.game_time_s, "observation.game_time_s", -MAX_GAME_TIME_S, MAX_GAME_TIME_S),
                      values=number_map(obs.values, "observation.values"),
                      tags=string_map(obs.tags, "observation.tags", max_value_chars=MAX_TAG_CHARS),
                      player_utterance=obs.player_utterance)
    events = []
    for i, e in enumerate(req.events):
        if not e.kind:
            raise InvalidArgument(f"events[{i}].kind is required")
        if not 0 <= e.importance <= 10:   # NaN fails this too
            raise InvalidArgument(f"events[{i}].importance must be 0-10 (0 = let the runtime judge), got {e.importance}")
        events.append(Event(kind=e.kind[:64], description=e.description[:MAX_TEXT_CHARS], importance=e.importance,
                            story_critical=e.story_critical,
                            attributes=string_map(e.attributes, f"events[{i}].attributes", max_value_chars=MAX_TAG_CHARS)))
    # the range is the runtime's (its max_deadline_ms); NaN would pass any range check, so it stops here
    deadline_ms = float(req.deadline_ms)
    if not math.isfinite(deadline_ms):
        raise InvalidArgument(f"deadline_ms must be a finite number (got {deadline_ms!r})")
    return percept, events, deadline_ms


def decision_to_pb(d: AgentDecision) -> pb.Decision:
    return pb.Decision(npc_id=d.npc_id, state=d.state, action=d.action, arguments=d.arguments, dialogue=d.dialogue,
                       escalated=d.escalated, reason=d.reason, confidence=d.confidence,
                       source=SOURCE_TO_PB[d.source], allowed_actions=list(d.allowed_actions),
                       latency_ms=d.latency_ms, memories_written=d.memories_written,
                       rejected_action=d.rejected_action, policy_version=d.policy_version)


def action_to_pb(d: AgentDecision, latency_ms: float) -> pb.ActionChosen:
    return pb.ActionChosen(npc_id=d.npc_id, state=d.state, action=d.action, arguments=d.arguments,
                           escalated=d.escalated, source=SOURCE_TO_PB[d.source], confidence=d.confidence,
                           allowed_actions=list(d.allowed_actions), latency_ms=latency_ms)


def memory_to_pb(m: Memory) -> pb.Memory:
    return pb.Memory(text=m.text, importance=m.importance, game_time_s=m.created_s, score=m.score,
                     kind=pb.MemoryKind.Value(f"MEMORY_KIND_{recall_kind(m.kind).upper()}"))


# ---- servicer ---------------------------------------------------------------------------------------
def _unary(method: Callable) -> Callable:
    @functools.wraps(method)
    async def wrapper(self: "AgentServicer", request, context: grpc.aio.ServicerContext):
        try:
            return await method(self, request, context)
        except (asyncio.CancelledError, grpc.aio.AbortError):
            raise
        except Exception as exc:  # noqa: BLE001 - every error becomes a status, the server keeps running
            st = status.status_for(exc, where=f"NpcAgent.{method.__name__}")
            await context.abort(st.grpc_code, st.message)

    return wrapper


def policies_to_pb(runtime: AgentRuntime) -> pb.ListPoliciesResponse:
    """The runtime's policy versions (one snapshot read) and their counters since start."""
    versions = runtime.policies
    default, stats = versions.default.name, dict(runtime.stats.versions)
    out = pb.ListPoliciesResponse(default_version=default, generation=versions.generation, routing=[
        pb.PolicyRoutingRule(version=r.version, match=r.match, fraction=r.fraction) for r in versions.rules])
    for v in versions.all():
        s, lineage = stats.get(v.name), dict(v.lineage or {})
        decisions = s.decisions if s else 0
        out.versions.append(pb.PolicyVersionInfo(
            name=v.name, package=v.package or "", is_default=v.name == default,
            base_version=str(lineage.get("base_version") or ""), generation=int(lineage.get("generation") or 0),
            records=int(lineage.get("records") or 0), decisions=decisions, escalations=s.escalations if s else 0,
            escalation_rate=(s.escalations / decisions) if decisions else 0.0,
            rejected_actions=s.rejected_actions if s else 0, cost_usd=s.cost_usd if s else 0.0))
    return out


class AgentServicer(agent_pb2_grpc.NpcAgentServicer):
    def __init__(self, runtime: AgentRuntime, *, workers: int = 16, reload: Callable[[], str] | None = None,
                 engine: Any = None):
        """`reload`: re-read the configuration and swap the policy versions in (`System.reload_from_config`,
        what SIGHUP runs); returns the line saying what is served. None: ReloadPolicies is refused."""
        self.runtime = runtime
        self._reload = reload
        self._engine = engine            # the EngineFacade (save-games include the NPC's conversation)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="npcrt-agent")

    async def _run(self, fn, *args, **kwargs):
        return await asyncio.get_running_loop().run_in_executor(self._pool, functools.partial(fn, *args, **kwargs))

    def _register(self, req: pb.RegisterNpcRequest) -> pb.RegisterNpcResponse:
        persona = persona_from_pb(req.persona)
        fsm = fsm_from_request(req)
        brain = self.runtime.register(npc_id_field(req.npc_id), persona, fsm, replace=req.replace,
                                      memories=memories_from_pb(req.memories))
        return pb.RegisterNpcResponse(npc_id=req.npc_id, state=brain.fsm.state,
                                      allowed_actions=list(brain.fsm.spec.allowed))

    def _step(self, req: pb.StepRequest) -> pb.Decision:
        return self._step_parsed(req.npc_id, step_from_pb(req))

    def _step_parsed(self, npc_id: str, parsed: tuple[Percept, list[Event], float]) -> pb.Decision:
        percept, events, deadline_ms = parsed
        return decision_to_pb(self.runtime.step(npc_id, percept, events, deadline_ms=deadline_ms))

    def _quiet_batch(self, steps: Sequence[tuple[str, Percept, float]]) -> list[object]:
        """steps: (npc_id, percept, deadline_ms) of quiet steps, already translated."""
        out: list[object] = [None] * len(steps)
        items, where = [], []
        limit = self.runtime.config.max_deadline_ms
        for k, (npc_id, percept, deadline_ms) in enumerate(steps):
            if not 0 <= deadline_ms <= limit:
                out[k] = InvalidArgument(f"deadline_ms must be 0-{limit:.0f}, got {deadline_ms}")
                continue
            items.append((npc_id, percept))
            where.append(k)
        for k, r in zip(where, self.runtime.step_quiet_batch(items)):
            out[k] = r if isinstance(r, Exception) else decision_to_pb(r)
        return out

    @_unary
    async def RegisterNpc(self, request, context):
        return await self._run(self._register, request)

    @_unary
    async def UnregisterNpc(self, request, context):
        await self._run(self.runtime.unregister, npc_id_field(request.npc_id), forget=request.forget)
        return pb.UnregisterNpcResponse()

    @_unary
    async def Step(self, request, context):
        return await self._run(self._step, request)

    async def StepStream(self, request, context):
        loop = asyncio.get_running_loop()
        started = time.monotonic()
        chunks: asyncio.Queue = asyncio.Queue()
        cancelled = threading.Event()

        def put(chunk: pb.StepChunk) -> None:   # called on the step's worker thread
            loop.call_soon_threadsafe(chunks.put_nowait, chunk)

        def since_start() -> float:
            return (time.monotonic() - started) * 1000.0

        def work() -> pb.Decision:
            percept, events, deadline_ms = step_from_pb(request)
            decision = self.runtime.step_stream(
                request.npc_id, percept, events, deadline_ms=deadline_ms, cancelled=cancelled,
                on_action=lambda d: put(pb.StepChunk(action=action_to_pb(d, since_start()))),
                on_delta=lambda text, end: put(pb.StepChunk(dialogue=pb.DialogueDelta(
                    text=text, sentence_end=end, latency_ms=since_start()))))
            return decision_to_pb(decision)

        future = loop.run_in_executor(self._pool, work)
        # the future settles after every chunk the worker queued (both go through call_soon_threadsafe, FIFO)
        future.add_done_callback(lambda _: chunks.put_nowait(None))
        try:
            while (chunk := await chunks.get()) is not None:
                yield chunk
            try:
                decision = future.result()
            except Exception as exc:  # noqa: BLE001 - bad input / unknown NPC come before any chunk
                st = status.status_for(exc, where="NpcAgent.StepStream")
                await context.abort(st.grpc_code, st.message)
            yield pb.StepChunk(done=decision)
        finally:
            cancelled.set()   # a no-op once the step is done; otherwise the client went away: stop decoding

    @_unary
    async def RecallMemories(self, request, context):
        if len(request.query) > MAX_TEXT_CHARS:
            raise InvalidArgument(f"query: at most {MAX_TEXT_CHARS} characters")
        memories = await self._run(self.runtime.recall, npc_id_field(request.npc_id), request.query,
                                   limit=request.limit or DEFAULT_RECALL)
        return pb.RecallMemoriesResponse(memories=[memory_to_pb(m) for m in memories])

    async def Play(self, request_iterator, context):
        async for update in request_iterator:
            yield await self._play_one(update)

    async def _play_one(self, update: pb.PlayRequest) -> pb.PlayResponse:
        out = pb.PlayResponse(seq=update.seq)
        for reg in update.register:
            try:
                await self._run(self._register, reg)
            except Exception as exc:  # noqa: BLE001 - per-NPC failure, the stream goes on
                out.errors.append(self._error(reg.npc_id, exc, "Play.register"))
        steps: Sequence[pb.StepRequest] = update.steps
        if len(steps) > MAX_STEPS_PER_PLAY:
            out.errors.append(self._error("", InvalidArgument(f"at most {MAX_STEPS_PER_PLAY} steps per update"), "Play"))
            return out
        # each step is translated once; quiet ones (the agent's rule: no words, no events) of all NPCs share
        # one policy-model call, the others run concurrently
        results: list[object] = [None] * len(steps)
        quiet_idx, quiet, other_idx, jobs = [], [], [], []
        for i, s in enumerate(steps):
            try:
                parsed = step_from_pb(s)
            except InvalidArgument as exc:
                results[i] = exc
                continue
            percept, events, deadline_ms = parsed
            if AgentRuntime.is_quiet(percept, events):
                quiet_idx.append(i)
                quiet.append((s.npc_id, percept, deadline_ms))
            else:
                other_idx.append(i)
                jobs.append(self._run(self._step_parsed, s.npc_id, parsed))
        if quiet_idx:
            jobs.append(self._run(self._quiet_batch, quiet))
        done = await asyncio.gather(*jobs, return_exceptions=True)
        for i, result in zip(other_idx, done):
            results[i] = result
        if quiet_idx:
            batch = done[-1]
            for k, i in enumerate(quiet_idx):
                results[i] = batch if isinstance(batch, BaseException) else batch[k]
        for s, result in zip(steps, results):
            if isinstance(result, BaseException):
                out.errors.append(self._error(s.npc_id, result, "Play.step"))
            else:
                out.decisions.append(result)
        return out

    @staticmethod
    def _error(npc_id: str, exc: BaseException, where: str) -> pb.NpcError:
        st = status.status_for(exc, where=where)
        return pb.NpcError(npc_id=npc_id, code=status.grpc_code_number(st.grpc_code), message=st.message)

    @_unary
    async def ListPolicies(self, request, context):
        return policies_to_pb(self.runtime)

    @_unary
    async def ReloadPolicies(self, request, context):
        if self._reload is None:
            raise FailedPrecondition("this server was not started from a configuration it can re-read; "
                                     "ReloadPolicies needs `npcrt serve`")
        try:   # loading packages reads files and builds ONNX sessions: off the event loop
            line = await self._run(self._reload)
        except NpcRuntimeError as exc:
            raise FailedPrecondition(f"reload refused, the running policy versions stay: {exc}") from exc
        return pb.ReloadPoliciesResponse(policies=policies_to_pb(self.runtime), summary=line)

    @_unary
    async def SaveNpc(self, request, context):
        npc_id = npc_id_field(request.npc_id)
        conversation = b""
        if request.session_id:
            if self._engine is None:
                raise FailedPrecondition("this server has no engine to snapshot the conversation from")
            conversation = await self._engine.save_session(request.session_id, include_kv=request.include_kv)
        state = await self._run(self.runtime.save_npc, npc_id)
        data = await self._run(save_game.encode, state, conversation)
        return pb.NpcSave(data=data, npc_id=npc_id, memories=len(state.memories),
                          conversation_tokens=len(snapshot_header(conversation)["tokens"]) if conversation else 0)

    @_unary
    async def RestoreNpc(self, request, context):
        state, conversation = await self._run(save_game.decode, request.data)
        npc_id = npc_id_field(request.npc_id) if request.npc_id else npc_id_field(state.npc_id)
        session_id = ""
        if conversation:   # first: a conversation this server cannot take refuses the whole load
            if self._engine is None:
                raise FailedPrecondition("this server has no engine to restore the conversation into")
            session_id = (await self._engine.restore_session(conversation, session_id=uuid.uuid4().hex)).session_id
        try:
            brain = await self._run(self.runtime.load_npc, state, npc_id=npc_id, replace=request.replace)
        except BaseException:
            if session_id:
                await self._engine.close(session_id)
            raise
        return pb.RestoreNpcResponse(npc_id=npc_id, state=brain.fsm.state, memories=len(state.memories),
                                     session_id=session_id)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def agent_hook(runtime: AgentRuntime, *, workers: int = 16,
               reload: Callable[[], str] | None = None) -> Callable[[grpc.aio.Server, Any], Sequence[str]]:
    """An `extra_servicers` entry for `serving.server.create_server`."""

    def add(server: grpc.aio.Server, engine: Any) -> Sequence[str]:
        agent_pb2_grpc.add_NpcAgentServicer_to_server(
            AgentServicer(runtime, workers=workers, reload=reload, engine=engine), server)
        return [SERVICE_NAME]

    return add
