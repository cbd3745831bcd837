"""The one configuration of a running system (`npcrt serve` and `npcrt demo`), validated before anything starts.

Layers, each over the one before:  defaults  <-  config file  <-  environment  <-  command-line flags.

Config file (TOML, or YAML with the same keys; `examples/npcrt.toml` lists every key with its default):

    [server]       npc_runtime.serving.config.ServerConfig: address, ports, auth, TLS, request limits,
                   data_dir, models
    [engine]       npc_runtime.config.EngineConfig (+ [engine.default_sampling], [engine.default_limits])
    [agent]        npc_runtime.agent.config.AgentConfig: deadlines, reflection, dialogue and policy models
    [escalation]   npc_runtime.agent.escalation.EscalationConfig: provider, thresholds, retries, breaker
                   (+ [escalation.provider_options] {model, base_url, api_key}, [escalation.prices])
    [budgets]      npc_runtime.agent.budget.BudgetConfig: calls and tokens per minute, cost per hour
    [memory]       db (SQLite file, default <data_dir>/memory.sqlite3, or a postgresql:// URL) and the retrieval weights

Environment (documented in docs/serving.md):
    NPCRT_TOKEN                 server.token
    NPCRT_DATA_DIR              server.data_dir
    NPCRT_ESCALATION_PROVIDER   escalation.provider (local | openai | anthropic)
    NPCRT_ESCALATION_MODEL      escalation.provider_options.model
    OPENAI_BASE_URL, OPENAI_API_KEY, ANTHROPIC_BASE_URL, ANTHROPIC_API_KEY
                                read by the providers' SDKs themselves; shown (masked) by --print-config

Every mistake is one `InvalidArgument` naming where it came from (the file, the variable or the flag), the
key, and what is allowed: unknown tables and keys, wrong types, out-of-range values.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from npc_runtime.agent.budget import BudgetConfig
from npc_runtime.agent.config import AgentConfig
from npc_runtime.agent.escalation import EscalationConfig
from npc_runtime.agent.memory import RetrievalWeights
from npc_runtime.agent.providers import PROVIDERS
from npc_runtime.config import EngineConfig, SessionLimits
from npc_runtime.decode.sampling import SamplingParams
from npc_runtime.errors import InvalidArgument
from npc_runtime.serving.config import ServerConfig

DEFAULT_DATA_DIR = "npcrt-data"
MEMORY_DB_NAME = "memory.sqlite3"
SECTIONS = ("server", "engine", "agent", "escalation", "budgets", "memory")
# environment variable -> (table, key) it sets; "a.b" sets key b of the nested table a
ENVIRONMENT: dict[str, tuple[str, str]] = {
    "NPCRT_TOKEN": ("server", "token"),
    "NPCRT_DATA_DIR": ("server", "data_dir"),
    "NPCRT_ESCALATION_PROVIDER": ("escalation", "provider"),
    "NPCRT_ESCALATION_MODEL": ("escalation", "provider_options.model"),
}
SECRET_KEYS = frozenset({"token", "api_key"})
EMPTY_IS_AN_ERROR = frozenset({"NPCRT_TOKEN"})
SECRET_ENV = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY")
PUBLIC_ENV = ("OPENAI_BASE_URL", "ANTHROPIC_BASE_URL")

# Range rules of the sections whose dataclasses do not check themselves: (low, high); None = unbounded.
_RANGES: dict[tuple[str, str], tuple[float | None, float | None]] = {
    ("agent", "default_deadline_ms"): (1, None), ("agent", "max_deadline_ms"): (1, 600_000),
    ("agent", "reflection_threshold"): (1, None), ("agent", "memory_token_budget"): (0, 100_000),
    ("agent", "dialogue_max_tokens"): (1, 1024), ("agent", "policy_confidence_floor"): (0, 1),
    ("agent", "max_npcs"): (1, 10_000_000), ("agent", "step_workers"): (1, 1024),
    ("escalation", "confidence_threshold"): (0, 1), ("escalation", "margin_threshold"): (0, 1),
    ("escalation", "novelty_threshold"): (0, 1), ("escalation", "max_output_tokens"): (1, 100_000),
    ("escalation", "max_attempts"): (1, 20), ("escalation", "backoff_base_ms"): (0, 60_000),
    ("escalation", "backoff_max_ms"): (0, 600_000), ("escalation", "breaker_failures"): (1, 10_000),
    ("escalation", "breaker_cooldown_s"): (0, 86_400), ("escalation", "workers"): (1, 1024),
    ("budgets", "npc_calls_per_min"): (0, None), ("budgets", "npc_tokens_per_min"): (0, None),
    ("budgets", "global_calls_per_min"): (0, None), ("budgets", "global_tokens_per_min"): (0, None),
    ("budgets", "global_cost_per_hour_usd"): (0, None),
    ("memory", "recency"): (0, None), ("memory", "importance"): (0, None), ("memory", "relevance"): (0, None),
    ("memory", "decay_per_hour"): (0, 1),
}
# openai / anthropic: model, base_url, api_key; local: candidates, max_tokens
_PROVIDER_OPTIONS = ("model", "base_url", "api_key", "candidates", "max_tokens")
_MEMORY_KEYS = ("db",) + tuple(f.name for f in dataclasses.fields(RetrievalWeights))
# [agent] keys that belong to other tables in the file
_AGENT_ELSEWHERE = ("escalation", "retrieval", "memory_db")


@dataclass(frozen=True, kw_only=True)
class Settings:
    server: ServerConfig = field(default_factory=ServerConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    agent: AgentConfig = field(default_factory=AgentConfig)   # holds escalation (with budgets) and memory
    # where each key that is not a default came from: "server.port" -> "flag --port"
    origins: Mapping[str, str] = field(default_factory=dict)

    @property
    def data_dir(self) -> Path:
        return Path(self.server.data_dir)

    @property
    def memory_db(self) -> str:
        return self.agent.memory_db or str(self.data_dir / MEMORY_DB_NAME)

    def to_tables(self, *, mask_secrets: bool = True) -> dict[str, dict[str, Any]]:
        """The effective configuration as the file's tables (what `--print-config` shows)."""
        agent = _plain(self.agent)
        escalation = agent.pop("escalation")
        budgets = escalation.pop("budget")
        retrieval = agent.pop("retrieval")
        agent.pop("memory_db")
        tables = {
            "server": _plain(self.server), "engine": _plain(self.engine), "agent": agent,
            "escalation": escalation, "budgets": budgets, "memory": {"db": self.memory_db, **retrieval},
        }
        return _masked(tables) if mask_secrets else tables

    def environment_view(self) -> dict[str, str]:
        """The SDK variables the providers will read, secrets masked."""
        view = {name: os.environ[name] for name in PUBLIC_ENV if os.environ.get(name)}
        view.update({name: _mask(os.environ[name]) for name in SECRET_ENV if os.environ.get(name)})
        return view


