"""Lame-duck drain: calls that arrive while the server stops are refused UNAVAILABLE, by the server itself.

`grpc.aio.Server.stop(grace)` lets in-flight calls finish and refuses new ones, but a call that reaches the
transport at the moment the stop begins, before a handler took it, is cancelled: the client sees CANCELLED,
which reads as "you cancelled" rather than "try another replica" (seen in the SIGTERM-under-load test, on
the code before this module as well). So `NpcServer.stop` first turns the health status to NOT_SERVING and
sets `draining`: for `LAME_DUCK_S` every new call is answered UNAVAILABLE by this interceptor (health and
reflection still answer, so probes see NOT_SERVING), and only then is the gRPC server stopped. Calls in
flight are untouched and finish within the grace period as before.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import grpc

from npc_runtime.serving.handlers import handler_like

LAME_DUCK_S = 0.25                    # between NOT_SERVING + refusing new calls, and the gRPC server's stop
MESSAGE = "the server is shutting down; retry on another replica (or after it restarts)"
_EXEMPT = ("/grpc.health.v1.Health/", "/grpc.reflection.")


async def _refuse(request, context: grpc.aio.ServicerContext):
    await context.abort(grpc.StatusCode.UNAVAILABLE, MESSAGE)


async def _refuse_stream(request, context: grpc.aio.ServicerContext):
    await context.abort(grpc.StatusCode.UNAVAILABLE, MESSAGE)
    yield   # never reached: makes this an async generator, the shape of a response-streaming method


class DrainInterceptor(grpc.aio.ServerInterceptor):
    """While `draining`, every method but health and reflection answers UNAVAILABLE without running."""

    def __init__(self) -> None:
        self.draining = False
        self._refusals: dict[str, grpc.RpcMethodHandler] = {}   # method -> a refusing handler of its shape

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if not self.draining or handler is None or details.method.startswith(_EXEMPT):
            return handler
        refusal = self._refusals.get(details.method)
        if refusal is None:
            behavior = _refuse_stream if handler.response_streaming else _refuse
            refusal = self._refusals[details.method] = handler_like(handler, behavior)
        return refusal
