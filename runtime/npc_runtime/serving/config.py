"""Server configuration: a keyword-only dataclass, loadable from a TOML or YAML file.

File layout (TOML shown; YAML has the same keys):

    [server]            # ServerConfig fields
    port = 50051
    http_port = 8000
    token = "secret"
    models = ["models/npc-dialogue"]

    [engine]            # npc_runtime.config.EngineConfig fields, passed through unchanged
    max_sessions = 256

Command-line flags override the file; the file overrides the defaults below.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from npc_runtime.errors import InvalidArgument

DEFAULT_GRPC_PORT = 50051
DEFAULT_HTTP_PORT = 8000
MiB = 1 << 20


@dataclass(frozen=True, kw_only=True)
class ServerConfig:
    # model package directories to serve; the first one is the default model
    models: tuple[str, ...] = ()
    host: str = "0.0.0.0"
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
    agent: bool = True
    # "json" (one JSON object per line) or "text"
    log_format: str = "json"
    log_level: str = "INFO"
    # extra fields passed to EngineConfig (the [engine] table of the config file)
    engine: dict[str, Any] = field(default_factory=dict)

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

    def replace(self, **changes: Any) -> "ServerConfig":
        """A copy with `changes` applied; None values are ignored (unset CLI flags)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})


_FIELDS = {f.name for f in dataclasses.fields(ServerConfig)}


def _read_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidArgument(f"config file {path}: cannot read it ({getattr(exc, 'strerror', None) or exc})") from exc
    suffix = path.suffix.lower()
    try:
        if suffix == ".toml":
            data = tomllib.loads(text)
        elif suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text) or {}
        elif suffix == ".json":
            data = json.loads(text)
        else:
            raise InvalidArgument(f"config file {path}: unknown format, use .toml, .yaml/.yml or .json")
    except InvalidArgument:
        raise
    except Exception as exc:  # noqa: BLE001 - parser errors of three libraries
        raise InvalidArgument(f"config file {path}: not valid {suffix[1:].upper()} ({exc})") from exc
    if not isinstance(data, dict):
        raise InvalidArgument(f"config file {path}: the top level must be a table/mapping")
    return data


def load_config(path: str | Path | None = None, **overrides: Any) -> ServerConfig:
    """Defaults <- file ([server] and [engine] tables, or server keys at top level) <- overrides."""
    values: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        data = _read_file(path)
        server = data.get("server", {k: v for k, v in data.items() if k != "engine"})
        if not isinstance(server, dict):
            raise InvalidArgument(f"config file {path}: [server] must be a table")
        unknown = sorted(set(server) - _FIELDS - {"engine"})
        if unknown:
            raise InvalidArgument(f"config file {path}: unknown server keys {unknown}; "
                                  f"known: {sorted(_FIELDS - {'engine'})}")
        values.update(server)
        engine = data.get("engine", {})
        if not isinstance(engine, dict):
            raise InvalidArgument(f"config file {path}: [engine] must be a table")
        values["engine"] = dict(engine)
        if "models" in values:
            models = values["models"]
            if isinstance(models, str):
                models = [models]
            # relative model paths are relative to the config file
            values["models"] = tuple(str((path.parent / m) if not Path(m).is_absolute() else Path(m))
                                     for m in models)
    values.update({k: v for k, v in overrides.items() if v is not None})
    if "models" in values:
        values["models"] = tuple(values["models"])
    try:
        return ServerConfig(**values)
    except TypeError as exc:
        raise InvalidArgument(f"server config: {exc}") from exc