def load_settings(path: str | Path | None = None, *, env: Mapping[str, str] | None = None,
                  flags: Mapping[str, Any] | None = None) -> Settings:
    """Defaults <- file <- environment <- flags. `flags` maps "section.key" to a value (None = not given)
    and may name the flag for messages as "section.key@--flag"."""
    env = os.environ if env is None else env
    layers: dict[str, dict[str, Any]] = {s: {} for s in SECTIONS}
    origins: dict[str, str] = {}
    if path is not None:
        file_tables = _read_file(Path(path))
        _merge(layers, file_tables)
        origins.update({f"{s}.{k}": f"config file {path}" for s, table in file_tables.items() for k in table})
    env_tables, env_origins = _from_env(env)
    _merge(layers, env_tables)
    origins.update(env_origins)
    flag_tables: dict[str, dict[str, Any]] = {}
    for spec, value in (flags or {}).items():
        if value is None:
            continue
        dotted, _, flag = spec.partition("@")
        section, _, key = dotted.partition(".")
        flag_tables.setdefault(section, {})[key] = value
        origins[dotted] = f"flag {flag or key}"
    _merge(layers, flag_tables)
    return _build(layers, origins)


# ---- reading ----------------------------------------------------------------------------------------------
def _read_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise InvalidArgument(f"config file {path}: cannot read it ({reason})") from exc
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
            raise InvalidArgument(f"config file {path}: unknown format {suffix or '(none)'}; use .toml, .yaml or .json")
    except InvalidArgument:
        raise
    except Exception as exc:  # noqa: BLE001 - the parse errors of three libraries
        raise InvalidArgument(f"config file {path}: not valid {suffix[1:].upper()} ({exc})") from exc
    where = f"config file {path}"
    if not isinstance(data, dict):
        raise InvalidArgument(f"{where}: the top level must be tables ({', '.join(SECTIONS)})")
    unknown = sorted(set(data) - set(SECTIONS))
    if unknown:
        raise InvalidArgument(f"{where}: unknown table(s) {', '.join(f'[{u}]' for u in unknown)}; "
                              f"known tables: {', '.join(f'[{s}]' for s in SECTIONS)}")
    for section, table in data.items():
        if not isinstance(table, dict):
            raise InvalidArgument(f"{where}: [{section}] must be a table of keys, got {type(table).__name__}")
    models = data.get("server", {}).get("models")
    if models is not None:   # relative package paths are relative to the config file
        models = [models] if isinstance(models, str) else models
        if isinstance(models, list) and all(isinstance(m, str) for m in models):
            data["server"]["models"] = [m if Path(m).is_absolute() else str(path.parent / m) for m in models]
    return data


