"""The server process: gRPC (`NpcRuntime`, health, reflection, extra servicers such as `NpcAgent`) and the
HTTP app (OpenAI-compatible API, /metrics, /healthz) on one asyncio loop, over one engine.

    server, port = create_server(engine, config=cfg)     # gRPC only, not started (tests bind port 0)
    app = NpcServer(engine, config=cfg); await app.start(); ...; await app.stop()
    exit_code = await serve(engine, config=cfg)          # until SIGTERM/SIGINT, then a graceful stop
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from npc_proto.v1 import runtime_pb2, runtime_pb2_grpc
from npc_runtime.errors import InvalidArgument
from npc_runtime.serving.auth import BearerTokenInterceptor
from npc_runtime.serving.drain import LAME_DUCK_S, DrainInterceptor
from npc_runtime.serving.malformed import MalformedRequestInterceptor
from npc_runtime.serving.replica import ReplicaInterceptor
from npc_runtime.serving.config import ServerConfig
from npc_runtime.serving.metrics import ServingMetrics
from npc_runtime.serving.runtime_servicer import RuntimeServicer
from npc_runtime.sessions.engine import Engine
from npc_runtime.sessions.facade import EngineFacade
from npc_runtime.sessions.requests import RequestLimits
from npc_runtime.workers import WorkerPool, configure_default_pool

log = logging.getLogger("npc_runtime.serving")

# An extra servicer is registered by a callable that receives the grpc.aio server (and the engine) and
# returns the full service names it added (for reflection and health), e.g.
#   def add_agent(server, engine): agent_pb2_grpc.add_NpcAgentServicer_to_server(..., server); return ["npc.v1.NpcAgent"]
ServicerHook = Callable[[grpc.aio.Server, Any], Sequence[str]]

RUNTIME_SERVICE = runtime_pb2.DESCRIPTOR.services_by_name["NpcRuntime"].full_name


def request_limits(config: ServerConfig) -> RequestLimits:
    """The request size policy of a server configuration (checked by the engine, for gRPC and HTTP alike)."""
    return RequestLimits(max_text_chars=config.max_text_chars, max_budget_ms=config.max_budget_ms,
                         default_budget_ms=config.default_budget_ms, max_stop_sequences=config.max_stop_sequences,
                         max_allowed_sequences=config.max_allowed_sequences,
                         max_tick_entries=config.max_tick_entries, max_messages=config.max_messages,
                         max_prompt_chars=config.max_prompt_chars)


def engine_facade(engine: Engine | EngineFacade, config: ServerConfig) -> EngineFacade:
    """The facade the servicers call: `engine` itself, or a new one owning a bare `Engine`; either way with
    the request limits of `config`."""
    facade = engine if isinstance(engine, EngineFacade) else EngineFacade(engine)
    facade.limits = request_limits(config)
    facade.stream_interval_s = config.stream_interval_ms / 1000.0
    return facade


def _credentials(config: ServerConfig) -> grpc.ServerCredentials | None:
    if config.tls_cert is None:
        return None
    try:
        cert = Path(config.tls_cert).read_bytes()
        key = Path(config.tls_key).read_bytes()
    except OSError as exc:
        raise InvalidArgument(f"TLS: cannot read {exc.filename}: {exc.strerror}") from exc
    return grpc.ssl_server_credentials([(key, cert)])


def create_server(engine: Engine | EngineFacade, *, config: ServerConfig, metrics: ServingMetrics | None = None,
                  health_servicer: health.aio.HealthServicer | None = None,
                  extra_servicers: Sequence[ServicerHook] = (),
                  capabilities: Sequence[str] = (), drain: DrainInterceptor | None = None) -> tuple[grpc.aio.Server, int]:
    """A bound, not yet started grpc.aio server and its port. Call inside the running event loop.
    `engine`: an `EngineFacade`, or an `Engine` (a facade is made to own it). `drain`: set its `draining` to
    refuse new calls UNAVAILABLE before stopping (serving/drain.py; NpcServer.stop does)."""
    engine = engine_facade(engine, config)
    options = [
        # a larger request is refused by gRPC itself (RESOURCE_EXHAUSTED) before it is parsed; the default is
        # sized for the largest legal request (serving/config.py DEFAULT_GRPC_MAX_RECEIVE_BYTES)
        ("grpc.max_receive_message_length", config.grpc_max_receive_bytes),
        ("grpc.max_send_message_length", config.grpc_max_send_bytes),
        ("grpc.so_reuseport", 0),
    ]
    # first: every answer names this replica (npcrt-replica), refusals included
    interceptors: list[grpc.aio.ServerInterceptor] = [ReplicaInterceptor(config.replica_name)]
    if drain is not None:   # then: refusals while the server stops (health and reflection exempt)
        interceptors.append(drain)
    if config.token:
        interceptors.append(BearerTokenInterceptor(config.token))
    interceptors.append(MalformedRequestInterceptor())   # after auth: corrupt bytes -> INVALID_ARGUMENT, not UNKNOWN
    server = grpc.aio.server(interceptors=interceptors, options=options,
                             maximum_concurrent_rpcs=config.max_concurrent_rpcs)
    metrics = metrics or ServingMetrics()
    runtime_pb2_grpc.add_NpcRuntimeServicer_to_server(
        RuntimeServicer(engine, config=config, metrics=metrics, capabilities=capabilities), server)
    services = [RUNTIME_SERVICE]
    for hook in extra_servicers:
        services += list(hook(server, engine) or ())
    health_servicer = health_servicer or health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    services.append(health.SERVICE_NAME)
    reflection.enable_server_reflection([*services, reflection.SERVICE_NAME], server)
    address = f"{config.host}:{config.port}"
    credentials = _credentials(config)
    try:
        port = server.add_secure_port(address, credentials) if credentials else server.add_insecure_port(address)
    except RuntimeError as exc:
        raise InvalidArgument(f"cannot listen on {address} for gRPC (address in use?); choose another --port") from exc
    if port == 0:
        raise InvalidArgument(f"cannot listen on {address} for gRPC (in use?); choose another --port")
    server._npc_services = tuple(services)  # noqa: SLF001 - read by NpcServer to set health
    return server, port


def _bind_http_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise InvalidArgument(f"cannot listen on {host}:{port} for HTTP ({exc.strerror}); "
                              "choose another --http-port (or -1 for none)") from exc
    sock.listen(2048)
    sock.setblocking(False)
    return sock


class NpcServer:
    """gRPC + HTTP over one engine, started and stopped together."""

    def __init__(self, engine: Engine | EngineFacade, *, config: ServerConfig, extra_servicers: Sequence[ServicerHook] = (),
                 capabilities: Sequence[str] = (), workers: WorkerPool | None = None) -> None:
        self.engine = engine_facade(engine, config)
        self.config = config
        # heavy per-request work (chat templates, tokenizing, constraint compiling) runs here, bounded
        self._own_workers = workers is None
        self.workers = workers or WorkerPool(threads=config.worker_threads, queue_limit=config.worker_queue)
        self.engine.workers = self.workers
        self.metrics = ServingMetrics()
        self.metrics.active_sessions.set_function(self.engine.active_sessions)
        self.health = health.aio.HealthServicer()
        self._extra = tuple(extra_servicers)
        self._capabilities = tuple(capabilities)
        self._drain = DrainInterceptor()
        self.grpc_server: grpc.aio.Server | None = None
        self.grpc_port: int | None = None
        self.http_port: int | None = None
        self._http: Any = None
        self._http_task: asyncio.Task | None = None
        self.serving = False

    async def start(self) -> None:
        self.grpc_server, self.grpc_port = create_server(
            self.engine, config=self.config, metrics=self.metrics, health_servicer=self.health,
            extra_servicers=self._extra, capabilities=self._capabilities, drain=self._drain)
        if self.config.http_port >= 0:
            await self._start_http()
        await self.grpc_server.start()
        await self._set_health(health_pb2.HealthCheckResponse.SERVING)
        self.serving = True
        log.info("serving", extra={"fields": {"grpc_port": self.grpc_port, "http_port": self.http_port,
                                               "tls": self.config.tls_cert is not None,
                                               "auth": self.config.token is not None}})

    async def _start_http(self) -> None:
        import uvicorn

        from npc_runtime.serving.http_api import create_http_app

        sock = _bind_http_socket(self.config.host, self.config.http_port)
        self.http_port = sock.getsockname()[1]
        app = create_http_app(self.engine, config=self.config, metrics=self.metrics,
                              is_serving=lambda: self.serving)
        uv_config = uvicorn.Config(
            app, log_config=None, access_log=False, lifespan="off", timeout_graceful_shutdown=self.config.grace_s,
            ssl_certfile=self.config.tls_cert, ssl_keyfile=self.config.tls_key)
        self._http = uvicorn.Server(uv_config)
        self._http.install_signal_handlers = lambda: None  # serve() owns the signals (older uvicorn)
        self._http_task = asyncio.create_task(self._http.serve(sockets=[sock]), name="npc-http")
        while not self._http.started:
            if self._http_task.done():
                self._http_task.result()  # raises the startup error
                raise InvalidArgument("the HTTP server stopped during startup")
            await asyncio.sleep(0.005)

    async def _set_health(self, state: int) -> None:
        for name in ("", *getattr(self.grpc_server, "_npc_services", ())):
            await self.health.set(name, state)

    async def stop(self, grace: float | None = None) -> None:
        """Health NOT_SERVING, stop accepting, let in-flight RPCs finish within `grace` seconds."""
        grace = self.config.grace_s if grace is None else grace
        self.serving = False
        if self.grpc_server is not None:
            await self.health.enter_graceful_shutdown()
            # lame duck: new calls get UNAVAILABLE from us for a moment, so none is caught by the stop itself
            # (which answers CANCELLED); calls in flight go on and finish within the grace period
            self._drain.draining = True
            await asyncio.sleep(min(LAME_DUCK_S, grace))
            await self.grpc_server.stop(grace)
        if self._http is not None:
            self._http.should_exit = True
            try:
                await asyncio.wait_for(self._http_task, timeout=grace + 1.0)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                self._http.force_exit = True
        if self._own_workers:
            self.workers.shutdown(wait=False)
        log.info("stopped", extra={"fields": {"grpc_port": self.grpc_port}})


async def serve(engine: Engine | EngineFacade, *, config: ServerConfig, extra_servicers: Sequence[ServicerHook] = (),
                capabilities: Sequence[str] = (), on_ready: Callable[[NpcServer], None] | None = None) -> int:
    """Runs until SIGTERM/SIGINT, then stops gracefully: NOT_SERVING, no new calls, in-flight work finishes
    within `config.grace_s`, the engine drains. Returns the exit code (0)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    # one pool for the process: the agent's own heavy work (FSM YAML, schemas) shares it through default_pool()
    workers = configure_default_pool(threads=config.worker_threads, queue_limit=config.worker_queue)
    server = NpcServer(engine, config=config, extra_servicers=extra_servicers, capabilities=capabilities,
                       workers=workers)
    engine = server.engine
    await server.start()
    if on_ready is not None:
        on_ready(server)
    try:
        await stop.wait()
        log.info("shutdown requested", extra={"fields": {"grace_s": config.grace_s}})
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await server.stop()
        await engine.shutdown(drain=True)
    return 0
