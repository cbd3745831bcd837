"""The general JSON-schema constraint (decode/schema_grammar.py): every complete output of random walks through
the allowed tokens validates against its schema with an independent validator (jsonschema), and keywords the
grammar cannot enforce are refused, never ignored."""

from __future__ import annotations

import json

import jsonschema
import numpy as np
import pytest

from npc_runtime.decode.constraints import ConstraintSpec, JsonSchemaConstraint, compile_constraint
from npc_runtime.decode.package import load_package
from npc_runtime.decode.schema_grammar import SchemaGrammarConstraint
from npc_runtime.decode.tokenizer import TextTokenizer
from npc_runtime.errors import InvalidArgument

CALL = {"anyOf": [
    {"type": "object", "required": ["name", "arguments"], "properties": {
        "name": {"const": "give"}, "arguments": {"type": "object", "required": ["item"], "properties": {
            "item": {"enum": ["apple", "sword", "gold coin"]}, "count": {"type": "integer", "minimum": 1, "maximum": 5},
            "note": {"type": "string", "maxLength": 12}, "tags": {"type": "array", "maxItems": 3,
                                                                  "items": {"type": "string", "maxLength": 6}}}}}},
    {"type": "object", "required": ["name", "arguments"], "properties": {
        "name": {"const": "flee"}, "arguments": {"type": "object", "properties": {
            "direction": {"type": ["string", "null"], "maxLength": 8}}}}}]}
SCHEMAS = {
    "tool_call": CALL,
    "nested": {"type": "object", "required": ["npc", "mood"], "properties": {
        "npc": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string", "maxLength": 10},
                                                                    "age": {"type": "integer", "minimum": 0}}},
        "mood": {"oneOf": [{"const": "calm"}, {"const": "angry"}]},
        "scores": {"type": "array", "minItems": 1, "items": {"type": "number"}}}},
    "refs": {"$defs": {"item": {"type": "object", "required": ["id"], "properties": {"id": {"type": "integer"}}}},
             "type": "object", "required": ["items"],
             "properties": {"items": {"type": "array", "maxItems": 2, "items": {"$ref": "#/$defs/item"}},
                            "ok": {"type": "boolean"}, "none": {"type": "null"}}},
    "any_object": {"type": "object"},
}


@pytest.fixture(scope="module")
def tokenizer(request):
    from npc_runtime.builtin_packages import locate

    return TextTokenizer.from_package(load_package(locate("npc-dialogue")))


def _walk(c, rng, prefer: str | None = None, limit: int = 400):
    """A random path through the allowed tokens; `prefer` first characters are taken when allowed."""
    state, out = c.initial_state(), []
    strings = c._tokens
    for _ in range(limit):
        allowed = np.flatnonzero(c.allowed_token_mask(state))
        assert len(allowed), "a live state always allows some token"
        if any(t in c.eos_ids for t in allowed) and c.is_complete(state):
            break
        pick = [t for t in allowed if prefer and strings[t][:1] == prefer] if not out else []
        token = int(rng.choice(pick or allowed))
        if token in c.eos_ids:
            break
        state = c.advance(state, token)
        out.append(token)
        if c.is_complete(state):
            break
    return out, state


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_every_complete_output_validates(tokenizer, name):
    schema = SCHEMAS[name]
    c = compile_constraint(ConstraintSpec.json(schema), tokenizer, vocab_size=tokenizer.vocab_size)
    assert isinstance(c, SchemaGrammarConstraint)
    rng = np.random.default_rng(7)
    complete = 0
    for _ in range(40):
        tokens, state = _walk(c, rng)
        if not c.is_complete(state):
            continue   # the walk hit its length limit inside a long string or number
        complete += 1
        jsonschema.validate(json.loads(tokenizer.decode(tokens)), schema)
    assert complete >= 20


def test_auto_tool_choice_is_text_or_a_valid_call(tokenizer):
    schema = {"anyOf": CALL["anyOf"] + [{"x-npc-text": True}]}
    c = compile_constraint(ConstraintSpec.json(schema), tokenizer, vocab_size=tokenizer.vocab_size)
    rng = np.random.default_rng(3)
    tokens, state = _walk(c, rng, prefer="{")
    assert c.is_complete(state)
    jsonschema.validate(json.loads(tokenizer.decode(tokens)), CALL)
    tokens, state = _walk(c, rng, prefer="H", limit=20)
    text = tokenizer.decode(tokens)
    assert not text.startswith("{") and not c.is_complete(state)
    assert c.allowed_token_mask(state)[list(c.eos_ids)].all(), "free text may end at any point"


def test_flat_schemas_keep_the_flat_compiler(tokenizer):
    flat = {"type": "object", "properties": {"a": {"type": "string"}, "b": {"enum": ["x", "y"]}}, "required": ["a"]}
    c = compile_constraint(ConstraintSpec.json(flat), tokenizer, vocab_size=tokenizer.vocab_size)
    assert isinstance(c, JsonSchemaConstraint)


@pytest.mark.parametrize("schema,keyword", [
    ({"type": "string", "pattern": "^a$"}, "pattern"),
    ({"type": "string", "format": "date-time"}, "format"),
    ({"type": "object", "properties": {"a": {"$ref": "#"}}}, "recursive"),
    ({"type": "integer", "maximum": 10}, "minimum and maximum"),
    ({"type": "integer", "minimum": 0, "maximum": 10_000}, "range"),
    ({"type": "number", "minimum": 1.5}, "number bounds"),
    ({"allOf": [{"type": "string"}, {"maxLength": 3}]}, "allOf"),
    ({"type": "array", "maxItems": 1000}, "maxItems"),
    ({"type": "object", "properties": {f"p{i}": {"type": "string"} for i in range(65)}}, "properties"),
])
def test_unenforceable_keywords_are_refused(tokenizer, schema, keyword):
    with pytest.raises(InvalidArgument, match=keyword):
        compile_constraint(ConstraintSpec.json(schema), tokenizer, vocab_size=tokenizer.vocab_size)
