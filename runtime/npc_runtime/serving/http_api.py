"""OpenAI-compatible HTTP API over the same engine (FastAPI, served by uvicorn in the server's loop).

    GET  /v1/models              the models, OpenAI "list" format
    POST /v1/chat/completions    chat completion, streaming (SSE, `data: {chunk}` ... `data: [DONE]`) or not
    GET  /healthz                200 {"status": "serving"} / 503 while shutting down
    GET  /metrics                Prometheus text format

Each chat completion opens a session, renders the messages with the model's chat template (from its
package), generates, and closes the session, also when the client goes away mid-stream.
Errors use OpenAI's shape: {"error": {"message", "type", "param", "code"}} with the HTTP status of
`status.status_for`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Literal

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from npc_proto.v1 import runtime_pb2 as pb
from npc_runtime.errors import InvalidArgument, NpcRuntimeError, Unauthenticated
from npc_runtime.serving import status, translate
from npc_runtime.serving.auth import check_bearer
from npc_runtime.serving.config import ServerConfig
from npc_runtime.serving.metrics import CONTENT_TYPE, ServingMetrics

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
    messages: list[ChatMessage] = Field(min_length=1)
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = Field(default=None, ge=1, le=translate.MAX_TOKENS_PER_REQUEST)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=translate.MAX_TOKENS_PER_REQUEST)
    stop: str | list[str] | None = None
    seed: int | None = Field(default=None, ge=0, lt=1 << 64)
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int = Field(default=1, ge=1, le=1)
    user: str | None = None


def _sampling(body: ChatCompletionRequest, config: ServerConfig) -> Any:
    stop = [body.stop] if isinstance(body.stop, str) else list(body.stop or [])
    message = pb.SamplingParams(
        temperature=1.0 if body.temperature is None else body.temperature,  # OpenAI's default is 1
        top_p=1.0 if body.top_p is None else body.top_p,
        seed=body.seed or 0, stop=stop)
    return translate.sampling_from_proto(message, config, field="")


# ------------------------------------------------------------------------------------------ errors

def _error_response(http_status: int, message: str, err_type: str, code: str | None = None,
                    param: str | None = None) -> JSONResponse:
    return JSONResponse(status_code=http_status,
                        content={"error": {"message": message, "type": err_type, "param": param, "code": code}})


def _from_exception(exc: BaseException, metrics: ServingMetrics, where: str) -> JSONResponse:
    st = status.status_for(exc, where=where)
    metrics.errors.labels(where, st.grpc_code.name).inc()
    return _error_response(st.http_status, st.message, st.http_type, st.grpc_code.name.lower())


def _sse(payload: dict | str) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    return f"data: {data}\n\n".encode()


# --------------------------------------------------------------------------------------------- app

def create_http_app(engine: Any, *, config: ServerConfig, metrics: ServingMetrics,
                    is_serving: Callable[[], bool] = lambda: True) -> FastAPI:
    app = FastAPI(title="npc-runtime", docs_url=None, redoc_url=None, openapi_url=None)

    async def require_token(request: Request) -> None:
        if config.token:
            problem = check_bearer(request.headers.get("authorization"), config.token)
            if problem is not None:
                raise Unauthenticated(problem.replace("metadata", "header"))

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

    @app.get("/v1/models", dependencies=[Depends(require_token)])
    async def list_models():
        models = await engine.list_models()
        return {"object": "list", "data": [
            {"id": m.name, "object": "model", "created": 0, "owned_by": "npc-runtime",
             "context_length": m.context_length, "precision": m.precision, "kind": m.kind}
            for m in models]}

    @app.post("/v1/chat/completions", dependencies=[Depends(require_token)])
    async def chat_completions(body: ChatCompletionRequest):
        started = time.perf_counter()
        sampling = _sampling(body, config)
        max_tokens = body.max_completion_tokens or body.max_tokens or 0
        messages = [{"role": "system" if m.role == "developer" else m.role,
                     "content": translate.check_text(m.text(), f"messages[{i}].content", config)}
                    for i, m in enumerate(body.messages)]
        limits = translate.limits_from_proto(pb.SessionLimits(max_new_tokens=max_tokens))
        opened = await engine.open_chat(body.model, messages=messages, npc_id=body.user or "",
                                        sampling=sampling, limits=limits)
        completion_id = f"chatcmpl-{uuid.uuid4().hex}"
        created = int(time.time())
        model_name = opened.model
        if body.stream:
            include_usage = bool(body.stream_options and body.stream_options.include_usage)
            return _SessionStream(
                _stream(engine, metrics, opened, completion_id, created, model_name, max_tokens, include_usage),
                on_close=functools.partial(_close_session, engine, opened.session_id),
                media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        try:
            text_parts: list[str] = []
            n_tokens = 0
            finish = pb.FINISH_REASON_UNSPECIFIED
            async for chunk in engine.generate(opened.session_id, None, max_tokens=max_tokens):
                text_parts.append(chunk.text_delta or "")
                n_tokens += len(chunk.token_ids)
                if chunk.finished:
                    finish = translate.finish_reason_to_proto(chunk.finish_reason)
        finally:
            await _close_session(engine, opened.session_id)
        metrics.tokens.labels("http").inc(n_tokens)
        metrics.rpc_latency.labels("chat.completions").observe(time.perf_counter() - started)
        return {
            "id": completion_id, "object": "chat.completion", "created": created, "model": model_name,
            "system_fingerprint": None,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "".join(text_parts)},
                         "logprobs": None,
                         "finish_reason": translate.OPENAI_FINISH_REASONS.get(finish) or "stop"}],
            "usage": {"prompt_tokens": opened.prompt_tokens, "completion_tokens": n_tokens,
                      "total_tokens": opened.prompt_tokens + n_tokens},
        }

    return app


async def _stream(engine: Any, metrics: ServingMetrics, opened: Any, completion_id: str, created: int,
                  model_name: str, max_tokens: int, include_usage: bool) -> AsyncIterator[bytes]:
    """SSE chunks in OpenAI's format. Starlette cancels this generator when the client disconnects; the
    `finally` then closes the session, which frees its work."""
    base = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model_name,
            "system_fingerprint": None}

    def chunk(delta: dict, finish_reason: str | None = None) -> bytes:
        return _sse({**base, "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                          "finish_reason": finish_reason}]})

    n_tokens = 0
    try:
        yield chunk({"role": "assistant", "content": ""})
        finish_reason = "stop"
        async for piece in engine.generate(opened.session_id, None, max_tokens=max_tokens):
            n_tokens += len(piece.token_ids)
            metrics.tokens.labels("http").inc(len(piece.token_ids))
            if piece.text_delta:
                yield chunk({"content": piece.text_delta})
            if piece.finished:
                reason = translate.finish_reason_to_proto(piece.finish_reason)
                finish_reason = translate.OPENAI_FINISH_REASONS.get(reason) or "stop"
        yield chunk({}, finish_reason)
        if include_usage:
            yield _sse({**base, "choices": [], "usage": {
                "prompt_tokens": opened.prompt_tokens, "completion_tokens": n_tokens,
                "total_tokens": opened.prompt_tokens + n_tokens}})
        yield _sse("[DONE]")
    except (asyncio.CancelledError, GeneratorExit):
        raise
    except Exception as exc:  # noqa: BLE001 - headers are sent: report the error in-band, OpenAI style
        st = status.status_for(exc, where="chat.completions stream")
        metrics.errors.labels("http", st.grpc_code.name).inc()
        yield _sse({"error": {"message": st.message, "type": st.http_type, "param": None,
                              "code": st.grpc_code.name.lower()}})
    finally:
        await _close_session(engine, opened.session_id)


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


async def _close_session(engine: Any, session_id: str) -> None:
    try:
        await asyncio.shield(engine.close_session(session_id))
    except (NpcRuntimeError, asyncio.CancelledError):
        pass
    except Exception:  # noqa: BLE001 - cleanup must not mask the response
        log.warning("closing chat session %s failed", session_id, exc_info=True)
