"""OpenAI chat completions with the official `openai` SDK: tools / tool_choice, streamed tool calls, structured
output (json_object, json_schema strict), logprobs, n. Calls are checked with an independent validator
(jsonschema): constrained decoding makes them valid by construction, even from the tiny built-in model."""

from __future__ import annotations

import json

import jsonschema
import openai
import pytest

pytestmark = pytest.mark.asyncio

GIVE = {"type": "function", "function": {"name": "give", "description": "Give the player an item", "parameters": {
    "type": "object", "required": ["item", "count"], "additionalProperties": False, "properties": {
        "item": {"type": "string", "enum": ["apple", "sword", "bread"]},
        "count": {"type": "integer", "minimum": 1, "maximum": 3}, "note": {"type": "string"}}}}}
FLEE = {"type": "function", "function": {"name": "flee", "parameters": {
    "type": "object", "properties": {"direction": {"type": "string", "maxLength": 10}}}}}
MESSAGES = [{"role": "system", "content": "You are Bram, the blacksmith."},
            {"role": "user", "content": "Could you give me some bread?"}]
SCHEMAS = {t["function"]["name"]: t["function"]["parameters"] for t in (GIVE, FLEE)}


@pytest.fixture
async def client(server):
    c = openai.AsyncOpenAI(api_key="unused", base_url=f"http://127.0.0.1:{server.http_port}/v1", max_retries=0)
    yield c
    await c.close()


def _check_call(call) -> None:
    assert call.type == "function" and call.id.startswith("call_")
    jsonschema.validate(json.loads(call.function.arguments), SCHEMAS[call.function.name])


async def test_tool_choice_required_is_a_valid_call(client):
    for seed in range(5):
        res = await client.chat.completions.create(model="npc-dialogue", messages=MESSAGES, tools=[GIVE, FLEE],
                                                   tool_choice="required", temperature=1.0, seed=seed,
                                                   max_tokens=200)
        choice = res.choices[0]
        assert choice.finish_reason == "tool_calls" and choice.message.content is None
        (call,) = choice.message.tool_calls
        _check_call(call)


async def test_named_tool_choice_calls_that_function(client):
    res = await client.chat.completions.create(
        model="npc-dialogue", messages=MESSAGES, tools=[GIVE, FLEE], max_tokens=200,
        tool_choice={"type": "function", "function": {"name": "flee"}})
    (call,) = res.choices[0].message.tool_calls
    assert call.function.name == "flee"
    _check_call(call)


async def test_auto_and_none(client):
    res = await client.chat.completions.create(model="npc-dialogue", messages=MESSAGES, tools=[GIVE],
                                               tool_choice="none", max_tokens=30)
    assert res.choices[0].message.tool_calls is None and isinstance(res.choices[0].message.content, str)
    for seed in range(4):
        res = await client.chat.completions.create(model="npc-dialogue", messages=MESSAGES, tools=[GIVE, FLEE],
                                                   temperature=1.0, seed=seed, max_tokens=200)
        message = res.choices[0].message
        if message.tool_calls:     # the model chose a call: it is a valid one
            assert res.choices[0].finish_reason == "tool_calls"
            _check_call(message.tool_calls[0])
        else:                      # or plain text, which never starts like a call
            assert not (message.content or "").startswith("{")


async def test_streamed_tool_call_deltas(client):
    stream = await client.chat.completions.create(model="npc-dialogue", messages=MESSAGES, tools=[GIVE, FLEE],
                                                  tool_choice="required", max_tokens=200, stream=True,
                                                  stream_options={"include_usage": True})
    name, arguments, ids, finish, usage = "", "", set(), None, None
    async for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for choice in chunk.choices:
            for delta in choice.delta.tool_calls or []:
                assert delta.index == 0
                if delta.id:
                    ids.add(delta.id)
                if delta.function and delta.function.name:
                    name += delta.function.name
                if delta.function and delta.function.arguments:
                    arguments += delta.function.arguments
            finish = choice.finish_reason or finish
    assert finish == "tool_calls" and len(ids) == 1 and usage.completion_tokens > 0
    jsonschema.validate(json.loads(arguments), SCHEMAS[name])


async def test_tool_results_round_trip(client):
    first = await client.chat.completions.create(model="npc-dialogue", messages=MESSAGES, tools=[GIVE],
                                                 tool_choice="required", max_tokens=200)
    call = first.choices[0].message.tool_calls[0]
    history = MESSAGES + [first.choices[0].message.model_dump(exclude_none=True),
                          {"role": "tool", "tool_call_id": call.id, "content": "given"}]
    res = await client.chat.completions.create(model="npc-dialogue", messages=history, tools=[GIVE],
                                               tool_choice="none", max_tokens=20)
    assert res.choices[0].finish_reason in ("stop", "length")


