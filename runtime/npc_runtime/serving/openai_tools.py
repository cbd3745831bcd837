"""OpenAI chat completions with `tools`, `tool_choice`, `response_format` and `logprobs`: constrained decoding.

Scheme (docs/compat.md): every structured request is ONE JSON schema given to the engine's constrained
decoder (`decode/schema_grammar.py`), so what comes out is valid by construction:

* a tool call is the JSON `{"name": "<declared function>", "arguments": <object valid against its parameters>}`;
  the schema is an anyOf over the declared functions, each `{"name": {"const": ...}, "arguments": parameters}`;
* `tool_choice`: "required" -> that anyOf; a named function -> its one branch; "auto" (the default when tools
  are given) -> the anyOf plus free text that does not start with "{" (the first character decides: "{" is a
  call, anything else is a plain reply); "none" -> no tool schema (plain text, or the response_format);
* `response_format`: `json_object` -> any JSON object (bounded depth); `json_schema` -> its schema (strict or
  not: the output always follows it; keywords the grammar cannot enforce are a 400 naming them);
* one call per reply (`parallel_tool_calls` is accepted, at most one call is made), `n` stays 1.

The tools are described to the model in a system message (compact signatures), since chat templates of
small models have no tools section. Replies: `message.tool_calls` with `finish_reason: "tool_calls"`; streams
send OpenAI's deltas (`tool_calls[0]` with id, name and empty arguments first, then argument pieces).
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from npc_runtime.config import SessionLimits
from npc_runtime.decode.constraints import ConstraintSpec
from npc_runtime.decode.sampling import MAX_TOP_LOGPROBS, SamplingParams
from npc_runtime.errors import InvalidArgument
from npc_runtime.serving import status
from npc_runtime.sessions.requests import GenerateRequest, OpenRequest
from npc_runtime.sessions.session import FinishReason

MAX_TOOLS = 64
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_EMPTY_PARAMETERS = {"type": "object", "properties": {}}
_FINISH = {FinishReason.LENGTH: "length", FinishReason.CONTEXT_FULL: "length"}   # else "stop"


def _invalid(message: str, param: str) -> InvalidArgument:
    error = InvalidArgument(message)
    error.param = param
    return error


@dataclass
class ChatPlan:
    """What a structured chat request asks of the decoder, and how to read its output."""
    tools: dict[str, dict] = field(default_factory=dict)   # name -> parameters schema
    schema: dict | None = None        # the constraint (None: free text)
    tool_mode: bool = False           # output starting with "{" is a tool call
    logprobs: bool = False
    top_logprobs: int = 0
    system_note: str = ""

    def constraint(self) -> ConstraintSpec | None:
        return None if self.schema is None else ConstraintSpec.json(self.schema)


# llama-server / OpenAI sampling extensions game clients send (Llama-Unreal, LLMUnity): accepted when off
_OFF = {"grammar": ("", None), "mirostat": (0, None), "frequency_penalty": (0, 0.0, None),
        "presence_penalty": (0, 0.0, None), "logit_bias": (None, {}, [])}


def _unsupported_extension(body) -> str | None:
    extra = body.model_extra or {}
    return next((name for name, off in _OFF.items() if name in extra and extra[name] not in off), None)


def wants_plan(body) -> bool:
    """Does the request use a field the plain chat path does not handle (or one to refuse)?"""
    return bool(body.tools or body.response_format or body.logprobs or body.top_logprobs
                or body.tool_choice not in (None, "none")
                or _unsupported_extension(body))


def make_plan(body) -> ChatPlan:
    plan = ChatPlan(logprobs=bool(body.logprobs), top_logprobs=int(body.top_logprobs or 0))
    refused = _unsupported_extension(body)
    if refused:
        raise _invalid(f"{refused} is not supported (leave it off; docs/compat.md)", refused)
    if body.top_logprobs:
        if not body.logprobs:
            raise _invalid("top_logprobs needs logprobs: true", "top_logprobs")
        if not isinstance(body.top_logprobs, int) or not 0 <= body.top_logprobs <= MAX_TOP_LOGPROBS:
            raise _invalid(f"top_logprobs must be an integer in [0, {MAX_TOP_LOGPROBS}]", "top_logprobs")
    for i, tool in enumerate(body.tools or []):
        where = f"tools[{i}]"
        if not isinstance(tool, dict) or tool.get("type", "function") != "function":
            raise _invalid(f"{where}.type must be \"function\"", where)
        fn = tool.get("function")
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not _NAME.match(fn["name"]):
            raise _invalid(f"{where}.function.name must be 1-64 letters, digits, '_' or '-'", f"{where}.function.name")
        params = fn.get("parameters", _EMPTY_PARAMETERS)
        if not isinstance(params, dict):
            raise _invalid(f"{where}.function.parameters must be a JSON schema object", f"{where}.function.parameters")
        if fn["name"] in plan.tools:
            raise _invalid(f"{where}.function.name {fn['name']!r} is declared twice", f"{where}.function.name")
        plan.tools[fn["name"]] = _bounded_strings(params or _EMPTY_PARAMETERS)
    if len(plan.tools) > MAX_TOOLS:
        raise _invalid(f"tools has {len(plan.tools)} functions; at most {MAX_TOOLS}", "tools")
    choice = _tool_choice(body.tool_choice, plan.tools)
    response = _response_schema(body.response_format)
    if choice in ("auto", "required") or isinstance(choice, str) and choice.startswith("function:"):
        if choice == "auto" and response is not None:
            raise _invalid("response_format with tools and tool_choice \"auto\" is ambiguous (both are JSON); "
                           "use tool_choice \"required\" or \"none\"", "response_format")
        names = list(plan.tools) if choice in ("auto", "required") else [choice.split(":", 1)[1]]
        calls = [{"type": "object", "properties": {"name": {"const": n}, "arguments": plan.tools[n]},
                  "required": ["name", "arguments"]} for n in names]
        if choice == "auto":
            calls.append({"x-npc-text": True})
        plan.schema = calls[0] if len(calls) == 1 else {"anyOf": calls}
        plan.tool_mode = True
        plan.system_note = _describe(plan.tools, names, choice)
    else:
        plan.schema = response
    return plan


def _tool_choice(choice, tools: dict) -> str:
    if choice is None:
        return "auto" if tools else "none"
    if isinstance(choice, str):
        if choice not in ("auto", "none", "required"):
            raise _invalid('tool_choice must be "auto", "none", "required" or {"type": "function", ...}',
                           "tool_choice")
        if choice != "none" and not tools:
            raise _invalid(f"tool_choice {choice!r} needs tools", "tool_choice")
        return choice
    name = (choice.get("function") or {}).get("name") if isinstance(choice, dict) else None
    if not isinstance(choice, dict) or choice.get("type") != "function" or not isinstance(name, str):
        raise _invalid('tool_choice object must be {"type": "function", "function": {"name": ...}}', "tool_choice")
    if name not in tools:
        raise _invalid(f"tool_choice names {name!r}, which is not in tools", "tool_choice")
    return f"function:{name}"


def _response_schema(fmt) -> dict | None:
    if fmt is None:
        return None
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "object"}
    if kind == "json_schema":
        spec = fmt.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if not isinstance(schema, dict):
            raise _invalid("response_format.json_schema.schema must be a JSON schema object",
                           "response_format.json_schema.schema")
        return schema
    raise _invalid('response_format.type must be "text", "json_object" or "json_schema"', "response_format.type")


def _describe(tools: dict, names: list[str], choice: str) -> str:
    def signature(name: str) -> str:
        props = (tools[name].get("properties") or {}) if isinstance(tools[name], dict) else {}
        return f"{name}({', '.join(props)})"
    how = "You may call one function" if choice == "auto" else "Call one function"
    return (f"{how} by replying with JSON {{\"name\": ..., \"arguments\": {{...}}}}. Functions: "
            + "; ".join(signature(n) for n in names) + ".")


def messages_for(body, plan: ChatPlan) -> list[dict]:
    """The chat messages for the template: tool calls of earlier assistant turns as the JSON the model
    produces, tool results as "tool" turns, the tools' description merged into the system message."""
    out = []
    for m in body.messages:
        role = "system" if m.role == "developer" else m.role
        content = m.text()
        calls = (m.model_extra or {}).get("tool_calls") if m.role == "assistant" else None
        if calls:
            parts = []
            for call in calls if isinstance(calls, list) else []:
                fn = call.get("function") if isinstance(call, dict) else None
                if isinstance(fn, dict):
                    try:
                        args = json.loads(fn.get("arguments") or "{}")
                    except (TypeError, ValueError) as exc:
                        raise _invalid("messages: an assistant tool call's function.arguments is not JSON text",
                                       "messages") from exc
                    parts.append(json.dumps({"name": fn.get("name"), "arguments": args}, separators=(",", ":")))
            content = content + "".join(parts)
        out.append({"role": role, "content": content})
    if plan.system_note:
        if out and out[0]["role"] == "system":
            out[0] = {"role": "system", "content": f"{out[0]['content']}\n{plan.system_note}"}
        else:
            out.insert(0, {"role": "system", "content": plan.system_note})
    return out


