"""Loads FSM definitions from YAML, keeping line numbers so every error names `file:line`.

File format (see docs/agent.md):

    name: guard
    initial: patrol
    states:
      patrol:
        allowed: [patrol, idle, greet, talk, warn]   # actions the agent may pick in this state
        default: patrol                               # the safe action ("talks, does nothing" fallback)
        transitions:                                  # checked in order, the first true guard wins
          - to: alert
            when: player_hostility > 0.5 or event.theft
    reflexes:                                         # immediate actions, no model
      - in: [alert, combat]                           # states (omit = every state)
        when: npc_health < 0.25
        action: flee
        arguments: {direction: away}
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import SafeConstructor

from npc_runtime.agent.actions import ACTION_SET, ACTIONS
from npc_runtime.agent.expressions import compile_guard
from npc_runtime.agent.fsm import FsmDefinition, Reflex, StateSpec, Transition
from npc_runtime.errors import InvalidArgument, NotFound

BUILTIN_FSMS = ("guard", "merchant", "villager")


@dataclass(frozen=True, kw_only=True)
class FsmLimits:
    """Bounds on an FSM file, checked while it is read, before anything is built: an FSM comes from a modder
    or a game client (`RegisterNpc.fsm_yaml`), and YAML can ask for exponential work (an alias bomb of 432
    bytes expands to a million nodes). The defaults are far above any real FSM (the built-ins use < 150
    nodes, depth 6)."""
    max_bytes: int = 64 * 1024        # UTF-8 size of the file
    max_depth: int = 32               # nested mappings / lists
    max_nodes: int = 10_000           # scalars + mappings + lists


DEFAULT_LIMITS = FsmLimits()

# The tags a plain FSM file resolves to; anything else (`!!python/...`, `!!binary`, `!!set`, custom `!tag`) is
# refused rather than constructed. Timestamps (`2024-01-01` resolves to one) are kept as their text.
_STR, _TIMESTAMP = "tag:yaml.org,2002:str", "tag:yaml.org,2002:timestamp"
_SCALAR_TAGS = frozenset({_STR, "tag:yaml.org,2002:int", "tag:yaml.org,2002:float", "tag:yaml.org,2002:bool",
                          "tag:yaml.org,2002:null"})
_MAP, _SEQ = "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"


class _Refused(Exception):
    """A limit or forbidden construct met while composing; `line` is 1-based."""

    def __init__(self, line: int, message: str):
        super().__init__(message)
        self.line = line


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses anchors and aliases as their events arrive and counts depth and nodes, so a
    hostile file is refused before the node graph grows (PyYAML's parser is iterative; only composing
    recurses, and that recursion is bounded here)."""

    def __init__(self, stream: str, limits: FsmLimits):
        super().__init__(stream)
        self._limits = limits
        self._depth = 0
        self._nodes = 0

    def compose_node(self, parent, index):
        event = self.peek_event()
        line = event.start_mark.line + 1
        if isinstance(event, yaml.AliasEvent):
            raise _Refused(line, f"aliases (*{event.anchor}) are not allowed in an FSM file; write the value out")
        if getattr(event, "anchor", None) is not None:
            raise _Refused(line, f"anchors (&{event.anchor}) are not allowed in an FSM file; write the value out")
        self._nodes += 1
        if self._nodes > self._limits.max_nodes:
            raise _Refused(line, f"more than {self._limits.max_nodes} YAML nodes; an FSM file is smaller than that")
        self._depth += 1
        if self._depth > self._limits.max_depth:
            raise _Refused(line, f"nested deeper than {self._limits.max_depth} levels")
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


class _LDict(dict):
    """A mapping that remembers the 1-based line of itself and of each key."""

    line: int = 0
    key_lines: dict


class _LList(list):
    line: int = 0
    item_lines: list


