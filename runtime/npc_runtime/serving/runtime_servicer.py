"""The `NpcRuntime` gRPC servicer (grpc.aio) over the engine facade (`sessions.EngineFacade`).

Translation only: requests go through `translate` (mapping, no checks: the engine validates each request
once), errors through `status`, metrics are counted here. Each RPC is one engine-thread submission.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Sequence

import grpc

import npc_runtime
from npc_proto.v1 import runtime_pb2 as pb
from npc_proto.v1 import runtime_pb2_grpc
from npc_runtime.errors import DeadlineExceeded, InvalidArgument
from npc_runtime.serving import status, translate
from npc_runtime.serving.config import ServerConfig
from npc_runtime.serving.metrics import ServingMetrics
from npc_runtime.sessions.facade import EngineFacade
from npc_runtime.sessions.snapshot import peek as snapshot_header

log = logging.getLogger("npc_runtime.serving.grpc")

PROTOCOL_VERSION = "1"
BASE_CAPABILITIES = ("tick", "generate", "cancel", "prefix-cache", "constraints.actions",
                     "constraints.json-schema", "chat-template")
# a Tick stops this long before the call's deadline, to leave time for the reply, milliseconds
DEADLINE_MARGIN_MS = 2.0
# what a Tick's reply costs after the servicer returns it (encoding, gRPC's send on loopback), seconds; the
# budget ends this much earlier, on top of the measured reply cost inside the server (`_ReplyCost`)
SEND_RESERVE_S = 0.00015


class _ReplyCost:
    """Running estimate of a Tick's cost from the engine's result to the servicer's return (translation,
    metrics), high side: mean + 2 mean deviations, so one slow reply moves it little and most fit under it."""

    def __init__(self, weight: float = 0.1) -> None:
        self.weight = weight
        self.mean = 0.0
        self.dev = 0.0

    def add(self, seconds: float) -> None:
        delta = seconds - self.mean
        self.mean += self.weight * delta
        self.dev += self.weight * (abs(delta) - self.dev)

    @property
    def reserve_s(self) -> float:
        return self.mean + 2.0 * self.dev + SEND_RESERVE_S


def unary(method: Callable) -> Callable:
    """Maps exceptions to a status (the one table in `status`), times the call, counts errors."""
    name = method.__name__

    @functools.wraps(method)
    async def wrapper(self: "RuntimeServicer", request, context: grpc.aio.ServicerContext):
        started = time.perf_counter()
        try:
            return await method(self, request, context)
        except (asyncio.CancelledError, grpc.aio.AbortError):
            raise
        except Exception as exc:  # noqa: BLE001 - every error becomes a status, the server keeps running
            st = status.status_for(exc, where=name)
            self.metrics.errors.labels(name, st.grpc_code.name).inc()
            log.info("rpc error", extra={"fields": {"method": name, "code": st.grpc_code.name,
                                                     "error": st.message[:500], "peer": context.peer()}})
            await context.abort(st.grpc_code, st.message)
        finally:
            self.metrics.rpc_latency.labels(name).observe(time.perf_counter() - started)

    return wrapper


class RuntimeServicer(runtime_pb2_grpc.NpcRuntimeServicer):
    def __init__(self, engine: EngineFacade, *, config: ServerConfig, metrics: ServingMetrics,
                 capabilities: Sequence[str] = ()) -> None:
        self.engine = engine
        self.config = config
        self.metrics = metrics
        extra = ("sliding-window",) if engine.sliding_window else ()
        self.capabilities = tuple(dict.fromkeys((*BASE_CAPABILITIES, *extra, *capabilities)))
        self._reply_cost = _ReplyCost()
        # metric children looked up once (a labels() call per token or per Tick is measurable)
        self._grpc_tokens = metrics.tokens.labels("grpc")

    # ---------------------------------------------------------------------------------- unary RPCs

    @unary
    async def Handshake(self, request: pb.HandshakeRequest, context) -> pb.HandshakeResponse:
        version = request.protocol_version or PROTOCOL_VERSION
        if version.split(".")[0] != PROTOCOL_VERSION:
            raise InvalidArgument(f"protocol_version {version!r} is not supported; this server speaks "
                                  f"{PROTOCOL_VERSION!r}")
        log.info("handshake", extra={"fields": {"client": request.client_name[:200], "peer": context.peer()}})
        return pb.HandshakeResponse(protocol_version=PROTOCOL_VERSION, server_version=npc_runtime.__version__,
                                    capabilities=list(self.capabilities),
                                    max_tick_entries=self.config.max_tick_entries,
                                    max_sessions=int(self.engine.max_sessions))

    @unary
    async def ListModels(self, request: pb.ListModelsRequest, context) -> pb.ListModelsResponse:
        models = await self.engine.list_models()
        return pb.ListModelsResponse(models=[translate.model_info_to_proto(m) for m in models])

    @unary
    async def OpenSession(self, request: pb.OpenSessionRequest, context) -> pb.OpenSessionResponse:
        opened = await self.engine.open(translate.open_request(request))
        return pb.OpenSessionResponse(session_id=opened.session_id, prompt_tokens=opened.prompt_tokens,
                                      cached_prefix_tokens=opened.cached_prefix_tokens)

    @unary
    async def Tick(self, request: pb.TickRequest, context) -> pb.TickResponse:
        """The budget counts from here (time queued for the engine thread counts), and ends early enough for
        the reply to reach the client within it (`_ReplyCost`, the facade's measured hop back)."""
        started = time.perf_counter()
        deadline = self._tick_deadline(context)
        outcomes = await self.engine.tick([translate.tick_request(e) for e in request.entries], deadline=deadline,
                                          received=started, reply_s=self._reply_cost.reserve_s)
        resumed = time.perf_counter()
        response = pb.TickResponse()
        add = response.results.add
        tokens, batch = 0, 0
        for outcome in outcomes:
            if outcome.error is not None:   # a bad entry failed alone
                self._fill_error(add(), outcome.session_id, outcome.error)
                continue
            translate.fill_tick_result(add(), outcome)
            tokens += len(outcome.token_ids)
            batch = max(batch, outcome.stats.max_batch)
        self._grpc_tokens.inc(tokens)
        if batch:
            self.metrics.batch_size.observe(batch)
        done = time.perf_counter()
        self._reply_cost.add(done - resumed)
        elapsed = done - started
        self.metrics.tick_latency.observe(elapsed)
        response.tick_ms = elapsed * 1000.0
        return response

    @unary
    async def Cancel(self, request: pb.CancelRequest, context) -> pb.CancelResponse:
        return pb.CancelResponse(was_running=await self.engine.cancel(request.session_id))

    @unary
    async def CloseSession(self, request: pb.CloseSessionRequest, context) -> pb.CloseSessionResponse:
        return pb.CloseSessionResponse(context_tokens=await self.engine.close(request.session_id))

    @unary
    async def SaveSession(self, request: pb.SaveSessionRequest, context) -> pb.SessionSnapshot:
        data = await self.engine.save_session(request.session_id, include_kv=request.include_kv)
        header = snapshot_header(data)
        return pb.SessionSnapshot(data=data, session_id=header["session_id"], model=header["model"],
                                  context_tokens=len(header["tokens"]))

    @unary
    async def RestoreSession(self, request: pb.RestoreSessionRequest, context) -> pb.OpenSessionResponse:
        opened = await self.engine.restore_session(request.snapshot.data, session_id=request.session_id or None)
        return pb.OpenSessionResponse(session_id=opened.session_id, prompt_tokens=opened.prompt_tokens,
                                      cached_prefix_tokens=opened.cached_prefix_tokens)

    # ------------------------------------------------------------------------------- server stream

    async def Generate(self, request: pb.GenerateRequest, context: grpc.aio.ServicerContext) -> None:
        """Streams chunks with `context.write`. A client that goes away (or a deadline) cancels this coroutine
        wherever it waits, engine or network, and `finally` closes the engine's stream, which cancels the
        turn and frees its place in the batch. (An async-generator handler could be left suspended at a
        `yield` when the cancellation lands in gRPC's send, keeping the turn alive until garbage
        collection.)"""
        chunks = None
        try:
            chunks = await self.engine.generate(translate.generate_request(request))
            # one message per wake-up: a chunk holds every token that arrived while the last write was sent
            async for chunk in chunks:
                self._grpc_tokens.inc(len(chunk.token_ids))
                await context.write(translate.chunk_to_proto(chunk))
        except (asyncio.CancelledError, grpc.aio.AbortError):
            raise
        except Exception as exc:  # noqa: BLE001 - every error becomes a status
            st = status.status_for(exc, where="Generate")
            self.metrics.errors.labels("Generate", st.grpc_code.name).inc()
            log.info("rpc error", extra={"fields": {"method": "Generate", "code": st.grpc_code.name,
                                                     "error": st.message[:500], "peer": context.peer()}})
            await context.abort(st.grpc_code, st.message)
        finally:
            if chunks is not None:
                await chunks.aclose()   # returns at once; a stream that ended is left alone

    # ------------------------------------------------------------------------------------- helpers

    def _tick_deadline(self, context: grpc.aio.ServicerContext) -> float | None:
        """The `time.perf_counter()` by which the engine must be done (None: no deadline). The engine thread
        caps the budget with it when the tick starts, so time spent queued behind other work counts."""
        remaining = context.time_remaining()
        if remaining is None:
            return None
        if remaining * 1000.0 <= DEADLINE_MARGIN_MS:
            raise DeadlineExceeded("the call's deadline leaves no time for a Tick; give it a longer deadline")
        return time.perf_counter() + remaining - DEADLINE_MARGIN_MS / 1000.0

    def _fill_error(self, message: pb.TickResult, session_id: str, exc: BaseException) -> None:
        st = status.status_for(exc, where="Tick entry")
        self.metrics.errors.labels("Tick", st.grpc_code.name).inc()
        message.session_id = session_id
        message.finished = True
        message.finish_reason = pb.FINISH_REASON_ERROR
        message.error = st.message
        message.error_code = status.grpc_code_number(st.grpc_code)
