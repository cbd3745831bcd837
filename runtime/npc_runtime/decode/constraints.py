"""Constrained decoding: a logits mask per step.

One small interface, `Constraint`: a compiled constraint is immutable and shared by every session that uses
it (its masks are cached per state); the per-session part is a small hashable `state`:

    state = c.initial_state()
    mask = c.allowed_token_mask(state)       # bool [vocab]
    state = c.advance(state, token_id)
    c.is_complete(state)                     # nothing more may follow: the session stops

Two kinds:
* `ChoiceConstraint`: one of an allowed set of strings (e.g. actions `[greet]`, `[trade]`), a trie over their
  token sequences.
* `JsonSchemaConstraint`: a JSON-schema subset (an object with string / enum / integer / number / boolean
  properties, required keys) compiled to a character-level state machine, checked against the text of each
  token. Output is compact JSON with properties in schema order (optional ones may be skipped).
"""

from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from itertools import accumulate

import numpy as np

from npc_runtime.errors import InvalidArgument

State = Hashable
_MASK_CACHE_LIMIT = 4096

# A schema comes from a client (`Constraint.json_schema`): its size is bounded before it is parsed or compiled.
# The supported subset is 4 levels deep (object > properties > property > enum); compiling costs
# O(properties^2) alternatives when properties are optional, hence the property cap.
MAX_SCHEMA_CHARS = 32 * 1024
MAX_SCHEMA_DEPTH = 16
MAX_SCHEMA_PROPERTIES = 64
MAX_ENUM_VALUES = 256
MAX_STRING_LENGTH = 4096

_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_BRACKET_DELTA = {"[": 1, "{": 1, "]": -1, "}": -1}


def json_depth(text: str) -> int:
    """Deepest nesting of [ and { in JSON text (outside strings), found without parsing it: json.loads
    recurses once per level, so a hostile text is measured first."""
    brackets = _NOT_BRACKET.sub("", _JSON_STRING.sub("", text))
    return max(accumulate(map(_BRACKET_DELTA.__getitem__, brackets)), default=0)


def load_schema(text: str, *, field: str = "json_schema") -> dict:
    """A schema's JSON text -> the schema object, size and depth checked before parsing; errors name `field`."""
    if not isinstance(text, str):
        raise InvalidArgument(f"{field} must be JSON text (got {type(text).__name__})")
    if len(text) > MAX_SCHEMA_CHARS:
        raise InvalidArgument(f"{field} is {len(text)} characters; at most {MAX_SCHEMA_CHARS}")
    depth = json_depth(text)
    if depth > MAX_SCHEMA_DEPTH:
        raise InvalidArgument(f"{field} is nested {depth} levels deep; at most {MAX_SCHEMA_DEPTH}")
    try:
        schema = json.loads(text)
    except (ValueError, RecursionError) as exc:   # JSONDecodeError is a ValueError
        raise InvalidArgument(f"{field} is not valid JSON: {exc}") from exc
    if not isinstance(schema, dict):
        raise InvalidArgument(f"{field} must be a JSON object (a schema), got {type(schema).__name__}")
    return schema


def _max_length(sub: dict, name: str) -> int:
    value = sub.get("maxLength", _DEFAULT_MAX_STRING)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_STRING_LENGTH:
        raise InvalidArgument(f"json schema: maxLength of {name!r} must be an integer in [1, {MAX_STRING_LENGTH}] "
                              f"(got {value!r})")
    return value


class Constraint(ABC):
    vocab_size: int
    eos_ids: tuple[int, ...]

    @abstractmethod
    def initial_state(self) -> State: ...

    @abstractmethod
    def allowed_token_mask(self, state: State) -> np.ndarray:
        """bool [vocab]: the tokens that may come next."""

    @abstractmethod
    def advance(self, state: State, token_id: int) -> State:
        """The state after `token_id`; InvalidArgument if the token is not allowed."""

    @abstractmethod
    def is_complete(self, state: State) -> bool:
        """True when the output is a complete match and nothing more may follow."""


