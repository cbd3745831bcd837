"""One function builds the running system from one validated configuration; `npcrt serve` and `npcrt demo`
both use it, so whatever the demo does, a game server can do over gRPC.

    settings = load_settings("npcrt.toml")           # npc_runtime.settings: defaults <- file <- env <- flags
    system = build_system(settings)                  # engine, agent runtime, escalation, memory, policy, NPCs
    server = system.server()                         # NpcRuntime + NpcAgent + health + HTTP + /metrics
    await server.start(); ...; await server.stop(); system.close()

What it builds, in order (a failure at any step closes what was built and raises one NpcRuntimeError):
  data_dir        created if missing; holds memory.sqlite3 (WAL): memories, escalation records, registered NPCs
                  ([memory] db / --memory-url: another SQLite file, or postgresql://... for a fleet of replicas)
  engine          the dialogue model packages (server.models; default the built-in npc-dialogue package)
  policy          the policy package (agent.policy_model; default the built-in npc-policy package) as version
                  "base", plus [agent] policy_versions side by side, routed by [agent] policy_routing
                  (agent/versions.py); `reload_policies` (SIGHUP) swaps them without dropping a session
  records         each settled escalation's training example -> <data_dir>/escalations/ (`npcrt distill`)
  agent runtime   dialogue model over the engine, escalation manager with its provider, budgets and
                  circuit breaker, memory store, NPC store; NPCs registered before the restart come back
"""

from __future__ import annotations

import json
import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from npc_runtime.agent.database import describe, is_postgres_url
from npc_runtime.errors import InvalidArgument, NpcRuntimeError
from npc_runtime.settings import Settings

log = logging.getLogger("npc_runtime.assembly")


@dataclass(frozen=True)
class BuiltinModels:
    dialogue: Path | None
    policy: Path | None


def builtin_models() -> BuiltinModels:
    """The built-in packages shipped with (or exported once for) this installation; never downloads."""
    from npc_runtime.builtin_packages import locate

    return BuiltinModels(dialogue=locate("npc-dialogue"), policy=locate("npc-policy"))


@dataclass
class System:
    settings: Settings
    engine: Any                      # sessions.EngineFacade over the dialogue packages
    agent: Any | None                # agent.brain.AgentRuntime (None with server.agent_service = false)
    models: tuple[str, ...]          # package directories served
    policy_package: str | None
    startup: list[str] = field(default_factory=list)   # what a person should read at start (data dir, NPCs...)
    # re-reads the configuration the server was started from (set by `npcrt serve`); None: reloads reuse
    # the current settings (the packages are still re-read)
    settings_loader: Any = None
    # the dialogue model of each served model an agent version speaks with (made once, reused by reloads)
    dialogues: Any = None
    _closers: list = field(default_factory=list, repr=False)

    def servicer_hooks(self) -> list:
        if self.agent is None:
            return []
        from npc_runtime.serving.agent_servicer import agent_hook

        return [agent_hook(self.agent, workers=self.settings.agent.step_workers, reload=self.reload_from_config)]

    def server(self):
        """The NpcServer (gRPC + HTTP) over this system, not started; agent metrics on its /metrics."""
        from npc_runtime.serving.server import NpcServer

        server = NpcServer(self.engine, config=self.settings.server, extra_servicers=self.servicer_hooks(),
                           capabilities=("agent",) if self.agent is not None else ())
        self.attach_metrics(server.metrics)
        return server

    def attach_metrics(self, metrics) -> None:
        if self.agent is not None:
            from npc_runtime.serving.agent_metrics import AgentCollector

            metrics.registry.register(AgentCollector(self.agent))

    def reload_policies(self, settings: Settings | None = None) -> str:
        """Load the policy versions of `settings` (default: the current ones, re-read from their packages) and
        swap them in at once; a bad package or rule raises and leaves the running versions as they were.
        Returns one line saying what is served now."""
        if self.agent is None:
            raise InvalidArgument("the agent service is off: no policy versions to reload")
        agent_cfg = (settings or self.settings).agent
        versions, default, rules = load_policy_versions(agent_cfg, self.policy_package, dialogues=self.dialogues)
        generation = self.agent.policies.install(versions, default=default, rules=rules)
        if settings is not None:
            self.settings = settings
        return (f"policy versions generation {generation}: {', '.join(versions)}; default {default}; "
                f"{len(rules)} routing rule(s)")

    def reload_from_config(self) -> str:
        """What SIGHUP and NpcAgent.ReloadPolicies run: the configuration re-read, its policy versions swapped in."""
        return self.reload_policies(self.settings_loader() if self.settings_loader is not None else None)

    async def shutdown(self) -> None:
        """Drain the engine (in-flight turns finish), then close the agent's parts. Call after the server stopped."""
        await self.engine.shutdown(drain=True)
        self.close()

    def close(self) -> None:
        """Close the agent's parts (memory, NPC store, escalation, dialogue thread); idempotent."""
        for close in reversed(self._closers):
            try:
                close()
            except Exception:  # noqa: BLE001 - closing the rest matters more than one failure
                log.exception("closing %s failed", getattr(close, "__qualname__", close))
        self._closers.clear()


