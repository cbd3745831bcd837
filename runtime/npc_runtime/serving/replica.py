"""Which replica answered: `npcrt-replica` on every gRPC response (initial metadata) and HTTP response (header).

A fleet runs several `npcrt serve` replicas behind a proxy that routes by a consistent hash of the client's
`x-npc-id` (deploy/, docs/deploy.md). The name tells a client, a log line or a test where a call went, and
shows an NPC moving to another replica when its replica is lost. Default name: the host name (a container's
or pod's name); `--replica NAME` for several replicas on one host.
"""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable

import grpc

from npc_runtime.serving.handlers import behavior_of, handler_like

REPLICA_HEADER = "npcrt-replica"
ROUTING_KEY_HEADER = "x-npc-id"   # what clients send and proxies hash on; the server only passes it through


def default_replica_name() -> str:
    return socket.gethostname() or "npcrt"


def _wrap(handler: grpc.RpcMethodHandler, metadata: tuple[tuple[str, str], ...]) -> grpc.RpcMethodHandler:
    """The same handler, sending `metadata` as initial metadata before its first response."""
    behavior = behavior_of(handler)

    if handler.response_streaming:
        async def streaming(request, context: grpc.aio.ServicerContext):
            await context.send_initial_metadata(metadata)
            result = behavior(request, context)
            if hasattr(result, "__aiter__"):
                async for item in result:
                    yield item
            else:                                   # a handler that writes with context.write
                await result
        new_behavior = streaming
    else:
        async def unary(request, context: grpc.aio.ServicerContext):
            await context.send_initial_metadata(metadata)
            return await behavior(request, context)
        new_behavior = unary

    return handler_like(handler, new_behavior)


class ReplicaInterceptor(grpc.aio.ServerInterceptor):
    """Adds `npcrt-replica: <name>` to the initial metadata of every call (health and reflection included).
    Wrapped handlers are cached per method, so a call pays one coroutine hop, not a handler rebuild."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._metadata = ((REPLICA_HEADER, name),)
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}   # method -> (seen, wrapped)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None:
            return handler
        cached = self._wrapped.get(details.method)
        if cached is None or cached[0] is not handler:
            cached = (handler, _wrap(handler, self._metadata))
            self._wrapped[details.method] = cached
        return cached[1]


class ReplicaHeaderMiddleware:
    """ASGI middleware: `npcrt-replica: <name>` on every HTTP response (streams included)."""

    def __init__(self, app, *, name: str) -> None:
        self.app = app
        self._header = (REPLICA_HEADER.encode(), name.encode("utf-8", "replace"))

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_header(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), self._header]}
            await send(message)
        return await self.app(scope, receive, send_with_header)
