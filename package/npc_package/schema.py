"""The manifest's JSON Schema (manifest.schema.json, beside this file) and the small validator that applies it.

The validator implements the subset of JSON Schema 2020-12 the schema uses (type, enum, const, required,
properties, additionalProperties, propertyNames, minProperties, items, minItems, minimum, maximum,
minLength, maxLength, pattern, allOf, if/then, local $ref), with the standard meaning: a keyword applies
only to instances of its type; 1.0 is an integer, true is not. It stops at the first violation and
raises one PackageError naming the field: dotted path, `[i]` for list items; an entry of a map whose
keys are data (`files`, `variants`) is reported at the map.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from .errors import PackageError

SCHEMA_FILE = Path(__file__).resolve().parent / "manifest.schema.json"


@lru_cache(maxsize=1)
def manifest_schema() -> dict:
    """The manifest's JSON Schema, as a dict (read once)."""
    return json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "integer" if value.is_integer() else "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _is(value: Any, wanted: str) -> bool:
    actual = _json_type(value)
    return actual == wanted or (wanted == "number" and actual == "integer")


def _label(path: str) -> str:
    return path or "the manifest"


class _Validator:
    def __init__(self, root: dict):
        self.root = root

    def fail(self, node: dict, path: str, message: str, *, rule: str | None = None) -> None:
        rule = rule or node.get("x-rule", "value")
        hint = node.get("x-message")
        text = f"manifest.json {_label(path)}: {message}" + (f"; {hint}" if hint and rule not in ("type", "missing") else "")
        raise PackageError(text, rule=rule, field=path)

    def ref(self, ref: str) -> dict:
        if not ref.startswith("#/"):
            raise ValueError(f"only local $ref are supported, got {ref}")  # a schema bug, not input
        node: Any = self.root
        for part in ref[2:].split("/"):
            node = node[part]
        return node

    def check(self, value: Any, node: dict, path: str) -> None:
        if "type" in node:
            types = node["type"] if isinstance(node["type"], list) else [node["type"]]
            if not any(_is(value, t) for t in types):
                self.fail(node, path, f"must be {' or '.join(types)}, got {_json_type(value)}", rule="type")
        if "$ref" in node:
            self.check(value, self.ref(node["$ref"]), path)
        if "const" in node and value != node["const"]:
            self.fail(node, path, f"must be {node['const']!r}, got {value!r}")
        if "enum" in node and value not in node["enum"]:
            self.fail(node, path, f"{value!r} is not one of {', '.join(map(repr, node['enum']))}")
        kind = _json_type(value)
        if kind in ("integer", "number"):
            self._number(value, node, path)
        elif kind == "string":
            self._string(value, node, path)
        elif kind == "array":
            self._array(value, node, path)
        elif kind == "object":
            self._object(value, node, path)
        for sub in node.get("allOf", ()):
            self.check(value, sub, path)
        if "if" in node and self.passes(value, node["if"], path):
            self.check(value, node.get("then", {}), path)

    def passes(self, value: Any, node: dict, path: str) -> bool:
        try:
            self.check(value, node, path)
        except PackageError:
            return False
        return True

    def _number(self, value, node, path):
        if "minimum" in node and value < node["minimum"]:
            self.fail(node, path, f"{value!r} is below the minimum {node['minimum']}")
        if "maximum" in node and value > node["maximum"]:
            self.fail(node, path, f"{value!r} is above the maximum {node['maximum']}")

    def _string(self, value, node, path):
        if len(value) < node.get("minLength", 0):
            self.fail(node, path, "must not be empty" if node.get("minLength") == 1 else
                      f"is shorter than {node['minLength']} characters")
        if "maxLength" in node and len(value) > node["maxLength"]:
            self.fail(node, path, f"is longer than {node['maxLength']} characters")
        if "pattern" in node and not re.search(node["pattern"], value):
            self.fail(node, path, f"{value!r} is malformed")

    def _array(self, value, node, path):
        if len(value) < node.get("minItems", 0):
            self.fail(node, path, f"needs at least {node['minItems']} item(s)")
        if "items" in node:
            for i, item in enumerate(value):
                self.check(item, node["items"], f"{path}[{i}]")

    def _object(self, value, node, path):
        for key in node.get("required", ()):
            if key not in value:
                self.fail(node, _join(path, key), "is required but absent", rule="missing")
        if len(value) < node.get("minProperties", 0):
            self.fail(node, path, "must not be empty")
        props = node.get("properties", {})
        for key, sub in props.items():
            if key in value:
                self.check(value[key], sub, _join(path, key))
        names, extra = node.get("propertyNames"), node.get("additionalProperties")
        for key in value:
            if names is not None:
                self._key(key, names, path)
            if key not in props and isinstance(extra, dict):
                self._entry(key, value[key], extra, path)

    def _key(self, key: str, node: dict, path: str) -> None:
        if not self.passes(key, node, path):
            target = self.ref(node["$ref"]) if "$ref" in node else node
            self.fail(target, path, f"key {key!r} {target.get('x-message', 'is not allowed')}",
                      rule=target.get("x-rule", "value"))

    def _entry(self, key: str, item: Any, node: dict, path: str) -> None:
        try:
            self.check(item, node, path)
        except PackageError as exc:  # name the entry's key in the message (the field stays the map's path)
            detail = exc.detail.split(": ", 1)[-1]
            label = f"{path}[{key!r}]{exc.field[len(path):]}"
            raise PackageError(f"manifest.json {label}: {detail}", rule=exc.rule, field=exc.field) from None


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def validate(manifest: Any) -> None:
    """Raise PackageError unless `manifest` (parsed JSON) follows the schema."""
    schema = manifest_schema()
    _Validator(schema).check(manifest, schema, "")
