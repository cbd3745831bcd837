"""grpc.aio interceptors swap a method's handler for one of the same shape (unary or streaming on each side,
same (de)serializers) running other code: `handler_like` builds it, `behavior_of` reads the code to wrap."""

from __future__ import annotations

from collections.abc import Callable

import grpc


def behavior_of(handler: grpc.RpcMethodHandler) -> Callable:
    """The function a handler runs, whatever its shape."""
    return handler.unary_unary or handler.unary_stream or handler.stream_unary or handler.stream_stream


def handler_like(handler: grpc.RpcMethodHandler, behavior: Callable, *,
                 request_deserializer: Callable | None = None) -> grpc.RpcMethodHandler:
    """A handler of `handler`'s shape running `behavior` (an async generator when responses stream)."""
    kw = dict(request_deserializer=request_deserializer or handler.request_deserializer,
              response_serializer=handler.response_serializer)
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(behavior, **kw)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(behavior, **kw)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(behavior, **kw)
    return grpc.unary_unary_rpc_method_handler(behavior, **kw)