def _build(node: yaml.Node, constructor: SafeConstructor) -> Any:
    """The composed tree as plain values; depth is bounded by the loader, so this recursion is too."""
    line = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        if node.tag != _MAP:
            raise _Refused(line, f"tag {node.tag!r} is not allowed (plain mappings only)")
        out = _LDict()
        out.line = line
        out.key_lines = {}
        for key_node, value_node in node.value:
            key_line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag != _STR:
                raise _Refused(key_line, "mapping keys must be plain strings (quote it: 'key')")
            key = key_node.value
            if key in out:
                raise _Refused(key_line, f"duplicate key {key!r}")
            out[key] = _build(value_node, constructor)
            out.key_lines[key] = key_line
        return out
    if isinstance(node, yaml.SequenceNode):
        if node.tag != _SEQ:
            raise _Refused(line, f"tag {node.tag!r} is not allowed (plain lists only)")
        seq = _LList(_build(n, constructor) for n in node.value)
        seq.line = line
        seq.item_lines = [n.start_mark.line + 1 for n in node.value]
        return seq
    if node.tag == _TIMESTAMP:
        return node.value
    if node.tag not in _SCALAR_TAGS:
        raise _Refused(line, f"tag {node.tag!r} is not allowed (strings, numbers, booleans and null only)")
    try:
        return constructor.construct_object(node, deep=True)
    except (yaml.YAMLError, ValueError, OverflowError) as exc:   # e.g. `!!int abc`
        raise _Refused(line, f"bad {node.tag.rsplit(':', 1)[-1]} value {node.value[:40]!r}") from exc


def _compose(src: "_Source", text: str, limits: FsmLimits) -> Any:
    """The document as plain values, every limit checked before the tree is built."""
    if not isinstance(text, str):
        raise src.fail(1, f"an FSM file is text, got {type(text).__name__}")
    size = len(text.encode("utf-8", errors="surrogatepass"))
    if size > limits.max_bytes:
        raise src.fail(1, f"the FSM file is {size} bytes; at most {limits.max_bytes}")
    loader = None
    try:
        loader = _StrictLoader(text, limits)   # reads the stream: non-printable characters are refused here
        node = loader.get_single_node()
        if node is None:
            raise src.fail(1, "empty FSM file")
        return _build(node, SafeConstructor())
    except _Refused as exc:
        raise src.fail(exc.line, str(exc)) from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else 1
        raise src.fail(line, f"not valid YAML: {getattr(exc, 'problem', None) or exc}") from exc
    finally:
        if loader is not None:
            loader.dispose()


class _Source:
    """Error reporting for one file: `where(line)` gives 'file:line'."""

    def __init__(self, name: str):
        self.name = name

    def fail(self, line: int, message: str) -> InvalidArgument:
        return InvalidArgument(f"{self.name}:{line}: {message}")


def _line(mapping: _LDict, key: str) -> int:
    return mapping.key_lines.get(key, mapping.line)


def _require(src: _Source, mapping: Any, key: str, kind: type, where: int, what: str):
    if not isinstance(mapping, dict) or key not in mapping:
        raise src.fail(where, f"{what}: missing '{key}'")
    value = mapping[key]
    if not isinstance(value, kind):
        raise src.fail(_line(mapping, key), f"{what}: '{key}' must be a {kind.__name__}, got {type(value).__name__}")
    return value


def _action(src: _Source, name: Any, line: int, what: str) -> str:
    if not isinstance(name, str) or name not in ACTION_SET:
        raise src.fail(line, f"{what}: unknown action {name!r} (known: {', '.join(ACTIONS)})")
    return name


def _guard(src: _Source, text: Any, line: int, what: str):
    try:
        return compile_guard(text)
    except InvalidArgument as exc:
        raise src.fail(line, f"{what}: bad guard: {exc}") from exc


