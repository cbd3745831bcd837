"""Limits at the entrance (issue 9, docs/limits.md), on an in-process server over the tiny package:
auth before the body, body size while reading, message count and prompt characters before rendering,
prompts over the context refused without tokenizing, gRPC's receive limit, malformed bodies named."""

from __future__ import annotations

import asyncio
import json

import grpc
import pytest

from npc_proto.v1 import runtime_pb2 as pb
from npc_runtime.decode.tokenizer import TextTokenizer
from npc_runtime.errors import RequestTooLarge
from tests.helpers import raw_http
from tests.serving.conftest import running_server, runtime_stub

TOKEN = "entry-token"
MiB = 1 << 20


def _chat(messages: int, chars: int) -> bytes:
    content = ("The guard looks at the gate. " * (chars // 29 + 1))[:chars]
    return json.dumps({"messages": [{"role": "user", "content": content}] * messages, "max_tokens": 2}).encode()


async def _post(server, body, **kwargs) -> raw_http.RawReply:
    return await asyncio.to_thread(raw_http.post, "127.0.0.1", server.http_port, "/v1/chat/completions", body,
                                   **kwargs)


def _error(reply: raw_http.RawReply) -> dict:
    return json.loads(reply.body)["error"]


def _pieces(total: int, piece: int = 256 * 1024):
    block = b"x" * piece
    for _ in range(total // piece):
        yield block


async def test_auth_is_checked_before_the_body_is_read(tiny_package):
    async with running_server(tiny_package, token=TOKEN, max_request_bytes=4 * MiB) as server:
        # 100 MB announced and streamed without a token: 401 from the headers; the server closes the
        # connection instead of reading (and buffering) the upload
        reply = await _post(server, _pieces(100 * MiB), body_len=100 * MiB)
        assert reply.status == 401, reply
        assert _error(reply)["type"] == "authentication_error"
        assert reply.sent_bytes < 100 * MiB
        # malformed JSON without a token: 401, not 400 (the body is never parsed)
        reply = await _post(server, b"{not json", headers={})
        assert reply.status == 401 and "bearer token" in _error(reply)["message"]
        reply = await _post(server, b"{not json", headers={"authorization": "Bearer wrong"})
        assert reply.status == 401 and _error(reply)["message"] == "wrong bearer token"
        # health and metrics stay open to probes
        reply = await asyncio.to_thread(raw_http.post, "127.0.0.1", server.http_port, "/healthz", b"")
        assert reply.status in (200, 405)
        reply = await _post(server, b"{not json", headers={"authorization": f"Bearer {TOKEN}"})
        assert reply.status == 400 and "not valid JSON" in _error(reply)["message"]


async def test_body_over_the_limit_is_refused_while_reading(tiny_package):
    async with running_server(tiny_package, max_request_bytes=2 * MiB, max_prompt_chars=256 * 1024) as server:
        body = _chat(200, 50_000)                       # 10 MB
        reply = await _post(server, body)
        assert reply.status == 413, reply
        error = _error(reply)
        assert "Content-Length" in error["message"] and str(2 * MiB) in error["message"]
        assert reply.sent_bytes < len(body)             # answered before the body was read
        reply = await _post(server, body, chunked=True)  # no Content-Length: counted as it arrives
        assert reply.status == 413 and "passed 2097152 bytes" in _error(reply)["message"]
        assert reply.sent_bytes < len(body)
        assert (await asyncio.to_thread(raw_http.post, "127.0.0.1", server.http_port, "/v1/chat/completions",
                                        b"{}", headers={"content-length": "x"})).status in (400, None)


async def test_message_count_and_prompt_characters_are_limited(tiny_package):
    async with running_server(tiny_package, max_messages=8, max_prompt_chars=10_000) as server:
        reply = await _post(server, _chat(9, 10))
        assert reply.status == 413 and "9 messages; the limit is 8" in _error(reply)["message"]
        reply = await _post(server, _chat(4, 3_000))
        assert reply.status == 413, reply
        assert "12000 characters" in _error(reply)["message"] and "limit is 10000" in _error(reply)["message"]
        reply = await _post(server, _chat(2, 10))       # within every limit: answered
        assert reply.status == 200, reply


async def test_malformed_bodies_get_400_naming_the_problem(tiny_package):
    async with running_server(tiny_package) as server:
        reply = await _post(server, b'{"messages": [{"role": "user", "content": "\xff\xfe"}]}')
        assert reply.status == 400 and "not valid UTF-8 (byte 43" in _error(reply)["message"]
        reply = await _post(server, b'{"messages": [{"role": "user", "content": "\\ud800"}]}')
        assert reply.status == 400 and "messages[0].content" in _error(reply)["message"]
        assert "surrogate" in _error(reply)["message"]
        reply = await _post(server, b'{"messages": [{"role": "user", "content": "hi"}], "model": "\\udfff"}')
        assert reply.status == 400 and "model" in _error(reply)["message"]
        reply = await _post(server, b'{"messages": [{"role": "king", "content": "hi"}]}')
        assert reply.status == 400 and _error(reply)["param"] == "messages.0.role"
        reply = await _post(server, b"[" * 100_000 + b"]" * 100_000)
        assert reply.status == 400 and _error(reply)["message"].startswith("body ")
        reply = await _post(server, b'["not an object"]')
        assert reply.status == 400 and "JSON object" in _error(reply)["message"]
        reply = await _post(server, b'{"messages": [{"role": "user", "content": "hi"}]')
        assert reply.status == 400 and "line 1 column" in _error(reply)["message"]
        # the server still answers normally
        assert (await _post(server, _chat(1, 10))).status == 200


async def test_over_context_is_refused_without_tokenizing(tiny_package, monkeypatch):
    calls = []
    encode = TextTokenizer.encode
    monkeypatch.setattr(TextTokenizer, "encode", lambda self, text, **kw: calls.append(len(text)) or encode(self, text, **kw))
    async with running_server(tiny_package, engine_config={"max_context": 64}) as server:
        reply = await _post(server, _chat(5, 50_000))   # 250,000 characters, legal size, far over 64 tokens
        assert reply.status == 413, reply
        message = _error(reply)["message"]
        assert "max context is 64" in message and "250000 characters" in message
        assert calls == []                              # neither rendered nor tokenized
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await runtime_stub(channel).OpenSession(pb.OpenSessionRequest(prompt="word " * 10_000))
            assert err.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "max context is 64" in err.value.details()
        assert calls == []
        assert (await _post(server, _chat(1, 20))).status == 200   # one that may fit is tokenized
        assert calls


async def test_grpc_message_over_the_receive_limit(tiny_package):
    async with running_server(tiny_package, grpc_max_receive_bytes=1 * MiB, max_prompt_chars=200_000) as server:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
            stub = runtime_stub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.OpenSession(pb.OpenSessionRequest(prompt="x" * (2 * MiB)))
            assert err.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
            opened = await stub.OpenSession(pb.OpenSessionRequest(prompt="Hello"))
            assert opened.session_id


def test_config_checks_the_byte_limits_carry_a_maximal_prompt():
    from npc_runtime.errors import InvalidArgument
    from npc_runtime.serving.config import (DEFAULT_GRPC_MAX_RECEIVE_BYTES, DEFAULT_MAX_REQUEST_BYTES,
                                            MAX_PROMPT_CHARS, ServerConfig)

    cfg = ServerConfig()
    assert cfg.grpc_max_receive_bytes == DEFAULT_GRPC_MAX_RECEIVE_BYTES >= 4 * MAX_PROMPT_CHARS
    assert cfg.max_request_bytes == DEFAULT_MAX_REQUEST_BYTES >= 12 * MAX_PROMPT_CHARS
    with pytest.raises(InvalidArgument, match="grpc_max_receive_bytes = 100000 cannot carry a prompt"):
        ServerConfig(grpc_max_receive_bytes=100_000)
    with pytest.raises(InvalidArgument, match="max_request_bytes"):
        ServerConfig(max_prompt_chars=2_000_000, grpc_max_receive_bytes=10 * DEFAULT_MAX_REQUEST_BYTES)
    for key in ("max_messages", "max_prompt_chars", "worker_threads"):
        with pytest.raises(InvalidArgument, match=key):
            ServerConfig(**{key: 0})
    with pytest.raises(InvalidArgument, match="worker_queue"):
        ServerConfig(worker_queue=-1)


def test_request_too_large_is_413_and_resource_exhausted():
    from npc_runtime.serving.status import status_for

    st = status_for(RequestTooLarge("prompt too long"))
    assert (st.grpc_code, st.http_status) == (grpc.StatusCode.RESOURCE_EXHAUSTED, 413)


async def test_grpc_without_token_is_refused_without_parsing_the_request(tiny_package):
    async with running_server(tiny_package, token=TOKEN) as server:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
            call = channel.unary_unary("/npc.v1.NpcRuntime/OpenSession")
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await call(b"\x0a\xff\xff\xff\xff\x0f\x12\x00not a protobuf")   # corrupt bytes, no token
            assert err.value.code() is grpc.StatusCode.UNAUTHENTICATED


def test_new_input_that_cannot_fit_is_refused_on_the_engine_thread_without_tokenizing(tiny_package, monkeypatch):
    from npc_runtime.config import EngineConfig
    from npc_runtime.sessions.engine import Engine
    from npc_runtime.sessions.requests import TickRequest

    engine = Engine.from_packages([tiny_package], config=EngineConfig(max_context=64, warmup=False))
    sid = engine.open_session(prompt="Hello")
    calls = []
    encode = TextTokenizer.encode
    monkeypatch.setattr(TextTokenizer, "encode", lambda self, text, **kw: calls.append(len(text)) or encode(self, text, **kw))
    [result] = engine.tick([TickRequest(sid, budget_ms=50, new_input="word " * 12_000)])
    assert result.error is not None and "context full" in str(result.error)
    assert "60000 characters is at least" in str(result.error)
    assert calls == []
    [result] = engine.tick([TickRequest(sid, budget_ms=50, new_input=" and more")])
    assert result.error is None and calls == [9]
