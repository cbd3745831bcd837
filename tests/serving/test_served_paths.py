"""The served paths after their speed-ups: Tick replies built in place carry the same bytes, Generate and SSE
streams (coalesced per wake-up) carry exactly the tokens and text that Tick and a plain completion give."""

from __future__ import annotations

import asyncio
import json

import grpc
import httpx
import numpy as np

from npc_proto.v1 import runtime_pb2 as pb
from npc_runtime.serving import translate
from npc_runtime.sessions.engine import TickResult, TickStats, TokenChunk
from npc_runtime.sessions.session import FinishReason
from tests.serving.conftest import runtime_stub


def _reference(result: TickResult) -> pb.TickResult:
    """A TickResult as it was built before (every field through the constructor)."""
    s = result.stats
    return pb.TickResult(
        session_id=result.session_id, token_ids=[int(t) for t in result.token_ids], text_delta=result.text_delta,
        finished=result.finished,
        finish_reason=translate.finish_reason_to_proto(result.finish_reason) if result.finished else 0,
        stats=pb.TickStats(tick_ms=s.engine_ms, steps=s.steps, max_batch=s.max_batch,
                           pending_prefill_tokens=s.pending_prefill_tokens, context_tokens=s.context_tokens))


def test_tick_results_filled_in_place_are_the_same_bytes():
    cases = [
        TickResult("a", [np.int64(5), 7], "hi \"there\"", False, None, TickStats(1.5, 2, 0, 40, False, 64, 0)),
        TickResult("b", [], "", True, FinishReason.STOP, TickStats(0.25, 0, 0, 12, False, 0, 3)),
        TickResult("c", [9], "é", True, FinishReason.CONTEXT_FULL, TickStats(3.0, 1, 0, 256, False, 1, 0)),
    ]
    response = pb.TickResponse()
    for case in cases:
        translate.fill_tick_result(response.results.add(), case)
        assert translate.tick_result_to_proto(case).SerializeToString() == _reference(case).SerializeToString()
    assert response.SerializeToString() == pb.TickResponse(results=[_reference(c) for c in cases]).SerializeToString()


def test_chunks_translate_with_their_end_only_when_finished():
    going = translate.chunk_to_proto(TokenChunk("s", [np.int32(4), 5], "ab", False, None))
    done = translate.chunk_to_proto(TokenChunk("s", [6], "c", True, FinishReason.LENGTH))
    assert list(going.token_ids) == [4, 5] and going.text == "ab" and not going.finished
    assert going.finish_reason == pb.FINISH_REASON_UNSPECIFIED
    assert done.finished and done.finish_reason == pb.FINISH_REASON_LENGTH


async def test_generate_streams_the_tokens_tick_gives(server):
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        stub = runtime_stub(channel)
        ticked = (await stub.OpenSession(pb.OpenSessionRequest(prompt="The smith says"))).session_id
        streamed = (await stub.OpenSession(pb.OpenSessionRequest(prompt="The smith says"))).session_id
        reply = await stub.Tick(pb.TickRequest(entries=[pb.TickEntry(session_id=ticked, budget_ms=5000,
                                                                       max_tokens=10)]))
        expected = list(reply.results[0].token_ids)
        tokens, messages, ends = [], 0, []
        async for chunk in stub.Generate(pb.GenerateRequest(session_id=streamed, max_tokens=10)):
            await asyncio.sleep(0.01)   # a slow reader: later messages carry what piled up meanwhile
            tokens += chunk.token_ids
            messages += 1
            ends.append(chunk.finished)
    assert tokens == expected and len(expected) == 10
    assert ends[-1] and not any(ends[:-1]) and messages <= len(tokens)


async def test_sse_events_are_valid_json_and_add_up_to_the_completion(server):
    body = {"messages": [{"role": "user", "content": "Say \"hello\" in a new line"}], "max_tokens": 16,
            "temperature": 0}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.http_port}", timeout=30) as http:
        whole = (await http.post("/v1/chat/completions", json=body)).json()
        async with http.stream("POST", "/v1/chat/completions", json={**body, "stream": True}) as response:
            events = [line[6:] async for line in response.aiter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert text == whole["choices"][0]["message"]["content"]
    assert {c["id"] for c in chunks} == {chunks[0]["id"]} and chunks[-1]["choices"][0]["finish_reason"]
    for c in chunks[1:-1]:
        assert set(c) == {"id", "object", "created", "model", "system_fingerprint", "choices"}
        assert c["choices"][0]["logprobs"] is None and c["choices"][0]["finish_reason"] is None