def parse_fsm(text: str, *, source_name: str = "<fsm>", limits: FsmLimits = DEFAULT_LIMITS) -> FsmDefinition:
    """Parse and validate an FSM definition; errors are InvalidArgument('file:line: what to fix')."""
    src = _Source(source_name)
    doc = _compose(src, text, limits)
    if not isinstance(doc, dict):
        raise src.fail(1, "an FSM file is a mapping with 'name', 'initial' and 'states'")
    known_top = {"name", "initial", "states", "reflexes", "description"}
    for key in doc:
        if key not in known_top:
            raise src.fail(_line(doc, key), f"unknown key {key!r} (known: {', '.join(sorted(known_top))})")
    name = _require(src, doc, "name", str, doc.line, "FSM")
    states_doc = _require(src, doc, "states", dict, doc.line, "FSM")
    if not states_doc:
        raise src.fail(_line(doc, "states"), "FSM: 'states' is empty")
    initial = _require(src, doc, "initial", str, doc.line, "FSM")
    if initial not in states_doc:
        raise src.fail(_line(doc, "initial"), f"initial state {initial!r} is not defined in 'states'")

    states: dict[str, StateSpec] = {}
    for state_name, spec in states_doc.items():
        where = f"state {state_name!r}"
        sline = _line(states_doc, state_name)
        if not isinstance(spec, dict):
            raise src.fail(sline, f"{where}: must be a mapping with 'allowed' and 'default'")
        for key in spec:
            if key not in ("allowed", "default", "transitions", "description"):
                raise src.fail(_line(spec, key), f"{where}: unknown key {key!r} (known: allowed, default, transitions, description)")
        allowed_doc = _require(src, spec, "allowed", list, sline, where)
        if not allowed_doc:
            raise src.fail(_line(spec, "allowed"), f"{where}: 'allowed' is empty")
        allowed = tuple(_action(src, a, allowed_doc.item_lines[i], where) for i, a in enumerate(allowed_doc))
        if "default" not in spec:
            raise src.fail(sline, f"{where}: no 'default' action (every state needs a safe default)")
        default = _action(src, spec["default"], _line(spec, "default"), where)
        if default not in allowed:
            raise src.fail(_line(spec, "default"), f"{where}: default {default!r} is not in its allowed actions")
        transitions = []
        trans_doc = spec.get("transitions") or []
        if not isinstance(trans_doc, list):
            raise src.fail(_line(spec, "transitions"), f"{where}: 'transitions' must be a list")
        for i, t in enumerate(trans_doc):
            tline = trans_doc.item_lines[i]
            if not isinstance(t, dict):
                raise src.fail(tline, f"{where}: a transition is a mapping with 'to' and 'when'")
            target = _require(src, t, "to", str, tline, f"{where} transition")
            if target not in states_doc:
                raise src.fail(_line(t, "to"), f"{where}: transition to unknown state {target!r}")
            guard = _guard(src, _require(src, t, "when", str, tline, f"{where} transition"), _line(t, "when"), where)
            transitions.append(Transition(target=target, guard=guard, line=tline))
        states[state_name] = StateSpec(name=state_name, allowed=allowed, default=default, transitions=tuple(transitions))

    reflexes = []
    reflex_doc = doc.get("reflexes") or []
    if not isinstance(reflex_doc, list):
        raise src.fail(_line(doc, "reflexes"), "'reflexes' must be a list")
    for i, r in enumerate(reflex_doc):
        rline = reflex_doc.item_lines[i]
        if not isinstance(r, dict):
            raise src.fail(rline, "a reflex is a mapping with 'when' and 'action'")
        in_states = r.get("in", list(states))
        if isinstance(in_states, str):
            in_states = [in_states]
        if not isinstance(in_states, list) or not all(isinstance(s, str) for s in in_states):
            raise src.fail(_line(r, "in"), "reflex: 'in' must be a state name or a list of state names")
        for s in in_states:
            if s not in states:
                raise src.fail(_line(r, "in"), f"reflex: unknown state {s!r}")
        action = _action(src, _require(src, r, "action", str, rline, "reflex"), _line(r, "action"), "reflex")
        for s in in_states:
            if action not in states[s].allowed:
                raise src.fail(_line(r, "action"), f"reflex: action {action!r} is not allowed in state {s!r}")
        guard = _guard(src, _require(src, r, "when", str, rline, "reflex"), _line(r, "when"), "reflex")
        args = r.get("arguments") or {}
        if not isinstance(args, dict):
            raise src.fail(_line(r, "arguments"), "reflex: 'arguments' must be a mapping")
        reflexes.append(Reflex(states=frozenset(in_states), guard=guard, action=action,
                               arguments={str(k): str(v) for k, v in args.items()}, line=rline))
    return FsmDefinition(name=name, initial=initial, states=states, reflexes=tuple(reflexes), source=source_name,
                         text=text)


def load_fsm_file(path: str | Path) -> FsmDefinition:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise NotFound(f"cannot read FSM file {path}: {exc.strerror}") from exc
    return parse_fsm(text, source_name=str(path))


_BUILTIN_CACHE: dict[str, FsmDefinition] = {}


def load_builtin_fsm(name: str) -> FsmDefinition:
    """One of BUILTIN_FSMS, from `agent/fsms/NAME.yaml`."""
    if name not in BUILTIN_FSMS:
        raise NotFound(f"unknown built-in FSM {name!r} (built-ins: {', '.join(BUILTIN_FSMS)})")
    if name not in _BUILTIN_CACHE:
        ref = resources.files("npc_runtime.agent").joinpath("fsms", f"{name}.yaml")
        _BUILTIN_CACHE[name] = parse_fsm(ref.read_text(encoding="utf-8"), source_name=f"fsms/{name}.yaml")
    return _BUILTIN_CACHE[name]