def generate_request(body, plan: ChatPlan) -> GenerateRequest:
    stop = [body.stop] if isinstance(body.stop, str) else list(body.stop or [])
    max_tokens = body.max_completion_tokens if body.max_completion_tokens is not None else body.max_tokens
    sampling = SamplingParams(temperature=1.0 if body.temperature is None else body.temperature,
                              top_p=1.0 if body.top_p is None else body.top_p, seed=body.seed, stop=tuple(stop),
                              logprobs=plan.logprobs, top_logprobs=plan.top_logprobs)
    return GenerateRequest(open=OpenRequest(
        model=body.model, npc_id=body.user or "", messages=messages_for(body, plan), sampling=sampling,
        constraint=plan.constraint(),
        limits=None if max_tokens is None else SessionLimits(max_new_tokens=max_tokens)))


# ------------------------------------------------------------------------------------------ replies

def read_call(text: str, tools: dict) -> dict | None:
    """The tool call in a complete constrained output, else None (plain text, or cut off by a limit)."""
    if not text.startswith("{"):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if not isinstance(value, dict) or value.get("name") not in tools:
        return None
    return {"id": f"call_{uuid.uuid4().hex[:24]}", "type": "function",
            "function": {"name": value["name"], "arguments": json.dumps(value.get("arguments", {}),
                                                                        ensure_ascii=False)}}


