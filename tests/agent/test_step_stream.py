"""NpcAgent.StepStream over real gRPC (grpc.aio server on 127.0.0.1 port 0) with a real decode engine: a tiny
random-weight Llama package (built from a config in seconds) behind `EngineDialogueModel`, so the line
really streams from the engine. Order, equality with the whole line and with `Step`, sentence marks,
errors before the first chunk, client cancel; plus the sentence splitter on its own."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import re
import time

import grpc
import pytest

from npc_proto.v1 import agent_pb2 as pb
from npc_runtime.agent.actions import ACTIONS
from npc_runtime.agent.brain import AgentRuntime
from npc_runtime.agent.config import AgentConfig
from npc_runtime.agent.dialogue import SentenceDeltas, TemplateDialogue, split_sentences
from npc_runtime.agent.escalation import EscalationConfig, EscalationManager
from npc_runtime.agent.fsm_loader import load_builtin_fsm
from npc_runtime.agent.memory import MemoryStore
from npc_runtime.agent.providers.base import ProviderReply
from npc_runtime.agent.types import Percept, Persona

from .conftest import agent_server

pytest.importorskip("transformers")

SENTENCE_END = re.compile(r"[.!?\u2026]+[\"'\u201d\u2019)\]]*$")
TALK = dict(game_time_s=5.0, values={"player_distance": 2.0}, player_utterance="Good morning, what news from the gate?")


# ---- fixtures ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_engine(tmp_path_factory):
    from tests.helpers.tiny_models import make_tiny_hf_model
    from tests.runtime.package_factory import build_package

    from npc_runtime.config import EngineConfig
    from npc_runtime.sessions import Engine
    from npc_runtime.sessions.facade import EngineFacade

    root = tmp_path_factory.mktemp("stream-dialogue")
    pkg = build_package(make_tiny_hf_model(root / "hf", "llama", seed=0, name="tiny-llama"), root / "pkg")
    engine = Engine.from_packages([pkg], config=EngineConfig(max_sessions=16, max_context=256, intra_op_threads=1,
                                                              warmup=False))
    ae = EngineFacade(engine)
    yield ae, engine.list_models()[0].name
    asyncio.run(ae.shutdown(drain=False))


class OneLineProvider:
    """A cloud stand-in that always decides `warn` with a two-sentence line."""

    name, model = "one-line", "one-line-1"
    line = "Stop right there. The gate is closed!"

    def complete(self, request, *, timeout_s):
        return ProviderReply(text=json.dumps({"action": "warn", "arguments": {}, "dialogue": self.line}),
                             input_tokens=10, output_tokens=10, model=self.model)


def build_runtime(tiny_engine, *, provider=None, max_tokens=32) -> AgentRuntime:
    from npc_runtime.agent.engine_dialogue import EngineDialogueModel

    ae, model = tiny_engine
    memory = MemoryStore(":memory:")
    esc = None
    if provider is not None:   # story-critical events escalate; nothing else does (thresholds at 0)
        esc = EscalationManager(provider, memory=memory, config=EscalationConfig(
            confidence_threshold=0.0, margin_threshold=-1.0, novelty_threshold=0.0))
    return AgentRuntime(config=AgentConfig(memory_db=":memory:", dialogue_max_tokens=max_tokens, default_deadline_ms=3000),
                        memory=memory, dialogue=EngineDialogueModel(ae, model), escalation=esc)


@contextlib.asynccontextmanager
async def serving(tiny_engine, **runtime_kwargs):
    """(stub, runtime): the NpcAgent servicer on a real grpc.aio server, 127.0.0.1, a port the OS picks."""
    runtime = build_runtime(tiny_engine, **runtime_kwargs)
    try:
        async with agent_server(runtime, workers=8) as (stub, _):
            yield stub, runtime
    finally:
        runtime.dialogue.close()
        runtime.close()


@pytest.fixture
async def served(tiny_engine):
    async with serving(tiny_engine) as pair:
        yield pair


def guard(npc_id: str) -> pb.RegisterNpcRequest:
    return pb.RegisterNpcRequest(npc_id=npc_id, persona=pb.Persona(name="Bram", role="guard", traits=["stern"]),
                                 fsm_name="guard")


async def collect(call) -> list[pb.StepChunk]:
    return [chunk async for chunk in call]


def split(chunks: list[pb.StepChunk]):
    kinds = [c.WhichOneof("chunk") for c in chunks]
    deltas = [c.dialogue for c in chunks if c.WhichOneof("chunk") == "dialogue"]
    return kinds, chunks[0].action, deltas, chunks[-1].done


def assert_well_formed(chunks: list[pb.StepChunk]) -> None:
    kinds, action, deltas, done = split(chunks)
    assert kinds[0] == "action" and kinds[-1] == "done"
    assert kinds[1:-1] == ["dialogue"] * len(deltas)         # action before text, text before done
    assert done.dialogue == "".join(d.text for d in deltas)  # the deltas are the line
    assert (action.action, dict(action.arguments), action.state, action.source, action.escalated) == \
           (done.action, dict(done.arguments), done.state, done.source, done.escalated)
    assert list(action.allowed_actions) == list(done.allowed_actions) and action.action in action.allowed_actions
    assert abs(action.confidence - done.confidence) < 1e-6
    if deltas:
        assert deltas[-1].sentence_end and all(d.text for d in deltas)
        for d, after in zip(deltas, deltas[1:]):   # marked exactly where a sentence ends (whitespace follows)
            assert d.sentence_end == bool(SENTENCE_END.search(d.text)), d.text
            assert not d.sentence_end or after.text[0].isspace()
        lat = [action.latency_ms, *(d.latency_ms for d in deltas)]
        assert lat == sorted(lat)


# ---- the local model streams --------------------------------------------------------------------------
async def test_local_line_streams_and_equals_step(served):
    stub, runtime = served
    for npc in ("a", "b"):
        await stub.RegisterNpc(guard(npc))
    step = pb.StepRequest(npc_id="a", observation=pb.Observation(**TALK))
    chunks = await collect(stub.StepStream(step))
    assert_well_formed(chunks)
    _, action, deltas, done = split(chunks)
    assert done.source == pb.DECISION_SOURCE_LOCAL_MODEL and action.source == pb.DECISION_SOURCE_LOCAL_MODEL
    assert len(deltas) > 1 and done.dialogue                  # piece by piece, not one cut-up line
    assert action.latency_ms < deltas[-1].latency_ms

    # the same step for an NPC in the same state, answered whole by Step: the same decision
    whole = await stub.Step(pb.StepRequest(npc_id="b", observation=pb.Observation(**TALK)))
    for field in ("state", "action", "dialogue", "source", "escalated", "rejected_action", "memories_written", "reason"):
        assert getattr(whole, field) == getattr(done, field), field
    assert dict(whole.arguments) == dict(done.arguments) and abs(whole.confidence - done.confidence) < 1e-6
    assert runtime.stats.decisions == 2 and runtime.stats.by_source["local_model"] == 2


async def test_streamed_lines_equal_whole_lines_over_many_prompts(tiny_engine):
    """The stream's text is the line `reply()` returns, for varied prompts and seeds (sampled too)."""
    from npc_runtime.agent.dialogue import DialoguePrompt
    from npc_runtime.agent.engine_dialogue import EngineDialogueModel

    ae, name = tiny_engine
    model = EngineDialogueModel(ae, name)
    try:
        for i, seed in enumerate((None, 1, 7, 11)):
            prompt = DialoguePrompt("You are Mara, the market merchant.", "cheerful", f"the player is {i} meters away",
                                    f"how much for {i} apples?")
            whole = model.reply(prompt, allowed_actions=("trade", "talk"), max_tokens=24, npc_id="m", seed=seed)
            stream = model.reply_stream(prompt, allowed_actions=("trade", "talk"), max_tokens=24, npc_id="m", seed=seed)
            action, probs, _tag = stream.action(timeout_s=5)
            marks = SentenceDeltas()
            out = [d for piece in stream.pieces(timeout_s=5) for d in marks.feed(piece)] + marks.finish()
            assert action == whole.action and probs == whole.action_probs
            assert "".join(t for t, _ in out) == whole.line and stream.tokens == whole.tokens
    finally:
        model.close()


