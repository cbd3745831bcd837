"""The OpenAI-compatible HTTP API: the official `openai` SDK against a real server, errors, auth, metrics."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from openai import AsyncOpenAI, AuthenticationError, BadRequestError, NotFoundError

from tests.serving.conftest import running_server


def _client(server, key="unused") -> AsyncOpenAI:
    return AsyncOpenAI(base_url=f"http://127.0.0.1:{server.http_port}/v1", api_key=key, max_retries=0, timeout=30)


async def test_openai_sdk_streams_a_chat_completion(server):
    client = _client(server)
    models = await client.models.list()
    assert [m.id for m in models.data] == ["tiny-llama"]
    stream = await client.chat.completions.create(
        model="tiny-llama", messages=[{"role": "system", "content": "You are Bram."},
                                      {"role": "user", "content": "Hello!"}],
        max_tokens=12, temperature=0.8, top_p=0.9, seed=7, stream=True, stream_options={"include_usage": True})
    pieces, finish, usage = [], None, None
    async for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            pieces.append(choice.delta.content or "")
            finish = choice.finish_reason or finish
    assert finish == "length" and usage.completion_tokens == 12 and usage.prompt_tokens > 0
    # same seed, same text, streamed or not
    reply = await client.chat.completions.create(
        model="tiny-llama", messages=[{"role": "system", "content": "You are Bram."},
                                      {"role": "user", "content": "Hello!"}],
        max_tokens=12, temperature=0.8, top_p=0.9, seed=7)
    assert reply.choices[0].message.content == "".join(pieces)
    assert reply.usage.completion_tokens == 12
    assert server.engine.active_sessions() == 0


async def test_errors_are_openai_shaped(server):
    client = _client(server)
    with pytest.raises(NotFoundError, match="unknown model"):
        await client.chat.completions.create(model="gpt-17", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(BadRequestError, match="temperature"):
        await client.chat.completions.create(model="tiny-llama", messages=[{"role": "user", "content": "hi"}],
                                             temperature=9.0)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.http_port}") as http:
        reply = await http.post("/v1/chat/completions", json={"messages": []})
        assert reply.status_code == 400 and reply.json()["error"]["type"] == "invalid_request_error"
        reply = await http.post("/v1/chat/completions", content=b"{not json")
        assert reply.status_code == 400
        reply = await http.post("/v1/chat/completions",
                                json={"messages": [{"role": "user", "content": "hi " * 2000}]})
        assert reply.status_code == 413 and "context" in reply.json()["error"]["message"]


async def test_stream_disconnect_closes_the_session(server):
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.http_port}") as http:
        async with http.stream("POST", "/v1/chat/completions", json={
                "messages": [{"role": "user", "content": "tell me a long story"}], "max_tokens": 200,
                "stream": True}) as response:
            async for line in response.aiter_lines():
                if line.startswith("data: ") and "content" in line:
                    break
    for _ in range(500):
        if server.engine.active_sessions() == 0:
            break
        await asyncio.sleep(0.02)
    assert server.engine.active_sessions() == 0


async def test_health_metrics_and_auth(tiny_package):
    async with running_server(tiny_package, token="tok") as server:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.http_port}") as http:
            assert (await http.get("/healthz")).json() == {"status": "serving"}
            assert (await http.get("/v1/models")).status_code == 401
            with pytest.raises(AuthenticationError):
                await _client(server, key="wrong").models.list()
            reply = await _client(server, key="tok").chat.completions.create(
                model="tiny-llama", messages=[{"role": "user", "content": "hi"}], max_tokens=3,
                extra_body={"ignore_eos": True})      # exactly 3 tokens, whatever the random model samples
            assert reply.usage.completion_tokens == 3
            metrics = (await http.get("/metrics")).text
            assert 'npc_tokens_generated_total{api="http"} 3.0' in metrics
            assert "npc_tick_latency_seconds_bucket" in metrics and "npc_active_sessions 0.0" in metrics
            assert 'npc_errors_total{code="UNAUTHENTICATED",method="http"}' in metrics


@pytest.mark.parametrize("http_fields,grpc_sampling", [
    ({"temperature": 9.0}, {"temperature": 9.0}),
    ({"stop": ["a", ""]}, {"stop": ["a", ""]}),
    ({"top_p": 1.5}, {"top_p": 1.5}),
])
async def test_a_bad_field_gives_the_same_message_over_grpc_and_http(server, http_fields, grpc_sampling):
    """One validation: the engine checks the field whichever API carried it."""
    import grpc

    from npc_proto.v1 import runtime_pb2 as pb
    from tests.serving.conftest import runtime_stub

    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.http_port}") as http:
        reply = await http.post("/v1/chat/completions", json={
            "messages": [{"role": "user", "content": "hi"}], **{"temperature": 0.5, **http_fields}})
    assert reply.status_code == 400
    http_message = reply.json()["error"]["message"]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await runtime_stub(channel).OpenSession(pb.OpenSessionRequest(
                prompt="hi", sampling=pb.SamplingParams(**{"temperature": 0.5, **grpc_sampling})))
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details() == http_message and http_message.startswith("sampling.")


async def test_chat_completion_is_one_engine_submission(server):
    hops = server.engine.submissions
    before = sum(hops.values())
    reply = await _client(server).chat.completions.create(
        model="tiny-llama", messages=[{"role": "user", "content": "hi"}], max_tokens=4)
    assert reply.usage.completion_tokens == 4 and reply.choices[0].finish_reason == "length"
    assert sum(hops.values()) == before + 1 and server.engine.active_sessions() == 0