def logprob_entries(tokenizer, token_ids: list[int], logprobs: list[float] | None,
                    alternatives: list | None = None, top: int = 0) -> list[dict]:
    """OpenAI's logprobs.content entries; `alternatives` per token ({token: probability}, most likely first: the
    engine's top_logprobs, or a constrained step's allowed tokens), the `top` best of them as top_logprobs."""
    def entry(tid: int, lp: float) -> dict:
        piece = tokenizer.decode([tid]) if tokenizer is not None else ""
        return {"token": piece, "logprob": lp, "bytes": list(piece.encode("utf-8"))}

    entries = []
    for k, (tid, lp) in enumerate(zip(token_ids, logprobs or [])):
        options = (alternatives[k] if alternatives and k < len(alternatives) else None) or {}
        best = sorted(options.items(), key=lambda kv: -kv[1])[:top] if top else []
        entries.append({**entry(tid, lp), "top_logprobs": [entry(t, math.log(max(p, 1e-45))) for t, p in best]})
    return entries


async def complete(engine, body, plan: ChatPlan, metrics, started: float) -> dict:
    stream = await engine.generate(generate_request(body, plan))
    parts, ids, lps, alts, finish = [], [], [], [], FinishReason.STOP
    try:
        async for chunk in stream:
            parts.append(chunk.text_delta)
            ids.extend(chunk.token_ids)
            lps.extend(chunk.logprobs or [])
            alts.extend(chunk.choice_probs or [None] * len(chunk.logprobs or []))
            if chunk.finished:
                finish = chunk.finish_reason
    finally:
        await stream.aclose()
    metrics.tokens.labels("http").inc(len(ids))
    metrics.rpc_latency.labels("chat.completions").observe(time.perf_counter() - started)
    text = "".join(parts)
    call = read_call(text, plan.tools) if plan.tool_mode else None
    message = ({"role": "assistant", "content": None, "tool_calls": [call]} if call
               else {"role": "assistant", "content": text})
    logprobs = ({"content": logprob_entries(engine.tokenizer(stream.opened.model), ids, lps, alts, plan.top_logprobs)}
                if plan.logprobs else None)
    prompt = stream.opened.prompt_tokens
    return {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
            "model": stream.opened.model, "system_fingerprint": None,
            "choices": [{"index": 0, "message": message, "logprobs": logprobs,
                         "finish_reason": "tool_calls" if call else _FINISH.get(finish, "stop")}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": len(ids), "total_tokens": prompt + len(ids)}}


class _CallStreamer:
    """Turns the growing output into OpenAI deltas: text as `content`; a tool call (output starting with "{")
    as `tool_calls[0]` once its name is complete, then argument pieces, the wrapper's closing brace held back."""

    def __init__(self, tool_mode: bool) -> None:
        self.tool_mode = tool_mode
        self.text = ""
        self.kind: str | None = None if tool_mode else "text"
        self.args_from = 0
        self.sent = 0

    def feed(self, delta: str, final: bool) -> list[dict]:
        self.text += delta
        if self.kind is None and self.text:
            self.kind = "call" if self.text.startswith("{") else "text"
        if self.kind == "text":
            return [{"content": delta}] if delta else []
        if self.kind != "call":
            return []
        out = []
        if not self.args_from:
            m = re.match(r'\{"name":("(?:[^"\\]|\\.)*"),"arguments":', self.text)
            if m is None:
                return []
            self.args_from = m.end()
            out.append({"role": "assistant", "content": None, "tool_calls": [{
                "index": 0, "id": f"call_{uuid.uuid4().hex[:24]}", "type": "function",
                "function": {"name": json.loads(m.group(1)), "arguments": ""}}]})
        args = self.text[self.args_from:]
        end = len(args) - 1 if not final or args.endswith("}") else len(args)   # the wrapper's "}"
        if end > self.sent:
            out.append({"tool_calls": [{"index": 0, "function": {"arguments": args[self.sent:end]}}]})
            self.sent = end
        return out


async def stream_chunks(engine, body, plan: ChatPlan, metrics, sse) -> tuple[object, AsyncIterator[bytes]]:
    """(the engine stream, its SSE bytes in OpenAI's chunk format)."""
    stream = await engine.generate(generate_request(body, plan))
    base = {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion.chunk", "created": int(time.time()),
            "model": stream.opened.model, "system_fingerprint": None}
    tokenizer = engine.tokenizer(stream.opened.model)
    include_usage = bool(body.stream_options and body.stream_options.include_usage)

    def chunk(delta: dict, finish: str | None = None, logprobs=None) -> bytes:
        return sse({**base, "choices": [{"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish}]})

    async def events() -> AsyncIterator[bytes]:
        streamer = _CallStreamer(plan.tool_mode)
        n_tokens, finish = 0, FinishReason.STOP
        try:
            yield chunk({"role": "assistant", "content": ""} if not plan.tool_mode else {"role": "assistant"})
            async for piece in stream:
                n_tokens += len(piece.token_ids)
                if piece.finished:
                    finish = piece.finish_reason
                lp = ({"content": logprob_entries(tokenizer, piece.token_ids, piece.logprobs, piece.choice_probs,
                                                  plan.top_logprobs)}
                      if plan.logprobs else None)
                deltas = streamer.feed(piece.text_delta, piece.finished)
                for k, delta in enumerate(deltas):
                    yield chunk(delta, logprobs=lp if k == len(deltas) - 1 else None)
                if not deltas and lp and lp["content"]:
                    yield chunk({}, logprobs=lp)
            metrics.tokens.labels("http").inc(n_tokens)
            called = streamer.kind == "call" and streamer.args_from and finish is FinishReason.STOP
            yield chunk({}, "tool_calls" if called else _FINISH.get(finish, "stop"))
            if include_usage:
                prompt = stream.opened.prompt_tokens
                yield sse({**base, "choices": [], "usage": {"prompt_tokens": prompt, "completion_tokens": n_tokens,
                                                            "total_tokens": prompt + n_tokens}})
            yield sse("[DONE]")
        except (asyncio.CancelledError, GeneratorExit):
            raise
        except Exception as exc:  # noqa: BLE001 - headers are sent: report the error in-band, OpenAI style
            st = status.status_for(exc, where="chat.completions stream")
            metrics.errors.labels("http", st.grpc_code.name).inc()
            yield sse({"error": {"message": st.message, "type": st.http_type, "param": None,
                                 "code": st.grpc_code.name.lower()}})
        finally:
            await stream.aclose()

    return stream, events()


# ------------------------------------------------------------------------------ NPC actions as tools

TOOL_STRING_MAX = 64   # string arguments without maxLength: a call always completes within max_tokens


def action_tools(fsm_name: str | None = None, state: str | None = None) -> dict:
    """The built-in FSMs' actions as OpenAI tools: {"tools": [...], "fsms": {fsm: {state: [actions]}}}.
    With `fsm` and `state`: only the actions that state allows (what the NPC may do there). An action's
    parameters are the argument names the FSMs' reflexes give it (strings)."""
    from npc_runtime.agent.actions import ACTIONS
    from npc_runtime.agent.fsm_loader import BUILTIN_FSMS, load_builtin_fsm
    from npc_runtime.errors import NotFound

    fsms = {name: load_builtin_fsm(name) for name in BUILTIN_FSMS}
    arguments: dict[str, set[str]] = {}
    for definition in fsms.values():
        for reflex in definition.reflexes:
            arguments.setdefault(reflex.action, set()).update(reflex.arguments)
    names = list(ACTIONS)
    if fsm_name is not None or state is not None:
        definition = fsms.get(fsm_name or "")
        if definition is None:
            raise NotFound(f"unknown built-in FSM {fsm_name!r} (built-ins: {', '.join(BUILTIN_FSMS)})")
        if state not in definition.states:
            raise NotFound(f"FSM {fsm_name!r} has no state {state!r} (states: {', '.join(definition.states)})")
        names = list(definition.allowed(state))
    tools = [{"type": "function", "function": {
        "name": action, "description": f"NPC action: {action.replace('_', ' ')}",
        "parameters": {"type": "object", "additionalProperties": False, "required": [], "properties": {
            arg: {"type": "string", "maxLength": TOOL_STRING_MAX} for arg in sorted(arguments.get(action, ()))}}}}
        for action in names]
    return {"tools": tools, "fsms": {name: {s: list(spec.allowed) for s, spec in d.states.items()}
                                     for name, d in fsms.items()}}


def _bounded_strings(schema):
    """A copy of `schema` whose strings without maxLength / enum / const get TOOL_STRING_MAX."""
    if isinstance(schema, list):
        return [_bounded_strings(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {}
    for key, value in schema.items():
        if key == "properties" and isinstance(value, dict):
            out[key] = {name: _bounded_strings(sub) for name, sub in value.items()}
        elif isinstance(value, (dict, list)) and key not in ("enum", "const", "required", "default", "examples"):
            out[key] = _bounded_strings(value)
        else:
            out[key] = value
    kind = schema.get("type")
    if (kind == "string" or isinstance(kind, list) and "string" in kind) and not {"maxLength", "enum", "const"} & set(schema):
        out["maxLength"] = TOOL_STRING_MAX
    return out


async def npc_actions(fsm: str | None = None, state: str | None = None) -> dict:
    """GET /v1/npc/actions[?fsm=merchant&state=open]: the NPC actions as a tool list."""
    return action_tools(fsm, state)
