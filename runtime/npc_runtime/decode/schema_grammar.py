"""The general JSON-schema constraint: nested objects, arrays, anyOf / oneOf, const, enum of any JSON value,
null, type lists, local $ref, and free text as one alternative.

`decode/constraints.py` keeps its fast flat-object compiler for the schemas it covers (`is_flat_schema`);
every other schema is compiled here. Tool calls (`serving/openai_tools.py`) are one schema: an anyOf over
`{"name": <const>, "arguments": <the function's parameters>}`; `tool_choice: "auto"` adds the alternative
`{"x-npc-text": true}`: plain text that does not start with "{" (so the first character decides which
branch the output is on, and a reply that starts with "{" is a tool call).

The schema is compiled into a graph of character-level nodes (literal, string body, number, choice, free
text, done); a runtime state is the set of (node, aux) positions still alive (an NFA simulation), so
alternatives need no common-prefix factoring. Output is compact JSON, properties in schema order (optional
ones may be skipped), no whitespace. The language is regular: recursion ($ref cycles) is refused, nesting is
bounded (MAX_NESTING), "any value" ({} / json_object) is JSON of bounded depth (ANY_DEPTH).

Refused with InvalidArgument naming the keyword (never silently ignored, so every output validates):
pattern, format, patternProperties, not, if/then/else, allOf with more than one schema, uniqueItems,
number bounds other than minimum 0, integer bounds spanning more than MAX_INTEGER_SPAN values.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from npc_runtime.decode.constraints import (_DEFAULT_MAX_STRING, _ESCAPES, MAX_STRING_LENGTH, Constraint,
                                            _number_complete, _number_prefix_ok)
from npc_runtime.errors import InvalidArgument

MAX_NESTING = 12          # schema levels (objects, arrays, anyOf) compiled
MAX_NODES = 20_000        # graph size: a schema that expands past it is refused
MAX_PROPERTIES = 64       # of one object (optional ones cost O(properties^2) alternatives)
MAX_UNROLL = 16           # minItems / maxItems up to this are exact
MAX_INTEGER_SPAN = 512    # an integer with both bounds becomes a list of literals
ANY_DEPTH = 3             # nesting of arrays/objects inside an "any JSON value"
ANY_KEY_LENGTH = 64
TEXT_KEYWORD = "x-npc-text"
_MASK_CACHE_LIMIT = 4096

_IGNORED = frozenset({"title", "description", "default", "examples", "$schema", "$id", "$comment", "strict",
                      "additionalProperties", "$defs", "definitions", "deprecated", "readOnly", "writeOnly"})
_REFUSED = ("pattern", "format", "patternProperties", "not", "if", "then", "else", "uniqueItems",
            "contains", "propertyNames", "minProperties", "maxProperties", "dependentRequired",
            "dependentSchemas", "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "prefixItems")
_FLAT_TOP = frozenset({"type", "properties", "required", "title", "description", "additionalProperties"})
_FLAT_PROPERTY = frozenset({"type", "enum", "maxLength", "title", "description"})


def is_flat_schema(schema: dict) -> bool:
    """True when `JsonSchemaConstraint` (the flat compiler) covers `schema` exactly: an object of string /
    enum-of-strings / integer / number / boolean properties with nothing it would ignore."""
    props = schema.get("properties")
    if schema.get("type") != "object" or not set(schema) <= _FLAT_TOP or not isinstance(props, dict):
        return False
    if schema.get("additionalProperties", False) not in (False, True):
        return False
    for sub in props.values():
        if not isinstance(sub, dict) or not set(sub) <= _FLAT_PROPERTY:
            return False
        if "enum" in sub:
            if not isinstance(sub["enum"], list) or not all(isinstance(v, str) for v in sub["enum"]):
                return False
        elif sub.get("type") not in ("string", "integer", "number", "boolean"):
            return False
    return True


# ------------------------------------------------------------------------------------------------ nodes

@dataclass(frozen=True)
class _Lit:
    text: str
    next: int


class _Alt:
    __slots__ = ("options",)

    def __init__(self, options=()) -> None:
        self.options = list(options)   # filled later for loops (arrays, any-objects)


@dataclass(frozen=True)
class _Str:
    next: int
    min_len: int
    max_len: int


@dataclass(frozen=True)
class _Num:
    integer: bool
    nonneg: bool
    next: int


@dataclass(frozen=True)
class _Text:     # free text whose first character is not "{"; ends at EOS only
    pass


@dataclass(frozen=True)
class _Done:
    pass


class _Compiler:
    def __init__(self, root: dict) -> None:
        self.root = root
        self.nodes: list = []
        self._refs: list[str] = []

    def add(self, node) -> int:
        if len(self.nodes) >= MAX_NODES:
            raise InvalidArgument(f"json schema: expands past {MAX_NODES} grammar nodes; simplify it")
        self.nodes.append(node)
        return len(self.nodes) - 1

    def lit(self, text: str, nxt: int) -> int:
        return self.add(_Lit(text, nxt)) if text else nxt

    def alt(self, options) -> int:
        return self.add(_Alt(options))

    # -- values ---------------------------------------------------------------------------------------
    def value(self, s, nxt: int, depth: int, where: str) -> int:
        if depth > MAX_NESTING:
            raise InvalidArgument(f"json schema: {where} is nested more than {MAX_NESTING} levels deep")
        if s is True or s == {}:
            return self.any_value(nxt, ANY_DEPTH)
        if not isinstance(s, dict):
            raise InvalidArgument(f"json schema: {where} must be a schema object")
        if "$ref" in s:
            return self.ref(s["$ref"], nxt, depth, where)
        for key in _REFUSED:
            if key in s:
                raise InvalidArgument(f"json schema: {where}: keyword {key!r} is not supported (docs/compat.md)")
        if s.get(TEXT_KEYWORD) is True:
            return self.add(_Text())
        if "const" in s:
            return self.lit(_dump(s["const"]), nxt)
        if "enum" in s:
            values = s["enum"]
            if not isinstance(values, list) or not values or len(values) > 256:
                raise InvalidArgument(f"json schema: {where}.enum must be a list of 1 to 256 values")
            return self.alt([self.lit(_dump(v), nxt) for v in values])
        for key in ("anyOf", "oneOf", "allOf"):
            if key in s:
                subs = s[key]
                if not isinstance(subs, list) or not subs:
                    raise InvalidArgument(f"json schema: {where}.{key} must be a non-empty list of schemas")
                if key == "allOf" and len(subs) != 1:
                    raise InvalidArgument(f"json schema: {where}.allOf with more than one schema is not supported")
                rest = {k: v for k, v in s.items() if k != key}
                return self.alt([self.value({**rest, **sub} if isinstance(sub, dict) else sub, nxt, depth + 1,
                                            f"{where}.{key}[{i}]") for i, sub in enumerate(subs)])
        kind = s.get("type")
        if kind is None:
            kind = "object" if "properties" in s else "array" if "items" in s else None
        if kind is None:
            return self.any_value(nxt, ANY_DEPTH)
        if isinstance(kind, list):
            if not kind:
                raise InvalidArgument(f"json schema: {where}.type is an empty list")
            return self.alt([self.value({**s, "type": k}, nxt, depth + 1, where) for k in kind])
        if s.get("nullable") is True:
            return self.alt([self.lit("null", nxt), self.value({**s, "nullable": False}, nxt, depth, where)])
        builders = {"string": self.string, "integer": self.integer, "number": self.number,
                    "boolean": lambda s_, n, d, w: self.alt([self.lit("true", n), self.lit("false", n)]),
                    "null": lambda s_, n, d, w: self.lit("null", n),
                    "object": self.object, "array": self.array}
        build = builders.get(kind) if isinstance(kind, str) else None
        if build is None:
            raise InvalidArgument(f"json schema: {where}.type {kind!r} is not a JSON schema type")
        return build(s, nxt, depth, where)

    def ref(self, ref, nxt: int, depth: int, where: str) -> int:
        if not isinstance(ref, str) or not (ref == "#" or ref.startswith("#/")):
            raise InvalidArgument(f"json schema: {where}.$ref must point inside the schema (#/$defs/...)")
        if ref in self._refs or ref == "#":   # the root is being compiled: a reference to it recurses
            raise InvalidArgument(f"json schema: {where}.$ref {ref!r} is recursive; recursion is not supported")
        target = self.root
        for part in ref[2:].split("/") if ref != "#" else ():
            part = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(target, dict) or part not in target:
                raise InvalidArgument(f"json schema: {where}.$ref {ref!r} does not resolve")
            target = target[part]
        self._refs.append(ref)
        try:
            return self.value(target, nxt, depth + 1, ref)
        finally:
            self._refs.pop()

    def string(self, s: dict, nxt: int, depth: int, where: str) -> int:
        max_len = s.get("maxLength", _DEFAULT_MAX_STRING)
        min_len = s.get("minLength", 0)
        for name, v in (("maxLength", max_len), ("minLength", min_len)):
            if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= MAX_STRING_LENGTH:
                raise InvalidArgument(f"json schema: {where}.{name} must be an integer in [0, {MAX_STRING_LENGTH}]")
        if min_len > max_len or max_len == 0 and min_len:
            raise InvalidArgument(f"json schema: {where}: minLength is above maxLength")
        return self.lit('"', self.add(_Str(nxt, min_len, max_len)))

    def integer(self, s: dict, nxt: int, depth: int, where: str) -> int:
        low, high = s.get("minimum"), s.get("maximum")
        for name, v in (("minimum", low), ("maximum", high)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
                raise InvalidArgument(f"json schema: {where}.{name} must be a number")
        if low is not None and high is not None:
            lo, hi = int(np.ceil(low)), int(np.floor(high))
            if hi < lo:
                raise InvalidArgument(f"json schema: {where}: minimum is above maximum")
            if hi - lo + 1 > MAX_INTEGER_SPAN:
                raise InvalidArgument(f"json schema: {where}: an integer range of more than {MAX_INTEGER_SPAN} "
                                      "values is not supported (drop maximum, or use minimum 0 alone)")
            return self.alt([self.lit(str(v), nxt) for v in range(lo, hi + 1)])
        if high is not None or (low is not None and low != 0):
            raise InvalidArgument(f"json schema: {where}: integer bounds other than minimum 0 need both "
                                  "minimum and maximum")
        return self.add(_Num(True, low == 0, nxt))

    def number(self, s: dict, nxt: int, depth: int, where: str) -> int:
        low, high = s.get("minimum"), s.get("maximum")
        if high is not None or (low is not None and low != 0):
            raise InvalidArgument(f"json schema: {where}: number bounds other than minimum 0 are not supported")
        return self.add(_Num(False, low == 0, nxt))

    def object(self, s: dict, nxt: int, depth: int, where: str) -> int:
        props = s.get("properties")
        if props is None:
            if s.get("additionalProperties") is False:
                return self.lit("{}", nxt)
            return self.any_object(nxt, ANY_DEPTH)
        if not isinstance(props, dict) or not all(isinstance(k, str) and k for k in props):
            raise InvalidArgument(f"json schema: {where}.properties must map non-empty names to schemas")
        required = s.get("required") or []
        if (not isinstance(required, list) or not all(isinstance(r, str) for r in required)
                or not set(required) <= set(props)):
            raise InvalidArgument(f"json schema: {where}.required must list names of its properties")
        names = list(props)
        if len(names) > MAX_PROPERTIES:
            raise InvalidArgument(f"json schema: {where} has {len(names)} properties; at most {MAX_PROPERTIES}")
        if not names:
            return self.lit("{}", nxt)
        # from the last property backwards, so every node a choice points to exists
        entry: dict[int, int] = {}
        for j in range(len(names) - 1, -1, -1):
            later_required = bool(set(required) & set(names[j + 1:]))
            after = [self.lit("}", nxt)] if not later_required else []
            if j + 1 < len(names):
                after.append(self.lit(",", self._keys(names, j + 1, required, entry)))
            entry[j] = self.value(props[names[j]], self.alt(after), depth + 1, f"{where}.properties.{names[j]}")
        first = [self._keys(names, 0, required, entry)]
        if not required:
            first.append(self.lit("}", nxt))
        return self.lit("{", self.alt(first))

    def _keys(self, names: list[str], j: int, required: list, entry: dict[int, int]) -> int:
        """The next key among names[j:] (optional ones may be skipped up to the first required one)."""
        options = []
        for k in range(j, len(names)):
            options.append(self.lit(_dump(names[k]) + ":", entry[k]))
            if names[k] in required:
                break
        return self.alt(options)

    def array(self, s: dict, nxt: int, depth: int, where: str) -> int:
        items = s.get("items", {})
        low, high = s.get("minItems", 0), s.get("maxItems")
        for name, v in (("minItems", low), ("maxItems", high)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= MAX_UNROLL):
                raise InvalidArgument(f"json schema: {where}.{name} must be an integer in [0, {MAX_UNROLL}]")
        if high is not None and high < low:
            raise InvalidArgument(f"json schema: {where}: minItems is above maxItems")
        close = self.lit("]", nxt)
        if high == 0:
            return self.lit("[]", nxt)
        item = lambda after: self.value(items, after, depth + 1, f"{where}.items")  # noqa: E731
        if high is None:
            loop = self.add(_Alt())   # after an item once minItems are there: "," item, or "]"
            self.nodes[loop].options = [close, self.lit(",", item(loop))]
            tail = loop
            top = max(low, 1)
        else:
            tail = close
            top = high
        # after[k]: what may follow the k-th item (1-based), built from the last one backwards
        after_k = tail
        for k in range(top - 1, 0, -1):
            options = [self.lit(",", item(after_k))]
            if k >= low:
                options.append(close)
            after_k = self.alt(options)
        first = [item(after_k)]
        if low == 0:
            first.append(close)
        return self.lit("[", self.alt(first))

    # -- any JSON -------------------------------------------------------------------------------------
    def any_value(self, nxt: int, depth: int) -> int:
        options = [self.lit('"', self.add(_Str(nxt, 0, _DEFAULT_MAX_STRING))), self.add(_Num(False, False, nxt)),
                   self.lit("true", nxt), self.lit("false", nxt), self.lit("null", nxt)]
        if depth > 0:
            options.append(self.any_object(nxt, depth - 1))
            loop = self.add(_Alt())
            self.nodes[loop].options = [self.lit("]", nxt), self.lit(",", self.any_value(loop, depth - 1))]
            options.append(self.lit("[", self.alt([self.lit("]", nxt), self.any_value(loop, depth - 1)])))
        return self.alt(options)

    def any_object(self, nxt: int, depth: int) -> int:
        sep = self.add(_Alt())
        key = self.lit('"', self.add(_Str(self.lit(":", self.any_value(sep, depth)), 1, ANY_KEY_LENGTH)))
        self.nodes[sep].options = [self.lit("}", nxt), self.lit(",", key)]
        return self.lit("{", self.alt([self.lit("}", nxt), key]))


def _dump(value) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


# ---------------------------------------------------------------------------------------------- runtime

class SchemaGrammarConstraint(Constraint):
    """A compiled schema; state: a frozenset of live (node, aux) positions."""

    def __init__(self, schema: dict, tokenizer, *, vocab_size: int) -> None:
        if not isinstance(schema, dict):
            raise InvalidArgument("json schema: must be a JSON object")
        compiler = _Compiler(schema)
        done = compiler.add(_Done())
        self._start_node = compiler.value(schema, done, 0, "schema")
        self._nodes = compiler.nodes
        self.schema = schema
        self.vocab_size = vocab_size
        self.eos_ids = tuple(tokenizer.eos)
        strings = tokenizer.token_strings()[:vocab_size]
        raw = list(strings) + [""] * (vocab_size - len(strings))
        # inside JSON, tokens without text or with a partial UTF-8 character are never allowed
        self._tokens = [s if s and "\ufffd" not in s else "" for s in raw]
        self._has_text = np.array([bool(s) for s in raw], dtype=bool)
        self._by_first: dict[str, list[int]] = {}
        for tid, s in enumerate(self._tokens):
            if s:
                self._by_first.setdefault(s[0], []).append(tid)
        self._plain_len = np.array([len(s) if s and not any(c in '"\\' or ord(c) < 0x20 for c in s) else 0
                                    for s in self._tokens], dtype=np.int64)
        self._special_in_string = [t for t, s in enumerate(self._tokens) if s and self._plain_len[t] == 0]
        self._eos_mask = np.zeros(vocab_size, dtype=bool)
        self._eos_mask[[e for e in self.eos_ids if e < vocab_size]] = True
        self._masks: dict = {}
        self._initial = self._closure([(self._start_node, None)])

    # -- state moves ----------------------------------------------------------------------------------
    def _closure(self, items) -> frozenset:
        out, stack, seen = set(), list(items), set()
        while stack:
            node_id, aux = stack.pop()
            if (node_id, aux) in seen:
                continue
            seen.add((node_id, aux))
            node = self._nodes[node_id]
            if isinstance(node, _Alt):
                stack.extend((o, None) for o in node.options)
            elif isinstance(node, _Lit):
                out.add((node_id, 0 if aux is None else aux))
            elif isinstance(node, _Str):
                out.add((node_id, (0, False) if aux is None else aux))
            elif isinstance(node, _Num):
                out.add((node_id, "" if aux is None else aux))
            elif isinstance(node, _Text):
                out.add((node_id, bool(aux)))
            else:
                out.add((node_id, None))
        return frozenset(out)

    def _step_item(self, node_id: int, aux, ch: str) -> list:
        node = self._nodes[node_id]
        if isinstance(node, _Lit):
            if node.text[aux] != ch:
                return []
            return [(node.next, None)] if aux + 1 == len(node.text) else [(node_id, aux + 1)]
        if isinstance(node, _Str):
            length, escaped = aux
            if escaped:
                return [(node_id, (length + 1, False))] if ch in _ESCAPES and length < node.max_len else []
            if ch == '"':
                return [(node.next, None)] if length >= node.min_len else []
            if ord(ch) < 0x20 or length + 1 > node.max_len:
                return []
            return [(node_id, (length, True) if ch == "\\" else (length + 1, False))]
        if isinstance(node, _Num):
            out = []
            if not (node.nonneg and ch == "-") and _number_prefix_ok(aux + ch, node.integer):
                out.append((node_id, aux + ch))
            if aux and _number_complete(aux):
                for item in self._closure([(node.next, None)]):
                    out.extend(self._step_item(*item, ch))
            return out
        if isinstance(node, _Text):
            return [(node_id, True)] if aux or ch != "{" else []
        return []

    def _step(self, state: frozenset, ch: str) -> frozenset:
        moved = []
        for node_id, aux in state:
            moved.extend(self._step_item(node_id, aux, ch))
        return self._closure(moved) if moved else frozenset()

    def _walk(self, state: frozenset, text: str) -> frozenset:
        for ch in text:
            state = self._step(state, ch)
            if not state:
                break
        return state

    def _free(self, state: frozenset) -> bool:
        """Free text has started: every token may follow (the JSON branch died at the first character)."""
        return any(aux is True and isinstance(self._nodes[n], _Text) for n, aux in state)

    def _may_end(self, state: frozenset) -> bool:
        return self._free(state) or any(isinstance(self._nodes[n], _Done) for n, _ in state)

    # -- Constraint -----------------------------------------------------------------------------------
    def initial_state(self) -> frozenset:
        return self._initial

    def allowed_token_mask(self, state: frozenset) -> np.ndarray:
        mask = self._masks.get(state)
        if mask is not None:
            return mask
        if self._free(state):
            mask = self._has_text | self._eos_mask
        else:
            (only,) = state if len(state) == 1 else (None,)
            node = self._nodes[only[0]] if only is not None else None
            if isinstance(node, _Str) and not only[1][1]:
                room = node.max_len - only[1][0]
                mask = (self._plain_len > 0) & (self._plain_len <= room)
                candidates = self._special_in_string
            else:
                mask = np.zeros(self.vocab_size, dtype=bool)
                candidates = [t for ch, ids in self._by_first.items() if self._step(state, ch) for t in ids]
            for tid in candidates:
                if self._walk(state, self._tokens[tid]):
                    mask[tid] = True
            if self._may_end(state):
                mask |= self._eos_mask
        if len(self._masks) < _MASK_CACHE_LIMIT:
            self._masks[state] = mask
        return mask

    def advance(self, state: frozenset, token_id: int) -> frozenset:
        if token_id in self.eos_ids and self._may_end(state):
            return state
        if self._free(state) and 0 <= token_id < self.vocab_size and self._has_text[token_id]:
            return state
        text = self._tokens[int(token_id)] if 0 <= token_id < self.vocab_size else ""
        nxt = self._walk(state, text) if text else frozenset()
        if not nxt:
            raise InvalidArgument(f"token {token_id} ({text!r}) is not allowed by the JSON schema here")
        return nxt

    def is_complete(self, state: frozenset) -> bool:
        return all(isinstance(self._nodes[n], _Done) for n, _ in state)
