"""Writes the shared client test vectors that the Python, C# (Unity) and C++ (Unreal) tests all check.

    .venv/bin/python clients_test/vectors/make_vectors.py           # (re)write the vectors
    .venv/bin/python clients_test/vectors/make_vectors.py --check   # exit 1 when the files are stale

Files (JSON, next to this script):
  tokenizer_vectors.json  token ids (tokenizers' encode) and decoded text for given texts, with the tokenizer used
  wire_vectors.json       hex of serialized npc.v1 messages (Python protobuf, deterministic) and their JSON form
  budget_vectors.json     frame-budget slicing traces: which steps run in which frame
  stream_vectors.json     NpcAgent.StepStream chunk sequences (wire hex) and the events a client raises from them
  manifest_vectors.json   valid and invalid manifest.json texts with the error rule / field (manifest_cases.py)
The tokenizer is the built-in dialogue tokenizer (export/npc_export/builtin/weights/npc-dialogue/tokenizer.json)
when it exists; otherwise a small byte-level BPE tokenizer with the same configuration, trained here once on a
fixed corpus and kept as clients_test/vectors/tokenizer.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from google.protobuf import json_format
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from npc_proto.v1 import agent_pb2, runtime_pb2

from manifest_cases import manifest_vectors  # beside this script (run as a script: its folder is on sys.path)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
BUILTIN_TOKENIZER = ROOT / "export" / "npc_export" / "builtin" / "weights" / "npc-dialogue" / "tokenizer.json"
LOCAL_TOKENIZER = HERE / "tokenizer.json"
SPECIAL_TOKENS = ["<pad>", "<s>", "</s>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]

# The rule every client implements (FrameBudgetSlicer in C#, the C++ core's slicer).
BUDGET_RULE = (
    "Steps run in order. A step runs in the current frame when it is the frame's first step, or when "
    "spent_ms + cost_ms <= budget_ms (+1e-9); otherwise the frame ends and the step runs first in the next frame."
)

TRAINING_CORPUS = [
    "Halt! Who goes there? State your business at the gate.",
    "Welcome to my stall, traveller. Fresh bread, two coins a loaf.",
    "I don't trust strangers who wander the market after dark.",
    "The guard captain said we'll close the gates at sunset.",
    "Rain again... the harvest won't survive another week of this.",
    "You've got 3 apples and 12 coins? That's a fair trade, friend.",
    "<|system|>You are Bram, a stern but loyal guard.<|end|><|user|>Hello there!<|end|><|assistant|>Move along.<|end|>",
]

TEXTS = [
    "Hello there!",
    "Halt! Who goes there?",
    "I don't trust strangers; they'll steal bread.",
    "  leading spaces and   runs of spaces  ",
    "tabs\tand\nnew lines\n\n",
    "Numbers: 3 apples, 12 coins, 2026.",
    "Café, naïve, Grüße — unicode letters",
    "emoji 🙂 and 🛡️ shields",
    "<s><|system|>You are Bram, a guard.<|end|><|user|>Hi!<|end|><|assistant|>",
    "text right after a special<|end|>and before",
    "",
]


def load_tokenizer() -> tuple[Tokenizer, Path]:
    if BUILTIN_TOKENIZER.exists():
        return Tokenizer.from_file(str(BUILTIN_TOKENIZER)), BUILTIN_TOKENIZER
    if not LOCAL_TOKENIZER.exists():
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=SPECIAL_TOKENS, min_frequency=2,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
        tok.train_from_iterator(TRAINING_CORPUS * 4, trainer=trainer)
        tok.save(str(LOCAL_TOKENIZER))
    return Tokenizer.from_file(str(LOCAL_TOKENIZER)), LOCAL_TOKENIZER


def tokenizer_vectors() -> dict:
    tok, path = load_tokenizer()
    cases = []
    for text in TEXTS:
        ids = tok.encode(text).ids
        cases.append({
            "text": text,
            "ids": ids,
            "decoded": tok.decode(ids, skip_special_tokens=False),
            "decoded_skip_special": tok.decode(ids, skip_special_tokens=True),
        })
    return {
        "tokenizer": str(path.relative_to(ROOT)),
        "vocab_size": tok.get_vocab_size(with_added_tokens=True),
        "special_ids": {t: tok.token_to_id(t) for t in SPECIAL_TOKENS if tok.token_to_id(t) is not None},
        "cases": cases,
    }


def wire_messages() -> list[tuple[str, object]]:
    tick = runtime_pb2.TickRequest(entries=[
        runtime_pb2.TickEntry(session_id="s-guard-01", budget_ms=2.0, max_tokens=8),
        runtime_pb2.TickEntry(session_id="s-merchant-02", budget_ms=1.5, new_input="How much for the bread?",
                              constraint=runtime_pb2.Constraint(allowed=runtime_pb2.AllowedSequences(
                                  sequences=["[greet]", "[trade]"]))),
    ])
    tick_response = runtime_pb2.TickResponse(tick_ms=3.25, results=[
        runtime_pb2.TickResult(session_id="s-guard-01", token_ids=[17, 300, 2047, 5], text_delta="Halt, café",
                               stats=runtime_pb2.TickStats(tick_ms=1.75, steps=4, max_batch=2, context_tokens=93)),
        runtime_pb2.TickResult(session_id="s-missing", error="unknown session id 's-missing'", error_code=5,
                               finished=True, finish_reason=runtime_pb2.FINISH_REASON_ERROR),
    ])
    open_session = runtime_pb2.OpenSessionRequest(
        model="npc-dialogue", npc_id="guard-01", prefix="You are Bram, a stern guard.", prompt="Hello!",
        sampling=runtime_pb2.SamplingParams(temperature=0.7, top_k=40, top_p=0.9, repetition_penalty=1.1,
                                            seed=18446744073709551557, stop=["<|end|>", "\n\n"]),
        limits=runtime_pb2.SessionLimits(max_new_tokens=64, max_context=512, idle_timeout_s=600),
        constraint=runtime_pb2.Constraint(json_schema='{"type":"object"}'), apply_chat_template=True)
    generate_chunk = runtime_pb2.GenerateChunk(token_ids=[1, 128, 129], text="Move along.", finished=True,
                                               finish_reason=runtime_pb2.FINISH_REASON_EOS)
    handshake = runtime_pb2.HandshakeResponse(protocol_version="1", server_version="0.1.0",
                                              capabilities=["tick", "generate", "agent"], max_tick_entries=256,
                                              max_sessions=1024)
    step = agent_pb2.StepRequest(
        npc_id="guard-01", deadline_ms=150.0,
        observation=agent_pb2.Observation(game_time_s=1234.5, values={"player_distance": 3.5},
                                          tags={"location": "market"}, player_utterance="Give me the key!"),
        events=[agent_pb2.GameEvent(kind="theft", description="The player stole an apple.", importance=7.0,
                                    story_critical=True, attributes={"item": "apple"})])
    decision = agent_pb2.Decision(
        npc_id="guard-01", state="alert", action="warn", arguments={"target": "player"},
        dialogue="Drop it, thief!", escalated=True, reason="escalated: low confidence 0.31", confidence=0.625,
        source=agent_pb2.DECISION_SOURCE_CLOUD, allowed_actions=["warn", "chase", "idle"], latency_ms=42.5,
        memories_written=2, rejected_action=False)
    play = agent_pb2.PlayRequest(seq=7, register=[agent_pb2.RegisterNpcRequest(
        npc_id="merchant-02", persona=agent_pb2.Persona(name="Mira", role="merchant", traits=["shrewd", "warm"]),
        fsm_name="merchant", memories=[agent_pb2.MemorySeed(text="The guard owes me 3 coins.", importance=4.0)],
        replace=True)])
    play_response = agent_pb2.PlayResponse(seq=7, decisions=[decision], errors=[
        agent_pb2.NpcError(npc_id="ghost", code=5, message="unknown NPC 'ghost'")])
    recall = agent_pb2.RecallMemoriesRequest(npc_id="guard-01", query="the stolen crown", limit=5)
    recalled = agent_pb2.RecallMemoriesResponse(memories=[
        agent_pb2.Memory(text="The player stole an apple.", importance=7.0, game_time_s=1234.5,
                         kind=agent_pb2.MEMORY_KIND_OBSERVATION, score=0.875),
        agent_pb2.Memory(text="Thieves come back to the market at night.", importance=5.5, game_time_s=1300.25,
                         kind=agent_pb2.MEMORY_KIND_REFLECTION, score=0.5),
    ])
    return [
        ("TickRequest", tick), ("TickResponse", tick_response), ("OpenSessionRequest", open_session),
        ("GenerateChunk", generate_chunk), ("HandshakeResponse", handshake), ("StepRequest", step),
        ("Decision", decision), ("PlayRequest", play), ("PlayResponse", play_response),
        ("RecallMemoriesRequest", recall), ("RecallMemoriesResponse", recalled),
    ]


def wire_vectors() -> dict:
    return {
        "note": "hex = SerializeToString(deterministic=True); maps hold one entry so field order is unambiguous",
        "messages": [
            {"type": name, "package": "npc.v1", "hex": msg.SerializeToString(deterministic=True).hex(),
             "json": json_format.MessageToDict(msg, preserving_proto_field_name=True)}
            for name, msg in wire_messages()
        ],
    }


def plan_frames(costs: list[float], budget: float) -> list[list[int]]:
    frames: list[list[int]] = []
    current: list[int] = []
    spent = 0.0
    for step, cost in enumerate(costs):
        if current and spent + max(0.0, cost) > budget + 1e-9:
            frames.append(current)
            current, spent = [], 0.0
        current.append(step)
        spent += max(0.0, cost)
    if current:
        frames.append(current)
    return frames


BUDGET_CASES = [
    ("uniform layers fit four per frame", 2.0, [0.5] * 10),
    ("exact fit counts as fitting", 1.5, [0.5, 0.5, 0.5, 0.5, 0.5, 0.5]),
    ("an oversized step still runs alone", 1.0, [0.25, 3.0, 0.25, 0.25]),
    ("first step of a frame always runs", 0.5, [1.0, 1.0, 1.0]),
    ("mixed costs", 2.0, [1.25, 0.5, 0.5, 1.5, 0.25, 0.25, 2.0, 0.125]),
    ("zero-cost steps never end a frame", 1.0, [1.0, 0.0, 0.0, 0.5]),
    ("prefill then decode tokens", 4.0, [3.5, 0.75, 0.75, 0.75, 0.75, 0.75, 0.75]),
    ("no steps", 2.0, []),
]


def budget_vectors() -> dict:
    return {
        "rule": BUDGET_RULE,
        "cases": [{"name": n, "budget_ms": b, "costs_ms": c, "frames": plan_frames(c, b)} for n, b, c in BUDGET_CASES],
    }


# The rule every client implements when it turns StepStream chunks into events (NpcDialogueStream in C#,
# StepStreamAssembler in the C++ core); tests/clients/test_vectors.py states it again independently.
STREAM_RULE = (
    "The first chunk must be `action`: raise action. Each `dialogue` delta appends its text to a buffer; a delta "
    "with sentence_end raises the buffer as one sentence (exactly the concatenated text, spaces kept) and clears "
    "it; an empty buffer raises nothing. `done` raises what is left in the buffer as a last sentence, then done; "
    "nothing is read after done. A chunk with none of the three set (a newer server's kind) is skipped. Any other "
    "order (a delta or done before the action, a second action) or a stream that ends before done raises error "
    "and stops; buffered text is then dropped."
)

_UNKNOWN_CHUNK = bytes.fromhex("4a00")  # field 9, length 0: a chunk kind this contract does not define yet


def _action(**fields) -> agent_pb2.StepChunk:
    return agent_pb2.StepChunk(action=agent_pb2.ActionChosen(**fields))


def _delta(text: str, end: bool, latency_ms: float) -> agent_pb2.StepChunk:
    return agent_pb2.StepChunk(dialogue=agent_pb2.DialogueDelta(text=text, sentence_end=end, latency_ms=latency_ms))


def _done(**fields) -> agent_pb2.StepChunk:
    return agent_pb2.StepChunk(done=agent_pb2.Decision(**fields))


def stream_cases() -> list[tuple[str, list[bytes]]]:
    guard = dict(npc_id="guard-01", state="alert", arguments={"target": "player"},
                 allowed_actions=["warn", "chase", "idle"])
    warn = _action(action="warn", source=agent_pb2.DECISION_SOURCE_LOCAL_MODEL, confidence=0.75, latency_ms=12.5,
                   **guard)
    line = "Drop it, thief! The café is closed 🛡️."
    done_warn = _done(action="warn", dialogue=line, reason="local model: theft witnessed", confidence=0.75,
                      source=agent_pb2.DECISION_SOURCE_LOCAL_MODEL, latency_ms=35.5, memories_written=2, **guard)
    idle = _action(npc_id="villager-03", state="idle", action="idle", source=agent_pb2.DECISION_SOURCE_FSM,
                   confidence=1.0, allowed_actions=["idle", "greet"], latency_ms=0.25)
    cases = [
        ("action, two sentences, done", [
            warn, _delta("Drop it", False, 20.25), _delta(", thief!", True, 24.5), _delta(" The café", False, 30.0),
            _delta(" is closed 🛡️.", True, 35.5), done_warn]),
        ("action without a line", [
            idle, _done(npc_id="villager-03", state="idle", action="idle", reason="fsm: reflex in state 'idle'",
                        confidence=1.0, source=agent_pb2.DECISION_SOURCE_FSM, allowed_actions=["idle", "greet"],
                        latency_ms=0.5)]),
        ("unmarked end of line is raised at done", [
            idle, _delta("Hmm", False, 3.0), _delta("...", False, 4.0),
            _done(npc_id="villager-03", state="idle", action="idle", dialogue="Hmm...", confidence=1.0,
                  source=agent_pb2.DECISION_SOURCE_FSM, allowed_actions=["idle", "greet"], latency_ms=4.5)]),
        ("empty marks and an unknown chunk kind", [
            warn, _delta("Halt!", False, 15.0), _delta("", True, 15.5), _UNKNOWN_CHUNK,
            _delta(" Who goes there?", True, 21.0), _delta("", True, 21.5),
            _done(action="warn", dialogue="Halt! Who goes there?", confidence=0.75,
                  source=agent_pb2.DECISION_SOURCE_LOCAL_MODEL, latency_ms=22.0, **guard)]),
        ("stream ends before done", [warn, _delta("Move", False, 14.0)]),
        ("dialogue before the action", [_delta("Hi!", True, 1.0), warn]),
        ("a second action", [warn, _delta("Stop", False, 14.0), warn]),
    ]
    return [(name, [c if isinstance(c, bytes) else c.SerializeToString(deterministic=True) for c in chunks])
            for name, chunks in cases]


def stream_events(chunks: list[bytes]) -> list[dict]:
    """The events STREAM_RULE gives for a chunk sequence."""
    events: list[dict] = []
    buffer = ""
    seen_action = False
    for raw in chunks:
        chunk = agent_pb2.StepChunk.FromString(raw)
        kind = chunk.WhichOneof("chunk")
        if kind is None:
            continue
        if kind == "action" and not seen_action:
            seen_action = True
            a = chunk.action
            events.append({"event": "action", "npc_id": a.npc_id, "state": a.state, "action": a.action,
                           "arguments": dict(a.arguments)})
        elif kind == "dialogue" and seen_action:
            buffer += chunk.dialogue.text
            if chunk.dialogue.sentence_end and buffer:
                events.append({"event": "sentence", "text": buffer})
                buffer = ""
        elif kind == "done" and seen_action:
            if buffer:
                events.append({"event": "sentence", "text": buffer})
            d = chunk.done
            events.append({"event": "done", "action": d.action, "dialogue": d.dialogue})
            return events
        else:
            break
    events.append({"event": "error"})
    return events


def stream_vectors() -> dict:
    return {
        "rule": STREAM_RULE,
        "cases": [
            {"name": name,
             "chunks": [{"hex": raw.hex(), "json": json_format.MessageToDict(
                 agent_pb2.StepChunk.FromString(raw), preserving_proto_field_name=True)} for raw in chunks],
             "events": stream_events(chunks)}
            for name, chunks in stream_cases()
        ],
    }


def render() -> dict[str, str]:
    files = {
        "tokenizer_vectors.json": tokenizer_vectors(),
        "wire_vectors.json": wire_vectors(),
        "budget_vectors.json": budget_vectors(),
        "stream_vectors.json": stream_vectors(),
        "manifest_vectors.json": manifest_vectors(),
    }
    return {name: json.dumps(data, indent=2, ensure_ascii=False) + "\n" for name, data in files.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="exit 1 when the committed vectors are stale")
    args = parser.parse_args(argv)
    rendered = render()
    if args.check:
        stale = [n for n, text in rendered.items() if not (HERE / n).exists() or (HERE / n).read_text() != text]
        if stale:
            print("stale vectors (run clients_test/vectors/make_vectors.py):", *stale, sep="\n  ")
            return 1
        print("vectors are up to date")
        return 0
    for name, text in rendered.items():
        (HERE / name).write_text(text)
    print(f"wrote {', '.join(rendered)} to {HERE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
