"""A seeded fuzzer over every RPC of NpcRuntime and NpcAgent and over the HTTP API, against the served
system (`build_system(...).server()`, the built-in packages, on loopback port 0, in this process for speed).

Thousands of hostile calls (tests/hostile/fuzz_cases.py), 16 in flight; a call may be refused with any
documented code, but never INTERNAL / UNKNOWN / HTTP 5xx (a client mistake answered as a server bug), and no
Tick entry or Play error carries those codes either. Afterwards health answers and normal requests work.
`NPCRT_FUZZ_SEED` / `NPCRT_FUZZ_CALLS` reproduce or lengthen a run.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections import Counter

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from npc_proto.v1 import agent_pb2, agent_pb2_grpc, runtime_pb2, runtime_pb2_grpc
from npc_runtime.assembly import build_system
from npc_runtime.settings import load_settings
from tests.hostile import fuzz_cases as fc

SEED = int(os.environ.get("NPCRT_FUZZ_SEED", "9"))
CALLS = int(os.environ.get("NPCRT_FUZZ_CALLS", "5000"))
IN_FLIGHT = 16
CALL_TIMEOUT_S = 15.0
MAX_STREAM_MESSAGES = 40
BAD_GRPC = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.DATA_LOSS}
BAD_NUMBERS = {grpc.StatusCode.INTERNAL.value[0], grpc.StatusCode.UNKNOWN.value[0], grpc.StatusCode.DATA_LOSS.value[0]}


class Findings:
    def __init__(self):
        self.bad: list[str] = []
        self.codes: Counter = Counter()
        self.closed: list[str] = []

    def grpc(self, what: str, code: grpc.StatusCode, details: str = "") -> None:
        self.codes[code.name] += 1
        if code in BAD_GRPC:
            self.bad.append(f"{what}: {code.name} {details[:300]}")

    def embedded(self, what: str, code: int, message: str) -> None:
        if code in BAD_NUMBERS:
            self.bad.append(f"{what}: embedded code {code}: {message[:300]}")

    def http(self, what: str, status: int, body: bytes) -> None:
        self.codes[f"HTTP {status}"] += 1
        if status >= 500 and status != 503 or b'"server_error"' in body or b'"code":"internal"' in body:
            self.bad.append(f"{what}: HTTP {status} {body[:300]!r}")


class Fuzz:
    def __init__(self, server, rng: random.Random):
        self.rng = rng
        self.pools = fc.Pools()
        self.proto = fc.ProtoFuzzer(rng, self.pools)
        self.findings = Findings()
        self.channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.grpc_port}")
        self.http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.http_port}", timeout=CALL_TIMEOUT_S)
        self.rpcs = fc.rpcs()

    async def close(self) -> None:
        await self.channel.close()
        await self.http.aclose()

    def _callable(self, rpc: fc.Rpc, raw: bool = False):
        ser = (lambda b: b) if raw else (lambda m: m.SerializeToString())
        kind = {(False, False): self.channel.unary_unary, (False, True): self.channel.unary_stream,
                (True, False): self.channel.stream_unary, (True, True): self.channel.stream_stream}
        return kind[(rpc.request_streaming, rpc.response_streaming)](rpc.path, request_serializer=ser,
                                                                    response_deserializer=lambda b: b)

    def _note_response(self, rpc: fc.Rpc, request, data: bytes) -> None:
        """Check codes carried inside answers and learn the ids that now exist."""
        if rpc.name == "Tick":
            for r in runtime_pb2.TickResponse.FromString(data).results:
                self.findings.embedded("Tick entry", r.error_code, r.error)
        elif rpc.name == "Play":
            for e in agent_pb2.PlayResponse.FromString(data).errors:
                self.findings.embedded("Play", e.code, e.message)
        elif rpc.name == "OpenSession":
            self.pools.session_ids.append(runtime_pb2.OpenSessionResponse.FromString(data).session_id)
            del self.pools.session_ids[:-32]
        elif rpc.name == "RegisterNpc" and request.npc_id not in self.pools.npc_ids:
            self.pools.npc_ids.append(request.npc_id)
            del self.pools.npc_ids[:-32]

    async def grpc_call(self, rpc: fc.Rpc, request, *, raw: bool = False) -> None:
        call = self._callable(rpc, raw)
        what = f"{rpc.name}{' (raw bytes)' if raw else ''}"
        try:
            if rpc.request_streaming:
                requests = [request] if raw else [self.proto.message(rpc.request) for _ in range(self.rng.randint(1, 3))]
                answer = call(iter(requests), timeout=CALL_TIMEOUT_S)
            else:
                answer = call(request, timeout=CALL_TIMEOUT_S)
            if rpc.response_streaming:
                n = 0
                async for data in answer:
                    if not raw:
                        self._note_response(rpc, request, data)
                    n += 1
                    if n >= MAX_STREAM_MESSAGES:
                        answer.cancel()
                        break
            else:
                data = await answer
                if not raw:
                    self._note_response(rpc, request, data)
            self.findings.codes["OK"] += 1
        except grpc.aio.AioRpcError as exc:
            self.findings.grpc(what, exc.code(), exc.details() or "")
        except asyncio.CancelledError:
            self.findings.codes["CANCELLED"] += 1

    async def http_call(self) -> None:
        method, path, body, headers = fc.http_request(self.rng)
        try:
            async with self.http.stream(method, path, content=body, headers=headers) as resp:
                data = b""
                async for chunk in resp.aiter_bytes():
                    data += chunk
                    if len(data) > 1 << 20:
                        break
            self.findings.http(f"{method} {path}", resp.status_code, data)
        except httpx.TimeoutException:
            self.findings.codes["HTTP timeout"] += 1
        except httpx.TransportError:
            # the server may answer and close before reading an oversized body (413 at the entrance): the
            # client then sees a reset instead of the answer; the server itself must still be serving (checked
            # after the run)
            self.findings.codes["HTTP connection closed"] += 1
            self.findings.closed.append(f"{method} {path} ({len(body or b'')} bytes)")

    async def one(self) -> None:
        pick = self.rng.random()
        rpc = self.rng.choice(self.rpcs)
        if pick < 0.3:
            await self.http_call()
        elif pick < 0.4:
            await self.grpc_call(rpc, self.rng.randbytes(self.rng.choice((1, 5, 40, 400))), raw=True)
        else:
            await self.grpc_call(rpc, self.proto.message(rpc.request))

    async def run(self, calls: int) -> None:
        queue = iter(range(calls))

        async def worker():
            for _ in queue:
                await self.one()

        await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))


async def seed_ids(fuzz: Fuzz) -> None:
    runtime = runtime_pb2_grpc.NpcRuntimeStub(fuzz.channel)
    agent = agent_pb2_grpc.NpcAgentStub(fuzz.channel)
    for i in range(4):
        opened = await runtime.OpenSession(runtime_pb2.OpenSessionRequest(prompt=f"Hello {i}",
                                                                         limits=runtime_pb2.SessionLimits(max_new_tokens=8)))
        fuzz.pools.session_ids.append(opened.session_id)
    for npc_id, role in (("fuzz-npc-0", "guard"), ("fuzz-npc-1", "merchant")):
        await agent.RegisterNpc(agent_pb2.RegisterNpcRequest(npc_id=npc_id, persona=agent_pb2.Persona(name="Ada", role=role),
                                                             replace=True))
    fuzz.pools.npc_ids.append("fuzz-npc-1")


async def still_serving(server, fuzz: Fuzz) -> None:
    health = health_pb2_grpc.HealthStub(fuzz.channel)
    assert (await health.Check(health_pb2.HealthCheckRequest(), timeout=5)).status == health_pb2.HealthCheckResponse.SERVING
    assert (await fuzz.http.get("/healthz")).status_code == 200
    runtime = runtime_pb2_grpc.NpcRuntimeStub(fuzz.channel)
    opened = await runtime.OpenSession(runtime_pb2.OpenSessionRequest(prompt="Good morning!",
                                                                     limits=runtime_pb2.SessionLimits(max_new_tokens=4)))
    tokens = 0
    for _ in range(500):
        (result,) = (await runtime.Tick(runtime_pb2.TickRequest(entries=[runtime_pb2.TickEntry(
            session_id=opened.session_id, budget_ms=20)]))).results
        assert not result.error, result.error
        tokens += len(result.token_ids)
        if result.finished:
            break
    assert tokens >= 1
    chat = await fuzz.http.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "Hi!"}],
                                                               "max_tokens": 4})
    assert chat.status_code == 200, chat.text
    agent = agent_pb2_grpc.NpcAgentStub(fuzz.channel)
    await agent.RegisterNpc(agent_pb2.RegisterNpcRequest(npc_id="after-fuzz", persona=agent_pb2.Persona(
        name="Bram", role="guard"), replace=True))
    decision = await agent.Step(agent_pb2.StepRequest(npc_id="after-fuzz", observation=agent_pb2.Observation(
        game_time_s=1.0, values={"player_distance": 3.0})), timeout=10)
    assert decision.action in decision.allowed_actions


@pytest.fixture(scope="module")
def served_settings(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("fuzz-data")
    return load_settings(env={}, flags={"server.port": 0, "server.http_port": 0, "server.data_dir": str(data_dir)})


async def test_fuzz_every_rpc_and_the_http_api(served_settings):
    system = build_system(served_settings)
    server = system.server()
    await server.start()
    fuzz = Fuzz(server, random.Random(SEED))
    started = time.perf_counter()
    try:
        await seed_ids(fuzz)
        await fuzz.run(CALLS)
        elapsed = time.perf_counter() - started
        await still_serving(server, fuzz)
    finally:
        await fuzz.close()
        await server.stop(0)
        await system.shutdown()
    calls = sum(fuzz.findings.codes.values())
    print(f"\nfuzz seed {SEED}: {calls} calls in {elapsed:.1f} s; answers {dict(fuzz.findings.codes.most_common())}")
    print("connections closed by the server:", fuzz.findings.closed[:10])
    assert calls >= CALLS
    assert not fuzz.findings.bad, f"{len(fuzz.findings.bad)} server-bug answers (seed {SEED}):\n" + "\n".join(
        fuzz.findings.bad[:40])