def build_system(settings: Settings) -> System:
    """Everything `npcrt serve` runs, built from `settings`. Raises NpcRuntimeError (with its cause) on a
    missing or corrupt package, an unusable data directory, a provider without its key..."""
    closers: list = []
    try:
        return _build(settings, closers)
    except BaseException:
        for close in reversed(closers):
            try:
                close()
            except Exception:  # noqa: BLE001
                pass
        raise


def _build(settings: Settings, closers: list) -> System:
    builtin = None
    models = tuple(settings.server.models)
    if not models:
        builtin = builtin_models()
        if builtin.dialogue is None:
            raise InvalidArgument("no model given and the built-in npc-dialogue package is missing: pass --model DIR "
                                  "(a package made by `npcrt export`)")
        models = (str(builtin.dialogue),)
    for model in models:
        path = Path(model)
        if not path.is_dir():
            raise InvalidArgument(f"model package {model!r} does not exist or is not a directory")
        if not (path / "manifest.json").is_file():
            raise InvalidArgument(f"{model!r} is not a model package (no manifest.json); export one with `npcrt export`")

    data_dir = settings.data_dir
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        probe = data_dir / ".npcrt-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise InvalidArgument(f"data dir {data_dir}: not writable ({exc.strerror or exc}); "
                              "choose another with --data-dir") from exc
    startup = [f"data dir {data_dir.resolve()} (memories and registered NPCs are kept there)"]

    from npc_runtime.sessions.facade import EngineFacade

    engine = EngineFacade.from_packages(list(models), config=settings.engine)
    store = _snapshot_store(settings)
    if store is not None:
        # before the first request: no thread owns the engine yet
        writer = engine.engine.attach_snapshot_store(store, include_kv=settings.server.snapshot_kv)
        closers.append(writer.close)
        startup.append(f"session snapshots written to {settings.server.snapshot_store or data_dir / 'sessions'} "
                       "when a turn ends (another replica, or this one after a restart, can take a session over)")
    system = System(settings=settings, engine=engine, agent=None, models=models, policy_package=None,
                    startup=startup, _closers=closers)
    if not settings.server.agent_service:
        return system

    agent_cfg = settings.agent
    policy_package = agent_cfg.policy_model
    if policy_package is None:
        builtin = builtin or builtin_models()
        policy_package = str(builtin.policy) if builtin.policy else None
        if policy_package is None:
            startup.append("no policy package (the built-in npc-policy is missing): every allowed action is "
                           "equally likely, so most interactions escalate")
    dialogue_model = agent_cfg.dialogue_model or engine.default_model
    if dialogue_model not in {m.name for m in engine.list_models_now()}:
        raise InvalidArgument(f"[agent] dialogue_model {dialogue_model!r} is not served; served: "
                              f"{', '.join(m.name for m in engine.list_models_now())}")
    system.dialogues = DialogueModels(engine, closers)
    system.agent = _build_agent(settings, engine, dialogue_model, policy_package, system.dialogues, closers)
    system.policy_package = policy_package
    restored, problems = system.agent.restore_npcs()
    db = settings.memory_db
    if db != ":memory:" and not is_postgres_url(db):
        db = Path(db).resolve()
    db = describe(str(db))
    startup.append(f"{restored} NPC(s) restored from {db}" if restored else
                   f"no NPCs registered yet (they will be kept in {db})")
    startup.extend(problems)
    provider = system.agent.escalation.provider
    startup.append(f"escalation provider {provider.name}:{provider.model}; budget "
                   f"${agent_cfg.escalation.budget.global_cost_per_hour_usd}/h, "
                   f"{agent_cfg.escalation.budget.global_calls_per_min} calls/min")
    return system


