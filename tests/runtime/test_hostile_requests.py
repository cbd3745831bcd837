"""Hostile engine requests: a bad constraint in one Tick entry fails that entry only; deep, huge or
non-finite values are INVALID_ARGUMENT naming the field, before any parsing or compiling work."""

from __future__ import annotations

import json
import math

import pytest

from npc_runtime.config import SessionLimits
from npc_runtime.decode.constraints import MAX_SCHEMA_DEPTH, ConstraintSpec, json_depth, load_schema
from npc_runtime.decode.sampling import SamplingParams
from npc_runtime.errors import InvalidArgument
from npc_runtime.sessions import TickRequest
from npc_runtime.sessions.requests import OpenRequest, RequestLimits, check_open, text

PROMPT = "The merchant says:"


def test_one_bad_constraint_fails_only_its_tick_entry(engine, model_name):
    good = engine.open_session(model_name, prompt=PROMPT, limits=SessionLimits(max_new_tokens=4))
    bad = engine.open_session(model_name, prompt=PROMPT, limits=SessionLimits(max_new_tokens=4))
    results = engine.tick([TickRequest(bad, 1e6, 2, new_input=" more", constraint=ConstraintSpec(json_schema="[" * 5000)),
                           TickRequest(good, 1e6, 2)])
    assert isinstance(results[0].error, InvalidArgument) and "entries[0].constraint.json_schema" in str(results[0].error)
    assert "nested 5000 levels" in str(results[0].error)
    assert results[1].error is None and len(results[1].token_ids) == 2


@pytest.mark.parametrize("schema, message", [
    ("[" * 5000, "nested 5000 levels deep"),
    ("x" * 40_000, "at most"),
    ("{nope", "not valid JSON"),
    ("[]", "must be a JSON object"),
])
def test_schema_text_is_measured_before_parsing(schema, message):
    with pytest.raises(InvalidArgument, match=message):
        load_schema(schema, field="constraint.json_schema")
    # brackets inside strings do not count
    assert load_schema('{"a": "' + "[" * 5000 + '"}') == {"a": "[" * 5000}


def test_json_depth_ignores_strings():
    assert json_depth('{"a": [1, {"b": "]]]]{{{{"}]}') == 3
    assert json_depth("[" * (MAX_SCHEMA_DEPTH + 1)) == MAX_SCHEMA_DEPTH + 1


@pytest.mark.parametrize("schema", [
    {"type": "object", "properties": {"a": {"type": "string", "maxLength": "7"}}},
    {"type": "object", "properties": {"a": {"type": "string", "maxLength": 10**12}}},
    {"type": "object", "properties": {"a": {"enum": "abc"}}},
    {"type": "object", "properties": {"a": {"type": "string"}}, "required": [["a"]]},
    {"type": "object", "properties": {f"p{i}": {"type": "string"} for i in range(500)}},
])
def test_malformed_schemas_are_invalid_argument(engine, model_name, schema):
    with pytest.raises(InvalidArgument):
        engine.open_session(model_name, prompt=PROMPT, constraint=ConstraintSpec(json_schema=json.dumps(schema)))


@pytest.mark.parametrize("field, sampling", [
    ("temperature", SamplingParams(temperature=math.nan)),
    ("top_p", SamplingParams(top_p=math.inf)),
    ("repetition_penalty", SamplingParams(repetition_penalty=-math.inf)),
])
def test_non_finite_sampling_is_refused(field, sampling):
    with pytest.raises(InvalidArgument, match=f"sampling.{field} must be a finite number"):
        check_open(OpenRequest(prompt="hi", sampling=sampling), RequestLimits())


def test_tick_budget_nan_is_refused(engine, model_name):
    sid = engine.open_session(model_name, prompt=PROMPT)
    (result,) = engine.tick([TickRequest(sid, math.nan, 2)])
    assert isinstance(result.error, InvalidArgument) and "entries[0].budget_ms" in str(result.error)


def test_unpaired_surrogates_are_refused_naming_the_field():
    with pytest.raises(InvalidArgument, match=r"messages\[0\].content has an unpaired surrogate"):
        text("ok \ud800", "messages[0].content", RequestLimits())
    assert text("caf\u00e9 \U0001F600", "prompt", RequestLimits()) == "caf\u00e9 \U0001F600"