# ---- decisions that are whole: FSM, policy, cloud, template --------------------------------------------
async def test_fsm_reflex_and_quiet_steps_stream_action_then_done(served):
    stub, _ = served
    await stub.RegisterNpc(guard("g"))
    theft = pb.StepRequest(npc_id="g", observation=pb.Observation(
        game_time_s=1.0, values={"player_distance": 2.0, "player_is_stealing": 1.0}),
        events=[pb.GameEvent(kind="theft", description="The player grabbed an apple.")])
    chunks = await collect(stub.StepStream(theft))
    assert_well_formed(chunks)
    kinds, action, _, done = split(chunks)
    assert kinds == ["action", "done"] and action.action == "call_guards" and done.source == pb.DECISION_SOURCE_FSM
    quiet = await collect(stub.StepStream(pb.StepRequest(npc_id="g", observation=pb.Observation(game_time_s=2.0))))
    assert [c.WhichOneof("chunk") for c in quiet] == ["action", "done"]


async def test_cloud_decision_streams_action_then_sentences(tiny_engine):
    async with serving(tiny_engine, provider=OneLineProvider()) as (stub, _):
        await cloud_decision_streams_action_then_sentences(stub)


async def cloud_decision_streams_action_then_sentences(stub):
    await stub.RegisterNpc(guard("c"))
    step = pb.StepRequest(npc_id="c", deadline_ms=3000, observation=pb.Observation(**TALK), events=[
        pb.GameEvent(kind="royal_decree", description="A herald reads the king's decree.", story_critical=True)])
    chunks = await collect(stub.StepStream(step))
    assert_well_formed(chunks)
    _, action, deltas, done = split(chunks)
    assert action.source == pb.DECISION_SOURCE_CLOUD and action.escalated and action.action == "warn"
    assert [(d.text, d.sentence_end) for d in deltas] == [("Stop right there.", True), (" The gate is closed!", True)]
    assert done.dialogue == OneLineProvider.line
    # what the cloud decided is remembered, and recalled as an escalation
    recalled = await stub.RecallMemories(pb.RecallMemoriesRequest(npc_id="c"))
    assert recalled.memories[0].kind == pb.MEMORY_KIND_ESCALATION and "warn" in recalled.memories[0].text


