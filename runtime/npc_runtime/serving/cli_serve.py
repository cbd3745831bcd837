"""`npcrt serve`: the gRPC server (+ OpenAI-compatible HTTP API, /metrics) over one or more model packages.

    npcrt serve --model models/npc-dialogue [--model DIR ...] [--port 50051] [--http-port 8000]
                [--config server.toml] [--token T] [--tls-cert F --tls-key F]

Flags override the config file. Bad input (a missing package, a bad config) prints one line and exits 2.
When it is listening it prints one line on stdout:
    npcrt serve: listening grpc=HOST:PORT http=HOST:PORT models=a,b
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
import sys
from pathlib import Path

from npc_runtime.errors import NpcRuntimeError

EXIT_BAD_INPUT = 2
log = logging.getLogger("npc_runtime.serving")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", action="append", metavar="DIR", default=None,
                        help="model package directory (repeatable; the first is the default model)")
    parser.add_argument("--config", metavar="FILE", help="TOML/YAML/JSON config file ([server], [engine] tables)")
    parser.add_argument("--host", help="listen address (default 0.0.0.0)")
    parser.add_argument("--port", type=int, help="gRPC port (default 50051; 0 = any free port)")
    parser.add_argument("--http-port", type=int, help="HTTP port (default 8000; 0 = any free port, -1 = off)")
    parser.add_argument("--token", help="require 'authorization: Bearer TOKEN' (or set NPCRT_TOKEN)")
    parser.add_argument("--tls-cert", metavar="FILE", help="TLS certificate chain (PEM)")
    parser.add_argument("--tls-key", metavar="FILE", help="TLS private key (PEM)")
    parser.add_argument("--max-sessions", type=int, help="engine: concurrent sessions per model")
    parser.add_argument("--grace", type=float, dest="grace_s", help="seconds in-flight work gets at shutdown")
    parser.add_argument("--no-agent", action="store_true", help="serve NpcRuntime only, without the NpcAgent service")
    parser.add_argument("--log-format", choices=("json", "text"), help="log format on stderr (default json)")
    parser.add_argument("--log-level", help="DEBUG, INFO (default), WARNING...")


def _fail(message: str) -> int:
    print(f"npcrt serve: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def _check_model_dirs(models: tuple[str, ...]) -> str | None:
    if not models:
        return "no model given: pass --model DIR (a package made by `npcrt export`) or models in --config"
    for model in models:
        path = Path(model)
        if not path.is_dir():
            return f"model package {model!r} does not exist or is not a directory"
        if not (path / "manifest.json").is_file():
            return f"{model!r} is not a model package (no manifest.json); export one with `npcrt export`"
    return None


def _port_problem(host: str, port: int) -> str | None:
    """Why `port` cannot be bound (checked up front: gRPC's own bind error is a C-level log line)."""
    if port <= 0:
        return None
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            return exc.strerror or str(exc)
    return None


def run(args: argparse.Namespace) -> int:
    from npc_runtime.serving.config import load_config
    from npc_runtime.serving.logs import setup_logging

    try:
        config = load_config(
            args.config, models=tuple(args.model) if args.model else None, host=args.host, port=args.port,
            http_port=args.http_port, token=args.token or os.environ.get("NPCRT_TOKEN") or None,
            tls_cert=args.tls_cert, tls_key=args.tls_key, grace_s=args.grace_s,
            log_format=args.log_format, log_level=args.log_level, agent=False if args.no_agent else None)
    except NpcRuntimeError as exc:
        return _fail(str(exc))
    problem = _check_model_dirs(config.models)
    if problem:
        return _fail(problem)
    for name in ("tls_cert", "tls_key"):
        file = getattr(config, name)
        if file is not None and not Path(file).is_file():
            return _fail(f"--{name.replace('_', '-')} {file!r} is not a readable file")
    for flag, port in (("--port", config.port), ("--http-port", config.http_port)):
        problem = _port_problem(config.host, port)
        if problem:
            return _fail(f"cannot listen on {config.host}:{port} ({problem}); choose another {flag}")
    try:
        setup_logging(fmt=config.log_format, level=config.log_level)
    except ValueError as exc:
        return _fail(f"--log-level: {exc}")
    try:
        engine = _load_engine(config, max_sessions=args.max_sessions)
    except NpcRuntimeError as exc:
        return _fail(str(exc))
    try:
        return asyncio.run(_serve(engine, config))
    except NpcRuntimeError as exc:  # e.g. the port is taken
        return _fail(str(exc))


def _load_engine(config, *, max_sessions: int | None):
    from npc_runtime.config import EngineConfig, SessionLimits
    from npc_runtime.decode.sampling import SamplingParams
    from npc_runtime.serving.engine_port import EnginePort
    from npc_runtime.sessions.engine import Engine
    from npc_runtime.errors import InvalidArgument

    engine_values = dict(config.engine)
    if max_sessions is not None:
        engine_values["max_sessions"] = max_sessions
    try:
        # nested tables [engine.default_sampling] / [engine.default_limits] become their dataclasses
        for key, cls in (("default_sampling", SamplingParams), ("default_limits", SessionLimits)):
            if isinstance(engine_values.get(key), dict):
                engine_values[key] = cls(**engine_values[key])
        engine_config = EngineConfig(**engine_values).validate()
    except TypeError as exc:
        raise InvalidArgument(f"config [engine]: {exc}") from exc
    engine = Engine.from_packages(list(config.models), config=engine_config)
    return EnginePort.from_engine(engine)


async def _serve(engine, config) -> int:
    from npc_runtime.serving.server import serve

    def ready(server) -> None:
        http = f"{config.host}:{server.http_port}" if server.http_port is not None else "off"
        names = ",".join(m.name for m in engine.list_models_now())
        print(f"npcrt serve: listening grpc={config.host}:{server.grpc_port} http={http} models={names}", flush=True)

    hooks, closers = _agent_service(engine) if config.agent else ((), ())
    try:
        return await serve(engine, config=config, extra_servicers=hooks, on_ready=ready,
                           capabilities=("agent",) if hooks else ())
    finally:
        for close in closers:
            close()


def _agent_service(engine):
    """The NpcAgent service over the default model (serving/agent_servicer.py), when the agent layer is
    installed; its memory is in-process SQLite unless the agent config says otherwise."""
    try:
        from npc_runtime.agent.brain import AgentRuntime
        from npc_runtime.agent.engine_dialogue import EngineDialogueModel
        from npc_runtime.serving.agent_servicer import agent_hook
    except ImportError as exc:
        log.warning("NpcAgent service not available: %s", exc)
        return (), ()
    dialogue = EngineDialogueModel(engine.async_engine, engine.default_model)
    runtime = AgentRuntime(dialogue=dialogue)
    closers = [c for c in (getattr(runtime, "close", None), getattr(dialogue, "close", None)) if c]
    return (agent_hook(runtime),), closers