class ChoiceConstraint(Constraint):
    """Output exactly one of `choices` (their canonical tokenization); EOS is allowed once a choice is complete."""

    def __init__(self, choices: Sequence[str], tokenizer, *, vocab_size: int) -> None:
        if not choices or not all(isinstance(c, str) and c for c in choices):
            raise InvalidArgument("choice constraint: give a non-empty list of non-empty strings")
        self.vocab_size = vocab_size
        self.eos_ids = tuple(tokenizer.eos)
        self.choices = tuple(choices)
        self._children: list[dict[int, int]] = [{}]   # node -> {token: child node}
        self._terminal: list[bool] = [False]
        for choice in choices:
            node = 0
            for token in tokenizer.encode(choice):
                if token >= vocab_size:
                    raise InvalidArgument(f"choice {choice!r} tokenizes outside the model vocabulary")
                child = self._children[node].get(token)
                if child is None:
                    child = len(self._children)
                    self._children[node][token] = child
                    self._children.append({})
                    self._terminal.append(False)
                node = child
            self._terminal[node] = True
        self._masks: dict[int, np.ndarray] = {}

    def initial_state(self) -> int:
        return 0

    def allowed_token_mask(self, state: int) -> np.ndarray:
        mask = self._masks.get(state)
        if mask is None:
            mask = np.zeros(self.vocab_size, dtype=bool)
            mask[list(self._children[state])] = True
            if self._terminal[state]:
                mask[[e for e in self.eos_ids if e < self.vocab_size]] = True
            self._masks[state] = mask
        return mask

    def advance(self, state: int, token_id: int) -> int:
        child = self._children[state].get(int(token_id))
        if child is None:
            if self._terminal[state] and token_id in self.eos_ids:
                return state
            raise InvalidArgument(f"token {token_id} is not allowed by the choice constraint here")
        return child

    def is_complete(self, state: int) -> bool:
        return self._terminal[state] and not self._children[state]


# ---------------------------------------------------------------------------------------------------------
# JSON schema subset: a table of grammar nodes; a runtime state is (node id, aux)


@dataclass(frozen=True)
class _Lit:      # one of several literal strings, then a node
    alts: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class _Str:      # the inside of a JSON string (after the opening quote), then `after` once closed
    after: int
    max_len: int


@dataclass(frozen=True)
class _Num:      # -?(0|[1-9][0-9]*)(\.[0-9]+)?  then `after`
    integer: bool
    after: int


@dataclass(frozen=True)
class _Done:
    pass


_ESCAPES = set('"\\/bfnrt')
_MAX_DIGITS = 15
_DEFAULT_MAX_STRING = 256


def _number_prefix_ok(text: str, integer: bool) -> bool:
    """Is `text` a prefix of a valid number (bounded digits)?"""
    body = text[1:] if text.startswith("-") else text
    if not body:
        return True
    whole, dot, frac = body.partition(".")
    if not whole.isdigit() or len(whole) > _MAX_DIGITS or (len(whole) > 1 and whole[0] == "0"):
        return False
    if dot:
        return not integer and (frac == "" or (frac.isdigit() and len(frac) <= _MAX_DIGITS))
    return True


def _number_complete(text: str) -> bool:
    body = text[1:] if text.startswith("-") else text
    whole, dot, frac = body.partition(".")
    return bool(whole) and whole.isdigit() and (not dot or (frac.isdigit() and bool(frac)))


