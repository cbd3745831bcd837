"""The HTTP API's entrance: what is checked before any request reaches a route, and the body parser.

`EntryLimits` (pure ASGI middleware, outermost after Starlette's error guard) answers, in this order:
  1. 401 when a token is configured and the `authorization` header does not carry it, from the headers
     alone: no byte of the body is read, so an unauthenticated client cannot make the server buffer or parse
     anything (a malformed body without a token is a 401 too);
  2. 413 when Content-Length is over `max_bytes`, at once; otherwise the body is counted while it is read
     and a chunked body gets 413 when it crosses the limit (nothing past the limit is buffered);
  3. only then the app sees the request, with its body buffered (at most `max_bytes`).
An early answer closes the connection (`connection: close`): the rest of an unwanted upload is not read.
Closing a socket with unread data sends a TCP reset, which can destroy the answer before the client reads
it; so while a body is still coming the answer is sent whole (Content-Length) and the connection lingers
before it closes (as nginx's lingering close): what arrives meanwhile is dropped, piece by piece (nothing
accumulates), until the client goes away, the body ends, LINGER_BYTES were dropped or LINGER_S passed.

`parse_json_body` turns the bytes into a pydantic model with one 400 naming what is wrong (invalid UTF-8
with its byte offset, malformed JSON with line and column, nesting too deep, the first invalid field);
it is CPU work proportional to the body, so the routes run it on the worker pool, off the event loop.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from npc_runtime.errors import InvalidArgument
from npc_runtime.serving.auth import check_bearer

M = TypeVar("M", bound=BaseModel)

# reachable without the token (probes and scrapers), as the gRPC health service is
PUBLIC_PATHS = frozenset({"/healthz", "/metrics"})
# how long, and for how many dropped bytes at most, a refused connection with a body still coming stays open
# so the client reads the answer before the reset (a client that reads it and closes ends the linger at once)
LINGER_S = 1.0
LINGER_BYTES = 4 << 20

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]


def error_body(message: str, err_type: str, code: str, param: str | None = None) -> bytes:
    """OpenAI's error shape, ASCII-escaped so any text in `message` encodes."""
    return json.dumps({"error": {"message": message, "type": err_type, "param": param, "code": code}}).encode()


class EntryLimits:
    """ASGI middleware: auth from the headers, then the body read under `max_bytes` (see the module doc).
    `on_reject(http_status)` is told of each early answer (for metrics)."""

    def __init__(self, app, *, token: str | None, max_bytes: int,
                 on_reject: Callable[[int], None] = lambda status: None,
                 public_paths: Iterable[str] = PUBLIC_PATHS, linger_s: float = LINGER_S) -> None:
        self.app = app
        self.linger_s = linger_s
        self.token = token
        self.max_bytes = max_bytes
        self.on_reject = on_reject
        self.public_paths = frozenset(public_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.lower(): v for k, v in scope.get("headers", ())}
        # a body may still be on its way (unread) whenever one is announced
        pending = headers.get(b"content-length", b"0").strip() not in (b"0", b"") or b"transfer-encoding" in headers
        if self.token and scope.get("path") not in self.public_paths:
            header = headers.get(b"authorization")
            problem = check_bearer(header.decode("latin-1") if header is not None else None, self.token)
            if problem is not None:
                await self._reject(send, 401, problem.replace("metadata", "header"), "authentication_error",
                                   "unauthenticated", extra=[(b"www-authenticate", b"Bearer")],
                                   linger=receive if pending else None)
                return
        declared = headers.get(b"content-length")
        if declared is not None:
            if not declared.strip().isdigit():
                await self._reject(send, 400, "Content-Length is not a number", "invalid_request_error",
                                   "invalid_argument", param="content-length", linger=receive if pending else None)
                return
            if int(declared) > self.max_bytes:
                await self._too_large(send, f"Content-Length {int(declared)} is over the limit", linger=receive)
                return
        body = await self._read_body(receive, send)
        if body is None:
            return
        await self.app(scope, _replay(body, receive), send)

    async def _read_body(self, receive: Receive, send: Send) -> bytes | None:
        """The whole body, or None when it was refused (413 sent) or the client went away."""
        pieces: list[bytes] = []
        total = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            total += len(chunk)
            if total > self.max_bytes:
                await self._too_large(send, f"the body passed {self.max_bytes} bytes",
                                      linger=receive if message.get("more_body", False) else None)
                return None
            if chunk:
                pieces.append(chunk)
            if not message.get("more_body", False):
                return b"".join(pieces)

    async def _too_large(self, send: Send, what: str, *, linger: Receive | None) -> None:
        await self._reject(send, 413, f"request body too large: {what}; the limit is {self.max_bytes} bytes "
                                      "([server] max_request_bytes)", "invalid_request_error", "resource_exhausted",
                           linger=linger)

    async def _reject(self, send: Send, status: int, message: str, err_type: str, code: str, *,
                      linger: Receive | None, param: str | None = None,
                      extra: list[tuple[bytes, bytes]] = ()) -> None:
        """Answers and closes; `linger`: the request's receive, when a body may still be coming."""
        self.on_reject(status)
        body = error_body(message, err_type, code, param)
        await send({"type": "http.response.start", "status": status, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"), *extra]})
        if linger is not None and self.linger_s > 0:
            # the answer is complete for the client (Content-Length); the server finishes it, and closes,
            # only after the linger
            await send({"type": "http.response.body", "body": body, "more_body": True})
            await self._linger(linger)
            body = b""
        await send({"type": "http.response.body", "body": body})

    async def _linger(self, receive: Receive) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.linger_s
        dropped = 0
        while dropped < LINGER_BYTES:
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - loop.time()))
            except asyncio.TimeoutError:
                return
            if message["type"] == "http.disconnect" or not message.get("more_body", False):
                return
            dropped += len(message.get("body", b""))


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that hands the app the buffered body, then the client's own messages (disconnect)."""
    sent = False

    async def replay() -> dict:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def parse_json_body(body: bytes, model: type[M]) -> M:
    """`body` as `model`, or InvalidArgument naming what to fix (HTTP 400)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidArgument(f"body is not valid UTF-8 (byte {exc.start}: {exc.reason})") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidArgument(f"body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from exc
    except RecursionError as exc:
        raise InvalidArgument("body is nested too deeply") from exc
    if not isinstance(data, dict):
        raise InvalidArgument(f"body must be a JSON object, got {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise invalid_field(exc.errors(include_url=False, include_input=False)) from exc
    except RecursionError as exc:
        raise InvalidArgument("body is nested too deeply") from exc


def invalid_field(problems: list[dict]) -> InvalidArgument:
    """One InvalidArgument for pydantic's first problem, named by its place ("messages.3.content: ...");
    `param` carries the place for the OpenAI error shape."""
    first = problems[0] if problems else {}
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
    error = InvalidArgument(f"{where or 'body'}: {first.get('msg', 'invalid request')}")
    error.param = where or None
    return error
