"""The shared client test vectors (clients_test/vectors) agree with Python: tokenizers, protobuf, the budget rule.

The C# (clients_test/unity) and C++ (clients_test/unreal) tests check the same files against their own code.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf import json_format
from tokenizers import Tokenizer

from npc_proto.v1 import agent_pb2, runtime_pb2

ROOT = Path(__file__).resolve().parent.parent.parent
VECTORS = ROOT / "clients_test" / "vectors"


def load(name: str) -> dict:
    return json.loads((VECTORS / name).read_text())


def test_vectors_are_up_to_date():
    result = subprocess.run([sys.executable, str(VECTORS / "make_vectors.py"), "--check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


TOKENIZER = load("tokenizer_vectors.json")


@pytest.mark.parametrize("case", TOKENIZER["cases"], ids=lambda c: repr(c["text"])[:32])
def test_tokenizer_vectors_match_tokenizers(case):
    tok = Tokenizer.from_file(str(ROOT / TOKENIZER["tokenizer"]))
    assert tok.encode(case["text"]).ids == case["ids"]
    assert tok.decode(case["ids"], skip_special_tokens=False) == case["decoded"]
    assert tok.decode(case["ids"], skip_special_tokens=True) == case["decoded_skip_special"]


def test_tokenizer_vectors_cover_special_tokens_and_unicode():
    ids = {i for c in TOKENIZER["cases"] for i in c["ids"]}
    assert set(TOKENIZER["special_ids"].values()) & ids, "some case must contain special tokens"
    assert any(ord(ch) > 0xFFFF for c in TOKENIZER["cases"] for ch in c["text"]), "some case must leave the BMP"


MESSAGE_TYPES = {name: getattr(module, name) for module in (runtime_pb2, agent_pb2)
                 for name in module.DESCRIPTOR.message_types_by_name}


@pytest.mark.parametrize("vector", load("wire_vectors.json")["messages"], ids=lambda v: v["type"])
def test_wire_vectors_round_trip_in_python(vector):
    message = MESSAGE_TYPES[vector["type"]].FromString(bytes.fromhex(vector["hex"]))
    assert message.SerializeToString(deterministic=True).hex() == vector["hex"]
    assert json_format.MessageToDict(message, preserving_proto_field_name=True) == vector["json"]
    rebuilt = json_format.ParseDict(vector["json"], MESSAGE_TYPES[vector["type"]]())
    assert rebuilt == message


def _slice(costs: list[float], budget: float) -> list[list[int]]:
    """Independent statement of the documented rule (not the generator's code)."""
    frames: list[list[int]] = [[]]
    spent = 0.0
    for step, cost in enumerate(costs):
        fits = not frames[-1] or spent + cost <= budget + 1e-9
        if not fits:
            frames.append([])
            spent = 0.0
        frames[-1].append(step)
        spent += cost
    return [f for f in frames if f]


@pytest.mark.parametrize("case", load("budget_vectors.json")["cases"], ids=lambda c: c["name"])
def test_budget_vectors_follow_the_rule(case):
    assert case["frames"] == _slice(case["costs_ms"], case["budget_ms"])
    flat = [s for frame in case["frames"] for s in frame]
    assert flat == list(range(len(case["costs_ms"]))), "every step runs once, in order"
    for frame in case["frames"]:
        if len(frame) > 1:
            assert sum(case["costs_ms"][s] for s in frame) <= case["budget_ms"] + 1e-9


STREAM = load("stream_vectors.json")


def _events(chunks: list[agent_pb2.StepChunk]) -> list[dict]:
    """Independent statement of the StepStream event rule (vectors/README.md), not the generator's code."""
    out: list[dict] = []
    pending: list[str] = []
    state = "want-action"
    for chunk in chunks:
        kind = chunk.WhichOneof("chunk")
        if kind is None:
            continue  # a chunk kind from a newer contract
        if (state == "want-action") != (kind == "action"):
            out.append({"event": "error"})
            return out
        if kind == "action":
            state = "dialogue"
            out.append({"event": "action", "npc_id": chunk.action.npc_id, "state": chunk.action.state,
                        "action": chunk.action.action, "arguments": dict(chunk.action.arguments)})
            continue
        if kind == "dialogue":
            pending.append(chunk.dialogue.text)
        if (kind == "dialogue" and chunk.dialogue.sentence_end) or kind == "done":
            if "".join(pending):
                out.append({"event": "sentence", "text": "".join(pending)})
            pending = []
        if kind == "done":
            out.append({"event": "done", "action": chunk.done.action, "dialogue": chunk.done.dialogue})
            return out
    out.append({"event": "error"})
    return out


@pytest.mark.parametrize("case", STREAM["cases"], ids=lambda c: c["name"])
def test_stream_vectors_follow_the_rule(case):
    chunks = []
    for recorded in case["chunks"]:
        chunk = agent_pb2.StepChunk.FromString(bytes.fromhex(recorded["hex"]))
        assert chunk.SerializeToString(deterministic=True).hex() == recorded["hex"]
        assert json_format.MessageToDict(chunk, preserving_proto_field_name=True) == recorded["json"]
        chunks.append(chunk)
    assert _events(chunks) == case["events"]


@pytest.mark.parametrize("case", [c for c in STREAM["cases"] if c["events"][-1]["event"] == "done"],
                         ids=lambda c: c["name"])
def test_well_formed_stream_vectors_keep_the_contract(case):
    """agent.proto: the action first and never retracted; the deltas concatenate to the final dialogue."""
    events = case["events"]
    assert events[0]["event"] == "action" and events[-1]["event"] == "done"
    assert events[-1]["action"] == events[0]["action"]
    sentences = [e["text"] for e in events if e["event"] == "sentence"]
    assert "".join(sentences) == events[-1]["dialogue"]
    assert all(e["event"] == "sentence" for e in events[1:-1])


def test_stream_vectors_cover_every_chunk_kind_and_error():
    kinds = {next(iter(c["json"]), "unknown") for case in STREAM["cases"] for c in case["chunks"]}
    assert kinds == {"action", "dialogue", "done", "unknown"}
    assert any(case["events"][-1] == {"event": "error"} for case in STREAM["cases"])
    assert any(ord(ch) > 0xFFFF for case in STREAM["cases"] for e in case["events"] for ch in e.get("text", ""))
