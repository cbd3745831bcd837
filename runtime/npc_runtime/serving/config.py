"""The [server] table of the one configuration (npc_runtime.settings): listen address, ports, auth, TLS,
request limits, data directory and model packages. Keyword-only, with named defaults; checks itself.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from npc_runtime.errors import InvalidArgument

DEFAULT_GRPC_PORT = 50051
DEFAULT_HTTP_PORT = 8000
MiB = 1 << 20


@dataclass(frozen=True, kw_only=True)
class ServerConfig:
    # model package directories to serve; the first one is the default model
    models: tuple[str, ...] = ()
    # listen address; loopback by default. A non-loopback address needs a token or TLS, or insecure = true
    host: str = "127.0.0.1"
    # allow a non-loopback host without token and TLS (anyone who reaches the port controls the NPCs)
    insecure: bool = False
    # where the server keeps what must survive a restart (agent memory, registered NPCs); created if missing
    data_dir: str = "npcrt-data"
    # gRPC port; 0 = any free port (reported in the startup log line)
    port: int = DEFAULT_GRPC_PORT
    # HTTP port (OpenAI-compatible API, /metrics, /healthz); 0 = any free port, -1 = no HTTP server
    http_port: int = DEFAULT_HTTP_PORT
    # bearer token required in "authorization: Bearer <token>" metadata / header; None = no auth
    token: str | None = None
    # TLS certificate chain and private key (PEM files); both or neither
    tls_cert: str | None = None
    tls_key: str | None = None
    # largest gRPC message, bytes, both directions
    max_message_bytes: int = 4 * MiB
    # largest number of entries in one TickRequest
    max_tick_entries: int = 1024
    # budget used when TickEntry.budget_ms is 0, milliseconds
    default_budget_ms: float = 2.0
    # largest accepted TickEntry.budget_ms, milliseconds
    max_budget_ms: float = 10_000.0
    # largest accepted text field (prompt, prefix, input, one stop string...), characters
    max_text_chars: int = 64 * 1024
    # largest number of stop strings / allowed sequences
    max_stop_sequences: int = 16
    max_allowed_sequences: int = 256
    # seconds in-flight RPCs get to finish after SIGTERM before they are cancelled
    grace_s: float = 10.0
    # concurrent RPCs served (grpc.aio maximum_concurrent_rpcs); None = unbounded
    max_concurrent_rpcs: int | None = None
    # also serve the NpcAgent service (NPC brains over the default model)
    agent_service: bool = True
    # "json" (one JSON object per line) or "text"
    log_format: str = "json"
    log_level: str = "INFO"

    def __post_init__(self) -> None:
        for name in ("port", "http_port"):
            value = getattr(self, name)
            if not isinstance(value, int) or not -1 <= value <= 65535:
                raise InvalidArgument(f"server config: {name} must be an integer port 0-65535 (got {value!r})")
        if self.port < 0:
            raise InvalidArgument("server config: port must be 0-65535 (the gRPC server cannot be disabled)")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise InvalidArgument("server config: give both tls_cert and tls_key, or neither")
        if self.token is not None and not str(self.token).strip():
            raise InvalidArgument("server config: token must not be empty (leave it unset to disable auth)")
        if self.max_message_bytes < 1024:
            raise InvalidArgument("server config: max_message_bytes must be at least 1024")
        if self.max_tick_entries < 1:
            raise InvalidArgument("server config: max_tick_entries must be at least 1")
        if not 0 < self.default_budget_ms <= self.max_budget_ms:
            raise InvalidArgument("server config: need 0 < default_budget_ms <= max_budget_ms")
        if self.grace_s < 0:
            raise InvalidArgument("server config: grace_s must be >= 0")
        if self.log_format not in ("json", "text"):
            raise InvalidArgument("server config: log_format must be 'json' or 'text'")
        if not self.host:
            raise InvalidArgument("server config: host must not be empty (127.0.0.1 for this machine only)")
        if not self.data_dir:
            raise InvalidArgument("server config: data_dir must not be empty")

    @property
    def exposed(self) -> bool:
        """True when the address is reachable from other machines."""
        return not is_loopback(self.host)

    @property
    def protected(self) -> bool:
        return self.token is not None or self.tls_cert is not None

    def replace(self, **changes: Any) -> "ServerConfig":
        """A copy with `changes` applied; None values are ignored (unset CLI flags)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})


def is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