def test_template_dialogue_streams_by_sentence():
    runtime = AgentRuntime(config=AgentConfig(memory_db=":memory:"), memory=MemoryStore(":memory:"),
                           dialogue=TemplateDialogue(lines={a: "Move along. Nothing to see here!" for a in ACTIONS}))
    runtime.register("g", Persona("Bram", "guard"), load_builtin_fsm("guard"))
    got = []
    decision = runtime.step_stream("g", Percept(1.0, {"player_distance": 3.0}, {}, "hello"),
                                   on_action=lambda d: got.append(("action", d.action)),
                                   on_delta=lambda text, end: got.append((text, end)))
    assert got[0] == ("action", decision.action) and decision.action in decision.allowed_actions
    assert got[1:] == [("Move along.", True), (" Nothing to see here!", True)]
    assert decision.dialogue == "Move along. Nothing to see here!"


# ---- errors and cancel --------------------------------------------------------------------------------
async def test_errors_come_before_any_chunk(served):
    stub, _ = served
    await stub.RegisterNpc(guard("e"))
    bad = [
        (pb.StepRequest(npc_id="nobody", observation=pb.Observation(**TALK)), grpc.StatusCode.NOT_FOUND),
        (pb.StepRequest(npc_id="e", deadline_ms=-1), grpc.StatusCode.INVALID_ARGUMENT),
        (pb.StepRequest(npc_id="e", events=[pb.GameEvent(kind="x", importance=11)]), grpc.StatusCode.INVALID_ARGUMENT),
        (pb.StepRequest(npc_id="e", observation=pb.Observation(player_utterance="x" * 2001)),
         grpc.StatusCode.INVALID_ARGUMENT),
    ]
    for request, code in bad:
        received = []
        with pytest.raises(grpc.aio.AioRpcError) as err:
            async for chunk in stub.StepStream(request):
                received.append(chunk)
        assert err.value.code() == code and received == []


async def test_client_cancel_stops_the_decoding(tiny_engine):
    async with serving(tiny_engine, max_tokens=180) as (stub, runtime):
        await client_cancel_stops_the_decoding(stub, runtime)


async def client_cancel_stops_the_decoding(stub, runtime):
    await stub.RegisterNpc(guard("k"))
    call = stub.StepStream(pb.StepRequest(npc_id="k", deadline_ms=3000, observation=pb.Observation(**TALK)))
    first = await call.read()
    assert first.WhichOneof("chunk") == "action"
    call.cancel()
    engine = runtime.dialogue.engine.engine
    deadline = time.monotonic() + 10
    while (runtime.stats.decisions < 1 or engine.stats().sessions_open) and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert runtime.stats.decisions == 1 and engine.stats().sessions_open == 0   # the step ended, its session closed
    assert runtime.stats.local_tokens < 180   # stopped well before the line's budget


# ---- the sentence splitter ----------------------------------------------------------------------------
def test_sentence_deltas_hold_words_and_mark_sentence_ends():
    marks = SentenceDeltas()
    out = []
    for piece in [" ", " Hel", "lo", " there", ".", " It", " costs 3", ".5 coins", " \u201cGr\u00fc\u00df", " dich!\u201d", " Bye", "  "]:
        out += marks.feed(piece)
    out += marks.finish()
    assert "".join(t for t, _ in out) == "Hello there. It costs 3.5 coins \u201cGr\u00fc\u00df dich!\u201d Bye"
    assert [t for t, end in out if end] == [" there.", " dich!\u201d", " Bye"]   # not after "3." (no space follows)
    assert out[-1][1] and all(t for t, _ in out)


def test_sentence_deltas_equal_the_stripped_line_for_any_split():
    rng = random.Random(3)
    words = ["Aye", "the", "gate.", "Who", "goes", "there?", "3.5", "coins!", "\u2026", "\u00e9t\u00e9", "\n", "  "]
    for _ in range(300):
        line = " ".join(rng.choice(words) for _ in range(rng.randint(0, 12)))
        cuts = sorted(rng.sample(range(len(line) + 1), k=min(len(line) + 1, rng.randint(0, 6))))
        pieces = [line[a:b] for a, b in zip([0, *cuts], [*cuts, len(line)])]
        marks = SentenceDeltas()
        out = [d for p in pieces for d in marks.feed(p)] + marks.finish()
        assert "".join(t for t, _ in out) == line.strip() == marks.text
        if line.strip():
            assert out[-1][1]
    assert split_sentences("One. Two? Three") == ["One.", " Two?", " Three"] and split_sentences("") == []