async def test_structured_output(client):
    res = await client.chat.completions.create(model="npc-dialogue", messages=MESSAGES, max_tokens=200,
                                               response_format={"type": "json_object"})
    if res.choices[0].finish_reason == "stop":
        assert isinstance(json.loads(res.choices[0].message.content), dict)
    schema = {"type": "object", "additionalProperties": False, "required": ["mood", "reply", "offers"],
              "properties": {"mood": {"type": "string", "enum": ["calm", "angry"]},
                             "reply": {"type": "string", "maxLength": 60},
                             "offers": {"type": "array", "maxItems": 2, "items": {
                                 "type": "object", "required": ["item", "price"], "additionalProperties": False,
                                 "properties": {"item": {"type": "string", "maxLength": 12},
                                                "price": {"type": "integer", "minimum": 0}}}}}}
    for seed in range(3):
        res = await client.chat.completions.create(
            model="npc-dialogue", messages=MESSAGES, max_tokens=300, temperature=1.0, seed=seed,
            response_format={"type": "json_schema", "json_schema": {"name": "npc_reply", "strict": True,
                                                                    "schema": schema}})
        assert res.choices[0].finish_reason == "stop"
        jsonschema.validate(json.loads(res.choices[0].message.content), schema)


async def test_logprobs(client):
    res = await client.chat.completions.create(model="npc-dialogue", messages=MESSAGES, max_tokens=8,
                                               logprobs=True, temperature=0.0)
    entries = res.choices[0].logprobs.content
    assert len(entries) == res.usage.completion_tokens
    assert all(e.logprob <= 0.0 and isinstance(e.token, str) for e in entries)


@pytest.mark.parametrize("stream", [False, True])
async def test_top_logprobs(client, stream):
    """The k most likely tokens at each step, most likely first; greedy decoding picks the first of them."""
    kwargs = dict(model="npc-dialogue", messages=MESSAGES, max_tokens=6, logprobs=True, top_logprobs=3,
                  temperature=0.0)
    if stream:
        entries = []
        async for chunk in await client.chat.completions.create(stream=True, **kwargs):
            if chunk.choices and chunk.choices[0].logprobs and chunk.choices[0].logprobs.content:
                entries += chunk.choices[0].logprobs.content
    else:
        entries = (await client.chat.completions.create(**kwargs)).choices[0].logprobs.content
    assert entries
    for e in entries:
        tops = e.top_logprobs
        assert len(tops) == 3 and [t.logprob for t in tops] == sorted((t.logprob for t in tops), reverse=True)
        assert tops[0].token == e.token and abs(tops[0].logprob - e.logprob) < 1e-4


@pytest.mark.parametrize("kwargs,param", [
    ({"n": 2}, "n"),
    ({"logprobs": True, "top_logprobs": 21}, "top_logprobs"),
    ({"top_logprobs": 3}, "top_logprobs"),
    ({"tools": [GIVE], "tool_choice": {"type": "function", "function": {"name": "steal"}}}, "tool_choice"),
    ({"tools": [{"type": "function", "function": {"name": "bad name!"}}]}, "tools[0].function.name"),
    ({"tool_choice": "required"}, "tool_choice"),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {
        "type": "string", "pattern": "^a"}}}}, None),
    ({"extra_body": {"mirostat": 2}}, "mirostat"),
])
async def test_bad_requests_name_the_field(client, kwargs, param):
    with pytest.raises(openai.BadRequestError) as err:
        await client.chat.completions.create(model="npc-dialogue", messages=MESSAGES, max_tokens=8, **kwargs)
    error = err.value.body if isinstance(err.value.body, dict) else {}
    if param is not None:
        assert error.get("param") == param or param in error.get("message", "")
    else:
        assert "pattern" in error.get("message", "")


async def test_npc_actions_become_tools(client, http):
    listing = (await http.get("/v1/npc/actions", params={"fsm": "merchant", "state": "wary"})).json()
    names = [t["function"]["name"] for t in listing["tools"]]
    assert names == listing["fsms"]["merchant"]["wary"]
    every = (await http.get("/v1/npc/actions")).json()["tools"]
    call_guards = next(t for t in every if t["function"]["name"] == "call_guards")
    assert "reason" in call_guards["function"]["parameters"]["properties"]   # from the merchant's reflex
    res = await client.chat.completions.create(model="npc-dialogue", messages=MESSAGES, tools=listing["tools"],
                                               tool_choice="required", max_tokens=120)
    call = res.choices[0].message.tool_calls[0]
    assert call.function.name in names
    assert (await http.get("/v1/npc/actions", params={"fsm": "merchant", "state": "nope"})).status_code == 404


async def test_llama_unreal_chat_body_unchanged(http):
    from tests.compat.client_bodies import LLAMA_UNREAL_CHAT

    async with http.stream("POST", "/v1/chat/completions", json=LLAMA_UNREAL_CHAT) as res:
        assert res.status_code == 200
        lines = [line async for line in res.aiter_lines() if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    assert json.loads(lines[-2][6:])["choices"][0]["finish_reason"] in ("stop", "length")