def _from_env(env: Mapping[str, str]) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """The tables the variables of ENVIRONMENT set, and each key's origin."""
    tables: dict[str, dict[str, Any]] = {}
    origins: dict[str, str] = {}
    for name, (section, path) in ENVIRONMENT.items():
        # set but empty is unset, except the token: NPCRT_TOKEN="" (an unset secret in a deploy script) must
        # not silently turn auth off, so it reaches ServerConfig's "token must not be empty" check
        if env.get(name) or (name in EMPTY_IS_AN_ERROR and name in env):
            key, _, sub = path.partition(".")
            tables.setdefault(section, {})[key] = {sub: env[name]} if sub else env[name]
            origins[f"{section}.{key}"] = f"environment {name}"
    return tables, origins


def _merge(layers: dict[str, dict[str, Any]], tables: Mapping[str, Mapping[str, Any]]) -> None:
    for section, table in tables.items():
        target = layers[section]
        for key, value in table.items():
            if isinstance(value, dict) and isinstance(target.get(key), dict):
                target[key] = {**target[key], **value}   # nested tables merge key by key
            else:
                target[key] = value


# ---- building and checking --------------------------------------------------------------------------------
def _build(layers: dict[str, dict[str, Any]], origins: Mapping[str, str]) -> Settings:
    def where(section: str, key: str | None) -> str:
        """Where `key` of `section` came from; a nested table's keys came with the table."""
        top, _, sub = section.partition(".")
        for candidate in (f"{section}.{key}", f"{top}.{sub}" if sub else None):
            if candidate in origins:
                return origins[candidate]
        return "configuration"

    server = dict(layers["server"])
    if "models" in server and isinstance(server["models"], str):
        server["models"] = [server["models"]]
    server_cfg = _construct(ServerConfig, server, "server", where)

    engine = dict(layers["engine"])
    for key, cls in (("default_sampling", SamplingParams), ("default_limits", SessionLimits)):
        if key in engine:
            engine[key] = _construct(cls, _table(engine[key], "engine", key, where), f"engine.{key}", where)
    engine_cfg = _construct(EngineConfig, engine, "engine", where)
    _self_check(engine_cfg.validate, "engine", layers["engine"], where)

    escalation = dict(layers["escalation"])
    options = _table(escalation.get("provider_options", {}), "escalation", "provider_options", where)
    _known_keys(options, _PROVIDER_OPTIONS, "escalation.provider_options", where)
    escalation["provider_options"] = options
    if "prices" in escalation:
        escalation["prices"] = _prices(escalation["prices"], where("escalation", "prices"))
    provider = escalation.get("provider", "local")
    if provider not in PROVIDERS:
        raise InvalidArgument(f"{where('escalation', 'provider')}: [escalation] provider must be one of "
                              f"{', '.join(PROVIDERS)}, got {provider!r}")
    _check_ranges("escalation", escalation, where)
    budgets = dict(layers["budgets"])
    _check_ranges("budgets", budgets, where)
    escalation["budget"] = _construct(BudgetConfig, budgets, "budgets", where)
    escalation_cfg = _construct(EscalationConfig, escalation, "escalation", where)

    memory = dict(layers["memory"])
    _known_keys(memory, _MEMORY_KEYS, "memory", where)
    db = memory.pop("db", None)
    if db is not None and not (isinstance(db, str) and db):
        raise InvalidArgument(f"{where('memory', 'db')}: [memory] db must be a SQLite file path, \":memory:\" or a "
                              f"postgresql:// URL, got {db!r}")
    _check_ranges("memory", memory, where)
    retrieval = _construct(RetrievalWeights, memory, "memory", where)

    agent = dict(layers["agent"])
    misplaced = sorted(set(agent) & set(_AGENT_ELSEWHERE))
    if misplaced:
        raise InvalidArgument(f"{where('agent', misplaced[0])}: [agent] {misplaced[0]} belongs in its own table "
                              "([escalation], [budgets], [memory])")
    _check_ranges("agent", agent, where)
    agent_cfg = _construct(AgentConfig, agent, "agent", where, escalation=escalation_cfg, retrieval=retrieval,
                           memory_db=db)
    if agent_cfg.default_deadline_ms > agent_cfg.max_deadline_ms:
        raise InvalidArgument(f"{where('agent', 'default_deadline_ms')}: [agent] default_deadline_ms must be "
                              f"<= max_deadline_ms ({agent_cfg.max_deadline_ms})")
    return Settings(server=server_cfg, engine=engine_cfg, agent=agent_cfg, origins=dict(origins))


