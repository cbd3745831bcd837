"""Bearer-token auth: a grpc.aio interceptor and the matching HTTP check.

Clients send `authorization: Bearer <token>` (gRPC metadata or HTTP header). The health service stays
open so that load balancers and orchestrators can probe without the token.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Iterable

import grpc

from npc_runtime.serving.handlers import handler_like

EXEMPT_SERVICES = ("/grpc.health.v1.Health/",)
_MISSING = "missing bearer token: send metadata 'authorization: Bearer <token>'"
_WRONG = "wrong bearer token"


def check_bearer(header: str | None, token: str) -> str | None:
    """None when `header` carries `token`; otherwise the error message."""
    if not header:
        return _MISSING
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return _MISSING
    if not hmac.compare_digest(value.strip().encode(), token.encode()):
        return _WRONG
    return None


def _unparsed(_data: bytes) -> None:
    return None


def _rejecting_handler(handler: grpc.RpcMethodHandler, message: str) -> grpc.RpcMethodHandler:
    """A handler of the same shape as `handler` that fails with UNAUTHENTICATED."""

    async def reject_unary(request_or_iterator, context: grpc.aio.ServicerContext):
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

    async def reject_stream(request_or_iterator, context: grpc.aio.ServicerContext):
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)
        yield  # pragma: no cover - makes this an async generator

    # the request's bytes are dropped unparsed: an unauthenticated client costs no protobuf parsing (its size
    # is already bounded by grpc_max_receive_bytes)
    return handler_like(handler, reject_stream if handler.response_streaming else reject_unary,
                        request_deserializer=_unparsed)


class BearerTokenInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, token: str, *, exempt: Iterable[str] = EXEMPT_SERVICES) -> None:
        self._token = token
        self._exempt = tuple(exempt)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None or details.method.startswith(self._exempt):
            return handler
        header = next((v for k, v in (details.invocation_metadata or ()) if k == "authorization"), None)
        if isinstance(header, bytes):
            header = header.decode("latin-1")
        problem = check_bearer(header, self._token)
        return handler if problem is None else _rejecting_handler(handler, problem)
