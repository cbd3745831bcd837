"""`npcrt serve`: the whole product: NpcRuntime (decoding) and NpcAgent (NPC brains with escalation, persistent
memory) over gRPC, the OpenAI-compatible HTTP API and /metrics, built by `npc_runtime.assembly.build_system`
from one configuration (npc_runtime.settings: defaults <- --config FILE <- environment <- flags).

    npcrt serve                                  # the built-in models, 127.0.0.1, data in ./npcrt-data
    npcrt serve --model pkgs/my-npc --config npcrt.toml --data-dir /var/lib/npcrt
    npcrt serve --host 0.0.0.0 --token SECRET     # other machines: a token (or TLS) is required
    npcrt serve --print-config                   # the effective configuration, secrets masked; starts nothing

Bad input (a missing package, a bad config, an exposed address without auth) prints one line and exits 2.
At start it prints what it uses on stderr (data dir, restored NPCs, escalation provider) and, when it is
listening, one line on stdout:
    npcrt serve: listening grpc=HOST:PORT http=HOST:PORT models=a,b
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import sys

from npc_runtime.errors import NpcRuntimeError

EXIT_BAD_INPUT = 2
log = logging.getLogger("npc_runtime.serving")

# flag dest -> "section.key@--flag" of the one configuration
FLAG_KEYS = {
    "model": "server.models@--model", "host": "server.host@--host", "port": "server.port@--port",
    "http_port": "server.http_port@--http-port", "token": "server.token@--token",
    "tls_cert": "server.tls_cert@--tls-cert", "tls_key": "server.tls_key@--tls-key",
    "grace_s": "server.grace_s@--grace", "log_format": "server.log_format@--log-format",
    "log_level": "server.log_level@--log-level", "data_dir": "server.data_dir@--data-dir",
    "insecure": "server.insecure@--insecure", "agent_service": "server.agent_service@--no-agent",
    "max_sessions": "engine.max_sessions@--max-sessions", "policy_model": "agent.policy_model@--policy",
    "escalation_provider": "escalation.provider@--escalation-provider", "memory_url": "memory.db@--memory-url",
    "replica": "server.replica@--replica", "snapshot_store": "server.snapshot_store@--snapshot-store",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", action="append", metavar="DIR", default=None,
                        help="model package directory (repeatable; the first is the default model; "
                             "default: the built-in npc-dialogue package)")
    parser.add_argument("--config", metavar="FILE", help="TOML or YAML config file (see examples/npcrt.toml)")
    parser.add_argument("--data-dir", metavar="DIR", help="where memories and registered NPCs are kept "
                                                          "(default ./npcrt-data; env NPCRT_DATA_DIR)")
    parser.add_argument("--memory-url", metavar="URL",
                        help="agent database: a SQLite file (default <data-dir>/memory.sqlite3) or "
                             "postgresql://user:password@host:5432/db shared by replicas (needs npc-runtime[postgres])")
    parser.add_argument("--snapshot-store", metavar="DIR_OR_URL",
                        help="session snapshots for takeover by another replica: a directory (default "
                             "<data-dir>/sessions), redis://host:6379/0 (needs npc-runtime[fleet]), or off")
    parser.add_argument("--replica", metavar="NAME",
                        help="this replica's name in the npcrt-replica response metadata (default: the host name)")
    parser.add_argument("--host", help="listen address (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, help="gRPC port (default 50051; 0 = any free port)")
    parser.add_argument("--http-port", type=int, help="HTTP port (default 8000; 0 = any free port, -1 = off)")
    parser.add_argument("--token", help="require 'authorization: Bearer TOKEN' (or set NPCRT_TOKEN)")
    parser.add_argument("--tls-cert", metavar="FILE", help="TLS certificate chain (PEM)")
    parser.add_argument("--tls-key", metavar="FILE", help="TLS private key (PEM)")
    parser.add_argument("--insecure", action="store_true", default=None,
                        help="allow a non-loopback --host without --token or TLS")
    parser.add_argument("--max-sessions", type=int, help="engine: concurrent sessions per model")
    parser.add_argument("--policy", dest="policy_model", metavar="DIR",
                        help="policy model package (default: the built-in npc-policy package)")
    parser.add_argument("--escalation-provider", choices=("local", "openai", "anthropic"),
                        help="where hard decisions go (default local; env NPCRT_ESCALATION_PROVIDER)")
    parser.add_argument("--grace", type=float, dest="grace_s", help="seconds in-flight work gets at shutdown")
    parser.add_argument("--no-agent", dest="agent_service", action="store_false", default=None,
                        help="serve NpcRuntime only, without the NpcAgent service")
    parser.add_argument("--log-format", choices=("json", "text"), help="log format on stderr (default json)")
    parser.add_argument("--log-level", help="DEBUG, INFO (default), WARNING...")
    parser.add_argument("--print-config", action="store_true",
                        help="print the effective configuration (secrets masked) and exit")


def _fail(message: str) -> int:
    print(f"npcrt serve: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def load_serve_settings(args: argparse.Namespace):
    """The one configuration from --config, the environment and the flags (raises InvalidArgument)."""
    from npc_runtime.settings import load_settings

    flags = {spec: getattr(args, dest, None) for dest, spec in FLAG_KEYS.items()}
    return load_settings(args.config, flags=flags)


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


def _exposure_problem(server) -> str | None:
    if not server.exposed or server.protected:
        return None
    if server.insecure:
        print(f"npcrt serve: warning: listening on {server.host} without --token or TLS (--insecure): anyone who "
              "reaches these ports controls your NPCs", file=sys.stderr)
        return None
    return (f"refusing to listen on {server.host} without --token or TLS: anyone who reaches the port could drive "
            "your NPCs; add --token SECRET (or NPCRT_TOKEN), or --tls-cert/--tls-key, or --insecure, "
            "or listen on 127.0.0.1")


def run(args: argparse.Namespace) -> int:
    from npc_runtime.serving.logs import setup_logging
    from npc_runtime.settings import to_toml

    try:
        settings = load_serve_settings(args)
    except NpcRuntimeError as exc:
        return _fail(str(exc))
    if args.print_config:
        print(f"# npcrt serve: effective configuration (defaults <- {args.config or 'no config file'} <- "
              "environment <- flags); secrets masked")
        print(to_toml(settings.to_tables()))
        for name, value in settings.environment_view().items():
            print(f"# environment {name} = {value}")
        return 0
    server = settings.server
    for name in ("tls_cert", "tls_key"):
        file = getattr(server, name)
        if file is not None and not os.path.isfile(file):
            return _fail(f"--{name.replace('_', '-')} {file!r} is not a readable file")
    problem = _exposure_problem(server)
    if problem:
        return _fail(problem)
    for flag, port in (("--port", server.port), ("--http-port", server.http_port)):
        problem = _port_problem(server.host, port)
        if problem:
            return _fail(f"cannot listen on {server.host}:{port} ({problem}); choose another {flag}")
    try:
        setup_logging(fmt=server.log_format, level=server.log_level)
    except ValueError as exc:
        return _fail(f"--log-level: {exc}")
    from npc_runtime.assembly import build_system

    try:
        system = build_system(settings)
    except NpcRuntimeError as exc:
        return _fail(str(exc))
    for line in system.startup:
        print(f"npcrt serve: {line}", file=sys.stderr, flush=True)
    try:
        system.settings_loader = lambda: load_serve_settings(args)
        return asyncio.run(_serve(system))
    except NpcRuntimeError as exc:  # e.g. the port is taken
        return _fail(str(exc))
    finally:
        system.close()


async def _serve(system) -> int:
    from npc_runtime.serving.server import serve

    config = system.settings.server

    def reload() -> None:
        """SIGHUP: re-read the configuration and swap the policy versions in (sessions go on; a bad package
        or rule is reported and the running versions stay)."""
        try:
            line = system.reload_from_config()    # the same as NpcAgent.ReloadPolicies
        except NpcRuntimeError as exc:
            print(f"npcrt serve: reload refused, still serving the previous policy versions: {exc}", file=sys.stderr,
                  flush=True)
            return
        print(f"npcrt serve: reloaded: {line}", file=sys.stderr, flush=True)

    def ready(server) -> None:
        if system.agent is not None and hasattr(signal, "SIGHUP"):
            loop = asyncio.get_running_loop()
            loop.add_signal_handler(signal.SIGHUP, lambda: loop.run_in_executor(None, reload))
        system.attach_metrics(server.metrics)
        http = f"{config.host}:{server.http_port}" if server.http_port is not None else "off"
        names = ",".join(m.name for m in system.engine.list_models_now())
        print(f"npcrt serve: listening grpc={config.host}:{server.grpc_port} http={http} models={names}", flush=True)

    return await serve(system.engine, config=config, extra_servicers=system.servicer_hooks(), on_ready=ready,
                       capabilities=("agent",) if system.agent is not None else ())