def _construct(cls, values: Mapping[str, Any], section: str, where, **fixed: Any):
    """`cls(**values)` after checking each key is a field and each value has the field's type."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.name not in fixed]
    _known_keys(values, names, section, where)
    checked = {key: _typed(value, hints[key], section, key, where) for key, value in values.items()}
    try:
        return cls(**checked, **fixed)
    except InvalidArgument as exc:   # the dataclass's own range checks (ServerConfig...)
        _reraise(exc, section, values, where)
    except TypeError as exc:
        raise InvalidArgument(f"configuration: [{section}] {exc}") from exc


def _known_keys(values: Mapping[str, Any], names, section: str, where) -> None:
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise InvalidArgument(f"{where(section, unknown[0])}: [{section}] unknown key(s) "
                              f"{', '.join(unknown)}; known keys: {', '.join(sorted(names))}")


def _table(value: Any, section: str, key: str, where) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidArgument(f"{where(section, key)}: [{section}] {key} must be a table, got {value!r}")
    return dict(value)


_TYPE_NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


def _typed(value: Any, hint: Any, section: str, key: str, where) -> Any:
    """`value` converted to the field type `hint`, or InvalidArgument naming the key and the expected type."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _typed(value, inner[0], section, key, where) if len(inner) == 1 else value
    if dataclasses.is_dataclass(hint):
        if isinstance(value, hint):
            return value
        raise InvalidArgument(f"{where(section, key)}: [{section}] {key} must be a table")
    if origin is tuple:
        if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            return tuple(value)
        raise InvalidArgument(f"{where(section, key)}: [{section}] {key} must be a list of strings, got {value!r}")
    if origin in (dict, Mapping) or hint in (dict, Mapping):
        if isinstance(value, Mapping):
            return value
        raise InvalidArgument(f"{where(section, key)}: [{section}] {key} must be a table, got {value!r}")
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
    elif hint is str:
        if isinstance(value, str):
            return value
    else:
        return value
    raise InvalidArgument(f"{where(section, key)}: [{section}] {key} must be {_TYPE_NAMES[hint]}, got {value!r}")