class DialogueModels:
    """One `EngineDialogueModel` per served model an agent version speaks with, made on first use (each holds a
    thread: versions that share a model share it); closed with the system."""

    def __init__(self, engine, closers: list) -> None:
        self._engine, self._closers, self._made = engine, closers, {}

    def get(self, model: str):
        from npc_runtime.agent.engine_dialogue import EngineDialogueModel

        if model not in self._made:
            served = {m.name for m in self._engine.list_models_now()}
            if model not in served:
                raise InvalidArgument(f"dialogue model {model!r} is not served; served: {', '.join(sorted(served))} "
                                      "(serve it with another --model)")
            self._made[model] = EngineDialogueModel(self._engine, model)
            self._closers.append(self._made[model].close)
        return self._made[model]


def load_policy_versions(agent_cfg, base_package: str | None, *, dialogues: DialogueModels | None = None):
    """([agent] policy_model as "base" + policy_versions, with their dialogue models from dialogue_versions)
    loaded, the default name, the routing rules."""
    from npc_runtime.agent.policy_model import OnnxPolicyModel, UniformPolicy
    from npc_runtime.agent.versions import DEFAULT_VERSION, PolicyVersion, parse_rules

    def load(name: str, package: str | None) -> PolicyVersion:
        if package is None:
            return PolicyVersion(name, UniformPolicy(), None)
        try:
            policy = OnnxPolicyModel(package)
        except NpcRuntimeError as exc:
            raise type(exc)(f"[agent] policy version {name!r}: {exc}") from exc
        try:
            lineage = json.loads((Path(package) / "manifest.json").read_text(encoding="utf-8")).get("lineage") or {}
        except (OSError, ValueError, AttributeError):
            lineage = {}
        return PolicyVersion(name, policy, str(package), lineage if isinstance(lineage, dict) else {})

    versions = {DEFAULT_VERSION: load(DEFAULT_VERSION, base_package)}
    for name, package in agent_cfg.policy_versions.items():
        if not isinstance(package, str) or not (Path(package) / "manifest.json").is_file():
            raise InvalidArgument(f"[agent] policy_versions.{name} = {package!r} is not a policy package directory")
        versions[name] = load(name, package)
    for name, model in agent_cfg.dialogue_versions.items():
        if dialogues is None:
            raise InvalidArgument("[agent] dialogue_versions needs the engine's served models")
        base = versions.get(name, versions[DEFAULT_VERSION])   # a dialogue-only version plays the base policy
        versions[name] = dataclasses.replace(base, name=name, dialogue=dialogues.get(model))
    default = agent_cfg.policy_default or DEFAULT_VERSION
    return versions, default, parse_rules(agent_cfg.policy_routing)


def _snapshot_store(settings: Settings):
    """[server] snapshot_store: "" = <data_dir>/sessions, a directory, redis://..., or "off"."""
    from npc_runtime.sessions.snapshot_store import open_snapshot_store

    location = settings.server.snapshot_store
    if location == "off":
        return None
    return open_snapshot_store(location or str(settings.data_dir / "sessions"), ttl_s=settings.engine.idle_timeout_s)


def _build_agent(settings: Settings, engine, dialogue_model: str, policy_package: str | None,
                 dialogues: DialogueModels, closers: list):
    from npc_runtime.agent.brain import AgentRuntime
    from npc_runtime.agent.escalation import EscalationManager
    from npc_runtime.agent.memory import MemoryStore
    from npc_runtime.agent.npc_store import NpcStore
    from npc_runtime.agent.distill.records import RecordLog
    from npc_runtime.agent.providers import make_provider
    from npc_runtime.agent.versions import PolicyVersions

    config = settings.agent
    memory = MemoryStore(settings.memory_db, weights=config.retrieval)
    closers.append(memory.close)
    npc_store = NpcStore(settings.memory_db)
    closers.append(npc_store.close)
    dialogue = dialogues.get(dialogue_model)
    versions, default, rules = load_policy_versions(config, policy_package, dialogues=dialogues)
    policies = PolicyVersions(versions, default=default, rules=rules)
    records = RecordLog(settings.data_dir / "escalations") if config.record_escalations else None
    try:
        provider = make_provider(config.escalation.provider, config.escalation.provider_options, dialogue=dialogue)
    except NpcRuntimeError as exc:
        raise type(exc)(f"[escalation] provider {config.escalation.provider!r}: {exc}") from exc
    escalation = EscalationManager(provider, config=config.escalation, memory=memory)
    closers.append(escalation.close)
    return AgentRuntime(config=config, memory=memory, policies=policies, dialogue=dialogue, escalation=escalation,
                        npc_store=npc_store, records=records)
