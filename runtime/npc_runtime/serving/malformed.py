"""Requests whose bytes are not a valid protobuf message answer INVALID_ARGUMENT.

grpc.aio deserializes a request before the servicer runs; when that raises (corrupt bytes, a string field
that is not UTF-8) it logs a traceback and answers UNKNOWN, which a client cannot tell from a server bug.
`MalformedRequestInterceptor` wraps each method's deserializer so that it never raises: it returns a
`_Malformed` marker instead, and the wrapped method answers INVALID_ARGUMENT before the servicer sees it.
Put it after the auth interceptor, so an unauthenticated call is refused as such whatever its body.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable

import grpc
from google.protobuf.message import DecodeError


class _Malformed:
    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


def _safe(deserializer: Callable[[bytes], object] | None) -> Callable[[bytes], object] | None:
    if deserializer is None:
        return None

    def deserialize(data: bytes) -> object:
        try:
            return deserializer(data)
        except (DecodeError, UnicodeError, ValueError) as exc:   # what protobuf raises on bad bytes
            return _Malformed(str(exc)[:200])

    return deserialize


def _message(method: str, bad: _Malformed) -> str:
    return f"the request is not a valid {method.rsplit('/', 1)[-1]} message (corrupt protobuf: {bad.reason})"


async def _checked(requests: AsyncIterator, context: grpc.aio.ServicerContext, method: str) -> AsyncIterator:
    async for request in requests:
        if isinstance(request, _Malformed):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, _message(method, request))
        yield request


def _wrap(handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
    kw = dict(request_deserializer=_safe(handler.request_deserializer),
              response_serializer=handler.response_serializer)
    if handler.request_streaming:
        behavior = handler.stream_stream if handler.response_streaming else handler.stream_unary

        if inspect.isasyncgenfunction(behavior):
            async def stream_in(requests, context):
                async for response in behavior(_checked(requests, context, method), context):
                    yield response
        else:
            async def stream_in(requests, context):
                return await behavior(_checked(requests, context, method), context)

        if handler.response_streaming:
            return grpc.stream_stream_rpc_method_handler(stream_in, **kw)
        return grpc.stream_unary_rpc_method_handler(stream_in, **kw)

    behavior = handler.unary_stream if handler.response_streaming else handler.unary_unary

    if inspect.isasyncgenfunction(behavior):
        async def unary_in(request, context):
            if isinstance(request, _Malformed):
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, _message(method, request))
            async for response in behavior(request, context):
                yield response
    else:
        async def unary_in(request, context):
            if isinstance(request, _Malformed):
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, _message(method, request))
            return await behavior(request, context)

    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(unary_in, **kw)
    return grpc.unary_unary_rpc_method_handler(unary_in, **kw)


class MalformedRequestInterceptor(grpc.aio.ServerInterceptor):
    """Corrupt request bytes -> INVALID_ARGUMENT (not UNKNOWN with a traceback). Wrapped handlers are cached
    per method: the registered handlers never change once the server runs."""

    def __init__(self) -> None:
        self._wrapped: dict[str, grpc.RpcMethodHandler] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        wrapped = self._wrapped.get(details.method)
        if wrapped is None:
            handler = await continuation(details)
            if handler is None:
                return handler
            wrapped = self._wrapped[details.method] = _wrap(handler, details.method)
        return wrapped
