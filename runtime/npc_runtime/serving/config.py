"""The [server] table of the one configuration (npc_runtime.settings): listen address, ports, auth, TLS,
request limits, data directory and model packages. Keyword-only, with named defaults; checks itself.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from npc_runtime.errors import InvalidArgument
from npc_runtime.serving.replica import default_replica_name

DEFAULT_GRPC_PORT = 50051
DEFAULT_HTTP_PORT = 8000
KiB = 1 << 10
MiB = 1 << 20

# Request size policy (docs/limits.md). The byte limits are sized for the largest legal request, i.e. one
# whose prompt text (chat messages, or prefix + prompt) is MAX_PROMPT_CHARS characters long:
MAX_TEXT_CHARS = 64 * 1024
MAX_PROMPT_CHARS = 4 * MAX_TEXT_CHARS
MAX_MESSAGES = 256
# gRPC: protobuf strings are UTF-8, at most 4 bytes per character; 64 KiB more for the other fields (ids,
# sampling, stop strings, framing) -> 1,114,112 bytes
DEFAULT_GRPC_MAX_RECEIVE_BYTES = 4 * MAX_PROMPT_CHARS + 64 * KiB
# HTTP: JSON may escape every character as \uXXXX, 12 bytes for one outside the BMP (a surrogate pair, what
# Python's json.dumps writes by default); 1 MiB more for the other fields -> 4 MiB
DEFAULT_MAX_REQUEST_BYTES = 12 * MAX_PROMPT_CHARS + 1 * MiB
# the smallest byte limit that still carries a maximal prompt in plain UTF-8 (checked at startup)
UTF8_BYTES_PER_CHAR = 4


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
    # this replica's name in the npcrt-replica response metadata / header (docs/deploy.md); "" = the host name
    replica: str = ""
    # where session snapshots go when a turn ends, so another replica (or this one after a restart) can take a
    # session over: "" = <data_dir>/sessions, a directory (shared by the fleet), "redis://host:6379/0", "off"
    snapshot_store: str = ""
    # the snapshots carry the KV cache (exact continuation on takeover, ~kv_bytes_per_token x context each: 5 KiB
    # per token for the built-in model); false: tokens only (a few bytes per token), the takeover re-prefills
    snapshot_kv: bool = True
    # gRPC port; 0 = any free port (reported in the startup log line)
    port: int = DEFAULT_GRPC_PORT
    # HTTP port (OpenAI-compatible API, /metrics, /healthz); 0 = any free port, -1 = no HTTP server
    http_port: int = DEFAULT_HTTP_PORT
    # bearer token required in "authorization: Bearer <token>" metadata / header; None = no auth
    token: str | None = None
    # TLS certificate chain and private key (PEM files); both or neither
    tls_cert: str | None = None
    tls_key: str | None = None
    # largest gRPC request message, bytes (over it: RESOURCE_EXHAUSTED before the message is parsed)
    grpc_max_receive_bytes: int = DEFAULT_GRPC_MAX_RECEIVE_BYTES
    # largest gRPC response message, bytes
    grpc_max_send_bytes: int = 4 * MiB
    # largest HTTP request body, bytes: Content-Length over it gets 413 at once, a chunked body when it
    # crosses it (the body is counted while it is read, never buffered past the limit)
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    # most chat messages in one request (OpenAI messages / OpenRequest.messages)
    max_messages: int = MAX_MESSAGES
    # most prompt characters in one request: all messages' contents, or prefix + prompt
    max_prompt_chars: int = MAX_PROMPT_CHARS
    # threads that render chat templates, tokenize prompts and compile constraints / FSMs, off the event loop
    # and the engine thread; requests beyond worker_threads + worker_queue get RESOURCE_EXHAUSTED "server busy"
    worker_threads: int = 2
    worker_queue: int = 64
    # largest number of entries in one TickRequest
    max_tick_entries: int = 1024
    # budget used when TickEntry.budget_ms is 0, milliseconds
    default_budget_ms: float = 2.0
    # largest accepted TickEntry.budget_ms, milliseconds
    max_budget_ms: float = 10_000.0
    # largest accepted text field (prompt, prefix, input, one stop string...), characters
    max_text_chars: int = MAX_TEXT_CHARS
    # largest number of stop strings / allowed sequences
    max_stop_sequences: int = 16
    max_allowed_sequences: int = 256
    # streamed replies (gRPC Generate, SSE, llama-server streams, StepStream): at most one message per stream
    # every this many milliseconds, the tokens decoded meanwhile merged into it; the first message and the
    # one that ends a turn are never held back, and no token is lost or reordered. 0 = one per engine step.
    # Fewer, larger messages leave the CPU to decoding where steps are fast (docs/performance.md).
    stream_interval_ms: float = 10.0
    # seconds in-flight RPCs get to finish after SIGTERM before they are cancelled
    grace_s: float = 10.0
    # concurrent RPCs served (grpc.aio maximum_concurrent_rpcs); None = unbounded
    max_concurrent_rpcs: int | None = None
    # also serve the NpcAgent service (NPC brains over the default model)
    agent_service: bool = True
    # llama-server dialect (serving/llama_api.py, docs/compat.md): slots (one engine session each, capped at
    # the engine's max_sessions) and the folder slot save/restore files live in ("" = <data_dir>/slots)
    llama_slots: int = 4
    slot_dir: str = ""
    # "json" (one JSON object per line) or "text"
    log_format: str = "json"
    log_level: str = "INFO"

    @property
    def replica_name(self) -> str:
        return self.replica or default_replica_name()

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
        for name in ("max_messages", "max_prompt_chars", "max_text_chars", "worker_threads"):
            if getattr(self, name) < 1:
                raise InvalidArgument(f"server config: {name} must be at least 1")
        if self.llama_slots < 1:
            raise InvalidArgument("server config: llama_slots must be at least 1")
        if self.worker_queue < 0:
            raise InvalidArgument("server config: worker_queue must be >= 0")
        needed = UTF8_BYTES_PER_CHAR * self.max_prompt_chars + KiB
        for name in ("grpc_max_receive_bytes", "max_request_bytes"):
            if getattr(self, name) < needed:
                raise InvalidArgument(
                    f"server config: {name} = {getattr(self, name)} cannot carry a prompt of max_prompt_chars = "
                    f"{self.max_prompt_chars} characters ({UTF8_BYTES_PER_CHAR} bytes per character in UTF-8); "
                    f"raise it to at least {needed} or lower max_prompt_chars")
        if self.grpc_max_send_bytes < 1024:
            raise InvalidArgument("server config: grpc_max_send_bytes must be at least 1024")
        if self.max_tick_entries < 1:
            raise InvalidArgument("server config: max_tick_entries must be at least 1")
        if not 0 < self.default_budget_ms <= self.max_budget_ms:
            raise InvalidArgument("server config: need 0 < default_budget_ms <= max_budget_ms")
        if self.grace_s < 0:
            raise InvalidArgument("server config: grace_s must be >= 0")
        if not 0 <= self.stream_interval_ms <= 1000:
            raise InvalidArgument(f"server config: stream_interval_ms must be within 0..1000, got {self.stream_interval_ms}")
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
