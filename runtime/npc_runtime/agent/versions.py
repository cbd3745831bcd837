"""Several policy versions side by side: which NPC plays with which, and swapping them while serving.

    versions = PolicyVersions.single(policy)                        # one version, "base"
    versions.install({"base": p0, "day-3": p3}, default="day-3",
                     rules=(RoutingRule(version="base", match="guard-*"),          # by rule
                            RoutingRule(version="base", fraction=0.10)))          # A/B: 10 % of the NPCs
    version = versions.route("merchant-02")                         # PolicyVersion(name, policy, package)

Routing: the rules are tried in order; a rule takes an NPC when its id matches the rule's glob AND the NPC's
bucket is below the rule's fraction; an NPC no rule takes plays the default version. The bucket is a hash
of the NPC id (sha256, first 8 bytes, in [0, 1)), so an A/B split is sticky: an NPC stays on its side across
steps, restarts and replicas, and growing a fraction from 10 % to 20 % only moves NPCs onto the new side.

Swapping: `install` builds a new immutable snapshot and replaces the old one with one reference assignment.
A step reads the snapshot once (`route`), so a swap never drops a session or mixes two versions inside one
decision; policies are stateless, and the next step of an NPC simply routes again.
"""

from __future__ import annotations

import fnmatch
import hashlib
import threading
from dataclasses import dataclass, field
from typing import Mapping, Sequence

from npc_runtime.errors import InvalidArgument, NotFound

DEFAULT_VERSION = "base"
MAX_VERSIONS = 32


@dataclass(frozen=True)
class PolicyVersion:
    name: str
    policy: object                      # agent.policy_model.Policy
    package: str | None = None          # the package directory it was loaded from (None: built in code)
    lineage: Mapping[str, object] = field(default_factory=dict)   # from a distilled package's manifest
    dialogue: object | None = None      # agent.dialogue.DialogueModel this version speaks with; None: the runtime's


@dataclass(frozen=True, kw_only=True)
class RoutingRule:
    version: str
    match: str = "*"                    # glob over the NPC id ("guard-*", "merchant-0?")
    fraction: float = 1.0               # share of the matching NPCs, by the sticky hash bucket

    def __post_init__(self) -> None:
        if not 0.0 <= self.fraction <= 1.0:
            raise InvalidArgument(f"routing rule for {self.version!r}: fraction must be within 0-1, got {self.fraction}")
        if not self.match or len(self.match) > 128:
            raise InvalidArgument(f"routing rule for {self.version!r}: match must be a glob of 1-128 characters")

    def takes(self, npc_id: str) -> bool:
        return fnmatch.fnmatchcase(npc_id, self.match) and bucket(npc_id) < self.fraction


def bucket(npc_id: str) -> float:
    """The NPC's sticky place in [0, 1): the same on every replica and after every restart."""
    return int.from_bytes(hashlib.sha256(npc_id.encode("utf-8")).digest()[:8], "big") / 2.0 ** 64


def parse_rules(raw: Sequence[Mapping[str, object]]) -> tuple[RoutingRule, ...]:
    """[agent] routing entries ({version, match?, fraction?}) -> rules; one clear error per bad entry."""
    rules = []
    for i, entry in enumerate(raw):
        if not isinstance(entry, Mapping) or not isinstance(entry.get("version"), str):
            raise InvalidArgument(f"[agent] routing[{i}] must be a table with a 'version' name")
        unknown = set(entry) - {"version", "match", "fraction"}
        if unknown:
            raise InvalidArgument(f"[agent] routing[{i}]: unknown keys {sorted(unknown)} (version, match, fraction)")
        try:
            rules.append(RoutingRule(version=str(entry["version"]), match=str(entry.get("match", "*")),
                                     fraction=float(entry.get("fraction", 1.0))))
        except (TypeError, ValueError) as exc:
            raise InvalidArgument(f"[agent] routing[{i}]: fraction must be a number ({exc})") from exc
    return tuple(rules)


