"""OpenAI-compatible HTTP API over the same engine (FastAPI, served by uvicorn in the server's loop).

    GET  /v1/models              the models, OpenAI "list" format
    POST /v1/chat/completions    chat completion, streaming (SSE, `data: {chunk}` ... `data: [DONE]`) or not
    GET  /healthz                200 {"status": "serving"} / 503 while shutting down
    GET  /metrics                Prometheus text format

Each chat completion is ONE engine request (`GenerateRequest(open=OpenRequest(messages=...))`): the engine
renders the messages with the model's chat template (from its package), opens a session, generates, and
closes the session when the stream ends, or when the client goes away mid-stream. Fields are mapped onto the
engine's request types and validated by the engine, once, with the same messages as over gRPC.
Errors use OpenAI's shape: {"error": {"message", "type", "param", "code"}} with the HTTP status of
`status.status_for`. Before any route: the token (401 from the headers alone) and the body size (413 while
reading), `serving/http_entry.py`; the body is parsed on the worker pool, off the event loop (docs/limits.md).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from npc_runtime.config import SessionLimits
from npc_runtime.decode.sampling import SamplingParams
from npc_runtime.errors import InvalidArgument, NpcRuntimeError
from npc_runtime.serving import openai_tools, status
from npc_runtime.serving.config import ServerConfig
from npc_runtime.serving.http_entry import EntryLimits, parse_json_body
from npc_runtime.serving.llama_api import llama_router
from npc_runtime.serving.metrics import CONTENT_TYPE, ServingMetrics
from npc_runtime.serving.replica import ReplicaHeaderMiddleware
from npc_runtime.sessions.facade import EngineFacade, GenerateStream
from npc_runtime.sessions.requests import GenerateRequest, OpenRequest
from npc_runtime.sessions.session import FinishReason
from npc_runtime.workers import default_pool

log = logging.getLogger("npc_runtime.serving.http")



# ------------------------------------------------------------------------------------ request models

class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        parts = []
        for part in self.content:
            if part.type != "text":
                raise InvalidArgument(f"messages: content part type {part.type!r} is not supported (text only)")
            parts.append(part.text or "")
        return "".join(parts)


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")
    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="allow")  # unknown OpenAI fields are accepted and ignored
    model: str = ""
    messages: list[ChatMessage]
    temperature: float | None = None
    top_p: float | None = None
    # value ranges are the engine's to check (one validation, the same message as over gRPC)
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int = Field(default=1, ge=1, le=1)
    user: str | None = None
    # vLLM's extension: generate max_tokens even past the end-of-sequence token (benchmarks, load tests)
    ignore_eos: bool = False
    # constrained decoding (serving/openai_tools.py; docs/compat.md)
    tools: list[dict] | None = None
    tool_choice: str | dict | None = None
    parallel_tool_calls: bool | None = None   # accepted; at most one call per reply
    response_format: dict | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None


# OpenAI finish_reason of each engine finish reason
OPENAI_FINISH_REASONS: dict[FinishReason, str] = {
    FinishReason.LENGTH: "length", FinishReason.CONTEXT_FULL: "length", FinishReason.STOP: "stop",
    FinishReason.EOS: "stop", FinishReason.CANCELLED: "stop", FinishReason.EVICTED: "stop", FinishReason.ERROR: "stop",
}


def _open_request(body: ChatCompletionRequest) -> OpenRequest:
    stop = [body.stop] if isinstance(body.stop, str) else list(body.stop or [])
    max_tokens = body.max_completion_tokens if body.max_completion_tokens is not None else body.max_tokens
    return OpenRequest(
        model=body.model, npc_id=body.user or "",
        messages=[{"role": "system" if m.role == "developer" else m.role, "content": m.text()} for m in body.messages],
        sampling=SamplingParams(temperature=1.0 if body.temperature is None else body.temperature,  # OpenAI's default
                                top_p=1.0 if body.top_p is None else body.top_p, seed=body.seed, stop=tuple(stop),
                                ignore_eos=body.ignore_eos),
        limits=None if max_tokens is None else SessionLimits(max_new_tokens=max_tokens))


# ------------------------------------------------------------------------------------------ errors

def _error_response(http_status: int, message: str, err_type: str, code: str | None = None,
                    param: str | None = None) -> JSONResponse:
    return JSONResponse(status_code=http_status,
                        content={"error": {"message": message, "type": err_type, "param": param, "code": code}})


def _from_exception(exc: BaseException, metrics: ServingMetrics, where: str) -> JSONResponse:
    st = status.status_for(exc, where=where)
    metrics.errors.labels(where, st.grpc_code.name).inc()
    return _error_response(st.http_status, st.message, st.http_type, st.grpc_code.name.lower(),
                           getattr(exc, "param", None))


def _sse(payload: dict | str) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    return f"data: {data}\n\n".encode()


# --------------------------------------------------------------------------------------------- app

# FastAPI >= 0.16x instruments every request for OpenTelemetry when the process has global providers, and adds
# OTLP exporters when FASTAPI_OTEL_AUTO_CONFIGURE=true: off here whatever the environment (offline by default;
# the server's own metrics are Prometheus, /metrics). Older FastAPI has no such option.
NO_TELEMETRY = {"tracing": False, "metrics": False, "logs": False, "operation_spans": False, "auto_configure": False}


def _fastapi() -> FastAPI:
    options = dict(title="npc-runtime", docs_url=None, redoc_url=None, openapi_url=None)
    if "telemetry" in inspect.signature(FastAPI.__init__).parameters:
        options["telemetry"] = NO_TELEMETRY
    return FastAPI(**options)


def create_http_app(engine: EngineFacade, *, config: ServerConfig, metrics: ServingMetrics,
                    is_serving: Callable[[], bool] = lambda: True) -> FastAPI:
    app = _fastapi()
    app.add_middleware(EntryLimits, token=config.token, max_bytes=config.max_request_bytes,
                       on_reject=lambda code: metrics.errors.labels(
                           "http", "UNAUTHENTICATED" if code == 401 else
                           "RESOURCE_EXHAUSTED" if code == 413 else "INVALID_ARGUMENT").inc())
    app.add_middleware(ReplicaHeaderMiddleware, name=config.replica_name)   # outermost: on every answer

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        metrics.errors.labels("http", "INVALID_ARGUMENT").inc()
        return _error_response(400, f"{where or 'body'}: {first.get('msg', 'invalid request')}",
                               "invalid_request_error", "invalid_argument", where or None)

    @app.exception_handler(NpcRuntimeError)
    async def runtime_error(request: Request, exc: NpcRuntimeError):
        return _from_exception(exc, metrics, "http")

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, exc: Exception):
        return _from_exception(exc, metrics, "http")

    @app.get("/healthz")
    async def healthz():
        if is_serving():
            return {"status": "serving"}
        return JSONResponse(status_code=503, content={"status": "not_serving"})

    @app.get("/metrics")
    async def prometheus_metrics():
        return Response(content=metrics.render(), media_type=CONTENT_TYPE)

    @app.get("/v1/models")
    async def list_models():
        models = await engine.list_models()
        return {"object": "list", "data": [
            {"id": m.name, "object": "model", "created": 0, "owned_by": "npc-runtime",
             "context_length": m.context_length, "precision": m.precision, "kind": m.kind,
             "batch_invariant": m.batch_invariant}
            for m in models]}

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        started = time.perf_counter()
        # JSON parsing and validation cost grows with the body: on the bounded pool, not the event loop
        body = await (engine.workers or default_pool()).run(parse_json_body, await request.body(),
                                                            ChatCompletionRequest)
        if openai_tools.wants_plan(body):   # tools / response_format / logprobs: constrained decoding
            return await _structured(engine, body, metrics, started)
        # one engine call: validate, render the template, open, start; errors here are a 4xx, before any byte
        stream = await engine.generate(GenerateRequest(open=_open_request(body)))
        completion_id = f"chatcmpl-{uuid.uuid4().hex}"
        created = int(time.time())
        if body.stream:
            include_usage = bool(body.stream_options and body.stream_options.include_usage)
            return _SessionStream(
                _stream(stream, metrics, completion_id, created, include_usage), on_close=stream.aclose,
                media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        text_parts: list[str] = []
        n_tokens = 0
        finish = "stop"
        try:
            async for chunk in stream:
                text_parts.append(chunk.text_delta)
                n_tokens += len(chunk.token_ids)
                if chunk.finished:
                    finish = OPENAI_FINISH_REASONS[chunk.finish_reason]
        finally:
            await stream.aclose()   # the session closes itself when the stream ends; this covers errors
        metrics.tokens.labels("http").inc(n_tokens)
        metrics.rpc_latency.labels("chat.completions").observe(time.perf_counter() - started)
        prompt_tokens = stream.opened.prompt_tokens
        return {
            "id": completion_id, "object": "chat.completion", "created": created, "model": stream.opened.model,
            "system_fingerprint": None,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "".join(text_parts)},
                         "logprobs": None, "finish_reason": finish}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": n_tokens,
                      "total_tokens": prompt_tokens + n_tokens},
        }

    app.include_router(llama_router(engine, config=config, metrics=metrics, is_serving=is_serving))
    app.add_api_route("/v1/npc/actions", openai_tools.npc_actions, methods=["GET"])
    return app


async def _structured(engine: EngineFacade, body: ChatCompletionRequest, metrics: ServingMetrics, started: float):
    plan = await (engine.workers or default_pool()).run(openai_tools.make_plan, body)
    if not body.stream:
        return await openai_tools.complete(engine, body, plan, metrics, started)
    stream, events = await openai_tools.stream_chunks(engine, body, plan, metrics, _sse)
    return _SessionStream(events, on_close=stream.aclose, media_type="text/event-stream",
                          headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


async def _stream(stream: GenerateStream, metrics: ServingMetrics, completion_id: str, created: int,
                  include_usage: bool) -> AsyncIterator[bytes]:
    """SSE chunks in OpenAI's format. Starlette cancels this generator when the client disconnects; the
    stream is then closed (`_SessionStream`), which closes its session. One event per wake-up: a piece holds
    every token that arrived while the last event was sent."""
    base = {"id": completion_id, "object": "chat.completion.chunk", "created": created,
            "model": stream.opened.model, "system_fingerprint": None}

    def chunk(delta: dict, finish_reason: str | None = None) -> bytes:
        return _sse({**base, "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                          "finish_reason": finish_reason}]})

    # a content event is the same bytes as chunk({"content": text}) with only the text encoded per event
    head, tail = chunk({"content": ""}).split(b'""', 1)
    tokens_counter = metrics.tokens.labels("http")
    n_tokens = 0
    prompt_tokens = stream.opened.prompt_tokens
    try:
        yield chunk({"role": "assistant", "content": ""})
        finish_reason = "stop"
        async for piece in stream:
            n_tokens += len(piece.token_ids)
            tokens_counter.inc(len(piece.token_ids))
            if piece.text_delta:
                yield head + json.dumps(piece.text_delta, ensure_ascii=False).encode() + tail
            if piece.finished:
                finish_reason = OPENAI_FINISH_REASONS[piece.finish_reason]
        yield chunk({}, finish_reason)
        if include_usage:
            yield _sse({**base, "choices": [], "usage": {
                "prompt_tokens": prompt_tokens, "completion_tokens": n_tokens,
                "total_tokens": prompt_tokens + n_tokens}})
        yield _sse("[DONE]")
    except (asyncio.CancelledError, GeneratorExit):
        raise
    except Exception as exc:  # noqa: BLE001 - headers are sent: report the error in-band, OpenAI style
        st = status.status_for(exc, where="chat.completions stream")
        metrics.errors.labels("http", st.grpc_code.name).inc()
        yield _sse({"error": {"message": st.message, "type": st.http_type, "param": None,
                              "code": st.grpc_code.name.lower()}})
    finally:
        await stream.aclose()


class _SessionStream(StreamingResponse):
    """A streaming response that always ends its session: when the client goes away, Starlette stops at a
    failed `send` and leaves the body generator suspended (closed only by the garbage collector), so the
    generator's own `finally` is not enough."""

    def __init__(self, content: AsyncIterator[bytes], *, on_close: Callable[[], Awaitable[None]], **kwargs) -> None:
        super().__init__(content, **kwargs)
        self._on_close = on_close

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            closing = asyncio.ensure_future(self._finish())
            await asyncio.shield(closing)

    async def _finish(self) -> None:
        try:
            await self.body_iterator.aclose()
        except Exception:  # noqa: BLE001 - the generator already reported its error in-band
            log.debug("closing a chat stream failed", exc_info=True)
        await self._on_close()