def _check_ranges(section: str, values: Mapping[str, Any], where) -> None:
    for key, value in values.items():
        low, high = _RANGES.get((section, key), (None, None))
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            continue   # the type check names it
        if (low is not None and value < low) or (high is not None and value > high):
            allowed = f"{low if low is not None else '-inf'} to {high if high is not None else 'inf'}"
            raise InvalidArgument(f"{where(section, key)}: [{section}] {key} must be {allowed}, got {value!r}")


def _self_check(validate, section: str, values: Mapping[str, Any], where) -> None:
    try:
        validate()
    except InvalidArgument as exc:
        _reraise(exc, section, values, where)


def _reraise(exc: InvalidArgument, section: str, values: Mapping[str, Any], where) -> typing.NoReturn:
    """A dataclass's own check ("engine config: max_sessions must be >= 1"), said with its origin and table."""
    message = re.sub(r"^\w+ config: |^\w+: ", "", str(exc))
    mentioned = [k for k in values if re.search(rf"\b{re.escape(k)}\b", message)]
    for key, value in values.items():   # a nested table's key ([engine.default_sampling] temperature)
        if not mentioned and isinstance(value, dict) and any(re.search(rf"\b{re.escape(k)}\b", message) for k in value):
            section, mentioned = f"{section}.{key}", [key]
    origin = where(section, mentioned[0]) if mentioned else "configuration"
    raise InvalidArgument(f"{origin}: [{section}] {message}") from exc


def _prices(raw: Any, where: str) -> dict[str, tuple[float, float]]:
    try:
        prices = {str(model): (float(pair[0]), float(pair[1])) for model, pair in dict(raw).items()}
    except (TypeError, ValueError, IndexError, KeyError) as exc:
        raise InvalidArgument(f"{where}: [escalation] prices must map each model name to [input USD per 1M tokens, "
                              f"output USD per 1M tokens], got {raw!r}") from exc
    if any(p < 0 or not math.isfinite(p) for pair in prices.values() for p in pair):
        raise InvalidArgument(f"{where}: [escalation] prices must be finite and >= 0")
    return prices


# ---- showing ----------------------------------------------------------------------------------------------
def _plain(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj):
        return {f.name: _plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (tuple, list)):
        return [_plain(v) for v in obj]
    return obj


def _mask(secret: str) -> str:
    return "***" if len(secret) < 12 else f"{secret[:3]}***{secret[-2:]}"


def _masked(value: Any, key: str = "") -> Any:
    if isinstance(value, dict):
        return {k: _masked(v, k) for k, v in value.items()}
    if key in SECRET_KEYS and isinstance(value, str) and value:
        return _mask(value)
    return value


def to_toml(tables: Mapping[str, Mapping[str, Any]]) -> str:
    """A TOML rendering of `Settings.to_tables()` (None values are left out: TOML has no null)."""
    lines: list[str] = []

    def emit(name: str, table: Mapping[str, Any]) -> None:
        lines.append(f"[{name}]")
        nested = []
        for key, value in table.items():
            if value is None:
                lines.append(f"# {key} = (unset)")
            elif isinstance(value, dict):
                nested.append((key, value))
            else:
                lines.append(f"{_toml_key(key)} = {json.dumps(value)}")
        lines.append("")
        for key, value in nested:
            emit(f"{name}.{_toml_key(key)}", value)

    for name, table in tables.items():
        emit(name, table)
    return "\n".join(lines)


def _toml_key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() else json.dumps(key)