@dataclass(frozen=True)
class _Snapshot:
    versions: Mapping[str, PolicyVersion]
    default: str
    rules: tuple[RoutingRule, ...]
    generation: int


class PolicyVersions:
    """The loaded versions, the default and the routing rules; thread-safe, swapped atomically."""

    def __init__(self, versions: Mapping[str, PolicyVersion], *, default: str,
                 rules: Sequence[RoutingRule] = ()):
        self._lock = threading.Lock()    # serialises writers; readers take the snapshot reference
        self._snap = self._check(dict(versions), default, tuple(rules), generation=1)

    @classmethod
    def single(cls, policy, *, name: str = DEFAULT_VERSION, package: str | None = None) -> "PolicyVersions":
        return cls({name: PolicyVersion(name, policy, package)}, default=name)

    @staticmethod
    def _check(versions: dict[str, PolicyVersion], default: str, rules: tuple[RoutingRule, ...],
               generation: int) -> _Snapshot:
        if not versions:
            raise InvalidArgument("at least one policy version is needed")
        if len(versions) > MAX_VERSIONS:
            raise InvalidArgument(f"at most {MAX_VERSIONS} policy versions at once, got {len(versions)}")
        if default not in versions:
            raise InvalidArgument(f"default policy version {default!r} is not loaded (loaded: {', '.join(versions)})")
        missing = sorted({r.version for r in rules} - set(versions))
        if missing:
            raise InvalidArgument(f"routing names policy versions that are not loaded: {', '.join(missing)} "
                                  f"(loaded: {', '.join(versions)})")
        return _Snapshot(versions=dict(versions), default=default, rules=rules, generation=generation)

    # ---- reads (every step) ------------------------------------------------------------------------------
    def route(self, npc_id: str) -> PolicyVersion:
        snap = self._snap
        for rule in snap.rules:
            if rule.takes(npc_id):
                return snap.versions[rule.version]
        return snap.versions[snap.default]

    @property
    def default(self) -> PolicyVersion:
        snap = self._snap
        return snap.versions[snap.default]

    @property
    def generation(self) -> int:
        """Bumped by every swap (shown by ListModels / ReloadModels)."""
        return self._snap.generation

    @property
    def rules(self) -> tuple[RoutingRule, ...]:
        return self._snap.rules

    def all(self) -> list[PolicyVersion]:
        return list(self._snap.versions.values())

    def get(self, name: str) -> PolicyVersion:
        version = self._snap.versions.get(name)
        if version is None:
            raise NotFound(f"no policy version {name!r} (loaded: {', '.join(self._snap.versions)})")
        return version

    # ---- writes (reloads, the demo's daily swap) ---------------------------------------------------------
    def install(self, versions: Mapping[str, PolicyVersion], *, default: str,
                rules: Sequence[RoutingRule] = ()) -> int:
        """Replace everything at once; returns the new generation. Invalid input leaves the old snapshot."""
        with self._lock:
            self._snap = self._check(dict(versions), default, tuple(rules), self._snap.generation + 1)
            return self._snap.generation

    def add(self, version: PolicyVersion, *, make_default: bool = False, keep: int = MAX_VERSIONS) -> int:
        """Load one more version (replacing one of the same name); optionally make it the default. The oldest
        versions no rule and no default uses are dropped beyond `keep`."""
        with self._lock:
            snap = self._snap
            versions = {k: v for k, v in snap.versions.items() if k != version.name}
            versions[version.name] = version
            default = version.name if make_default else snap.default
            pinned = {default, *(r.version for r in snap.rules)}
            for name in list(versions):
                if len(versions) <= keep:
                    break
                if name not in pinned:
                    del versions[name]
            self._snap = self._check(versions, default, snap.rules, snap.generation + 1)
            return self._snap.generation

    def set_default(self, name: str) -> int:
        with self._lock:
            snap = self._snap
            self._snap = self._check(dict(snap.versions), name, snap.rules, snap.generation + 1)
            return self._snap.generation