class JsonSchemaConstraint(Constraint):
    """An object schema: {"type": "object", "properties": {...}, "required": [...]}, property types
    string (maxLength honoured), enum of strings, integer, number, boolean."""

    def __init__(self, schema: dict, tokenizer, *, vocab_size: int) -> None:
        self.vocab_size = vocab_size
        self.eos_ids = tuple(tokenizer.eos)
        self.schema = schema
        self._nodes: list = []
        self._start = self._compile(schema)
        strings = tokenizer.token_strings()[:vocab_size]
        # tokens without text or with a partial UTF-8 character are never allowed under this constraint
        self._tokens = [s if s and "\ufffd" not in s else "" for s in strings] + [""] * (vocab_size - len(strings))
        self._by_first: dict[str, list[int]] = {}
        for tid, s in enumerate(self._tokens):
            if s:
                self._by_first.setdefault(s[0], []).append(tid)
        # fast path inside strings: tokens made only of plain string characters
        plain = np.array([len(s) if s and not any(c in '"\\' or ord(c) < 0x20 for c in s) else 0
                          for s in self._tokens], dtype=np.int64)
        self._plain_len = plain
        self._special_in_string = [t for t, s in enumerate(self._tokens) if s and plain[t] == 0]
        self._masks: dict = {}

    # -- compile ------------------------------------------------------------------------------------------
    def _add(self, node) -> int:
        self._nodes.append(node)
        return len(self._nodes) - 1

    def _compile(self, schema: dict) -> int:
        if not isinstance(schema, dict) or schema.get("type") != "object":
            raise InvalidArgument('json schema: the top level must be {"type": "object", "properties": {...}}')
        props = schema.get("properties") or {}
        if not isinstance(props, dict) or not all(isinstance(k, str) and k for k in props):
            raise InvalidArgument("json schema: 'properties' must map non-empty names to schemas")
        if len(props) > MAX_SCHEMA_PROPERTIES:
            raise InvalidArgument(f"json schema: {len(props)} properties; at most {MAX_SCHEMA_PROPERTIES}")
        required_list = schema.get("required") or []
        if not isinstance(required_list, list) or not all(isinstance(r, str) for r in required_list):
            raise InvalidArgument("json schema: 'required' must be a list of property names")
        required = set(required_list)
        unknown = required - set(props)
        if unknown:
            raise InvalidArgument(f"json schema: required names {sorted(unknown)} are not in properties")
        names = list(props)
        done = self._add(_Done())
        key_alts: dict[int, int] = {}    # i -> node choosing the next key among names[i:]
        after_value: dict[int, int] = {}

        def value_node(j: int, after: int) -> tuple[str, int]:
            """(literal prefix that opens the value, node after it)."""
            sub = props[names[j]]
            if not isinstance(sub, dict):
                raise InvalidArgument(f"json schema: property {names[j]!r} must be a schema object")
            if "enum" in sub:
                values = sub["enum"]
                if (not isinstance(values, list) or not values or len(values) > MAX_ENUM_VALUES
                        or not all(isinstance(v, str) for v in values)):
                    raise InvalidArgument(f"json schema: enum of {names[j]!r} must be a list of 1 to "
                                          f"{MAX_ENUM_VALUES} strings")
                return "", self._add(_Lit(tuple((json.dumps(v), after) for v in values)))
            kind = sub.get("type")
            builders = {
                "string": lambda: ('"', self._add(_Str(after, _max_length(sub, names[j])))),
                "integer": lambda: ("", self._add(_Num(True, after))),
                "number": lambda: ("", self._add(_Num(False, after))),
                "boolean": lambda: ("", self._add(_Lit((("true", after), ("false", after))))),
            }
            if not isinstance(kind, str) or kind not in builders:
                raise InvalidArgument(f"json schema: property {names[j]!r} has type {kind!r}; supported: "
                                      f"{sorted(builders)} or an enum of strings")
            return builders[kind]()

        # build from the last property backwards so every node it points to exists
        opener: dict[int, str] = {}
        value: dict[int, int] = {}
        for j in range(len(names) - 1, -1, -1):
            alts = []
            if j + 1 < len(names):
                alts.append((",", key_alts[j + 1]))
            if not required.intersection(names[j + 1:]):
                alts.append(("}", done))
            after_value[j] = self._add(_Lit(tuple(alts)))
            opener[j], value[j] = value_node(j, after_value[j])
            choices = []
            for k in range(j, len(names)):   # the next key: names[j], or a later one skipping optional ones
                choices.append((json.dumps(names[k]) + ":" + opener[k], value[k]))
                if names[k] in required:
                    break
            key_alts[j] = self._add(_Lit(tuple(choices)))
        first = [("{" + text, node) for text, node in self._nodes[key_alts[0]].alts] if names else []
        if not required:
            first.append(("{}", done))
        return self._add(_Lit(tuple(first)))

    # -- run ----------------------------------------------------------------------------------------------
    def _init(self, node: int) -> State:
        kind = self._nodes[node]
        aux = (0, False) if isinstance(kind, _Str) else ("" if isinstance(kind, (_Lit, _Num)) else None)
        return node, aux

    def initial_state(self) -> State:
        return self._init(self._start)

    def _step(self, state: State, ch: str) -> State | None:
        node_id, aux = state
        node = self._nodes[node_id]
        if isinstance(node, _Lit):
            prefix = aux + ch
            alive = [(text, nxt) for text, nxt in node.alts if text.startswith(prefix)]
            if not alive:
                return None
            for text, nxt in alive:
                if text == prefix:
                    return self._init(nxt)
            return node_id, prefix
        if isinstance(node, _Str):
            length, escaped = aux
            if escaped:
                return (node_id, (length + 1, False)) if ch in _ESCAPES else None
            if ch == '"':
                return self._init(node.after)
            if ord(ch) < 0x20 or length + 1 > node.max_len:
                return None
            return node_id, (length, True) if ch == "\\" else (length + 1, False)
        if isinstance(node, _Num):
            if _number_prefix_ok(aux + ch, node.integer):
                return node_id, aux + ch
            if _number_complete(aux):
                return self._step(self._init(node.after), ch)
            return None
        return None   # _Done: nothing may follow

    def _walk(self, state: State, text: str) -> State | None:
        for ch in text:
            state = self._step(state, ch)
            if state is None:
                return None
        return state

    def allowed_token_mask(self, state: State) -> np.ndarray:
        mask = self._masks.get(state)
        if mask is not None:
            return mask
        node = self._nodes[state[0]]
        if isinstance(node, _Str) and not state[1][1]:
            room = node.max_len - state[1][0]
            mask = (self._plain_len > 0) & (self._plain_len <= room)
            candidates = self._special_in_string
        else:
            mask = np.zeros(self.vocab_size, dtype=bool)
            candidates = [t for ch, ids in self._by_first.items() if self._step(state, ch) is not None for t in ids]
        for tid in candidates:
            if self._walk(state, self._tokens[tid]) is not None:
                mask[tid] = True
        if isinstance(node, _Done):
            mask[[e for e in self.eos_ids if e < self.vocab_size]] = True
        if len(self._masks) < _MASK_CACHE_LIMIT:
            self._masks[state] = mask
        return mask

    def advance(self, state: State, token_id: int) -> State:
        if token_id in self.eos_ids and self.is_complete(state):
            return state
        text = self._tokens[int(token_id)] if 0 <= token_id < self.vocab_size else ""
        nxt = self._walk(state, text) if text else None
        if nxt is None:
            raise InvalidArgument(f"token {token_id} ({text!r}) is not allowed by the JSON schema here")
        return nxt

    def is_complete(self, state: State) -> bool:
        return isinstance(self._nodes[state[0]], _Done)


@dataclass(frozen=True)
class ConstraintSpec:
    """A constraint as a request gives it, compiled per model by `compile_constraint` (cached by the engine)."""

    choices: tuple[str, ...] | None = None
    json_schema: str | None = None     # the schema as JSON text (hashable)

    @staticmethod
    def one_of(choices: Sequence[str]) -> "ConstraintSpec":
        return ConstraintSpec(choices=tuple(choices))

    @staticmethod
    def json(schema: dict | str) -> "ConstraintSpec":
        return ConstraintSpec(json_schema=schema if isinstance(schema, str) else json.dumps(schema, sort_keys=False))


def compile_constraint(spec: ConstraintSpec, tokenizer, *, vocab_size: int) -> Constraint:
    if (spec.choices is None) == (spec.json_schema is None):
        raise InvalidArgument("constraint: give exactly one of choices or json_schema")
    if spec.choices is not None:
        return ChoiceConstraint(spec.choices, tokenizer, vocab_size=vocab_size)
    schema = load_schema(spec.json_schema, field="constraint.json_schema")
    from npc_runtime.decode.schema_grammar import SchemaGrammarConstraint, is_flat_schema   # imports this module
    if not is_flat_schema(schema):   # nested objects, arrays, anyOf, const... (tool calls, response_format)
        return SchemaGrammarConstraint(schema, tokenizer, vocab_size=vocab_size)
    return JsonSchemaConstraint(schema, tokenizer, vocab_size=vocab_size)
