"""decode/: package verification, sampling, stop sequences, tokenizer, constraints."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from npc_runtime.decode.constraints import ConstraintSpec, compile_constraint
from npc_runtime.decode.package import load_package
from npc_runtime.decode.sampling import SamplingParams, StopMatcher, apply_repetition_penalty, sample_row
from npc_runtime.decode.tokenizer import TextTokenizer
from npc_runtime.errors import InvalidArgument, ModelPackageError


def test_package_loads(tiny_package):
    pkg = load_package(tiny_package)
    assert pkg.kind == "causal-lm" and pkg.kv_cache.layout in ("shared-buffer", "growing")
    assert "past_key_values.0.key" in pkg.input_names


def test_package_hash_mismatch_names_the_file(tiny_package, tmp_path):
    bad = tmp_path / "pkg"
    shutil.copytree(tiny_package, bad)
    with (bad / "tokenizer.json").open("a") as f:
        f.write(" ")
    with pytest.raises(ModelPackageError, match="tokenizer.json"):
        load_package(bad)


def test_package_contract_errors(tiny_package, tmp_path):
    with pytest.raises(ModelPackageError, match="manifest.json"):
        load_package(tmp_path)
    bad = tmp_path / "pkg"
    shutil.copytree(tiny_package, bad)
    manifest = json.loads((bad / "manifest.json").read_text())
    manifest["format_version"] = 99
    (bad / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelPackageError, match="format_version"):
        load_package(bad)


def test_sampling_params_validation():
    for bad in (dict(temperature=-1), dict(top_p=0), dict(top_k=-2), dict(repetition_penalty=0), dict(stop=("",))):
        with pytest.raises(InvalidArgument):
            SamplingParams(**bad).validate()


def test_seeded_sampling_is_reproducible_and_respects_top_k():
    logits = np.random.default_rng(0).normal(size=100).astype(np.float32)
    params = SamplingParams(temperature=1.0, top_k=5, seed=7)
    draw = lambda: [sample_row(logits, params, rng) for rng in [np.random.default_rng(7)] for _ in range(50)]
    a, b = draw(), draw()
    assert a == b
    assert set(a) <= set(np.argsort(-logits)[:5].tolist())
    top_p = SamplingParams(temperature=1.0, top_p=1e-6)
    assert sample_row(logits, top_p, np.random.default_rng(1)) == int(np.argmax(logits))


def test_repetition_penalty_lowers_seen_tokens():
    logits = np.array([2.0, -1.0, 3.0], np.float32)
    out = apply_repetition_penalty(logits, [0, 1], 2.0)
    assert out.tolist() == [1.0, -2.0, 3.0]


def test_stop_matcher_across_token_boundaries():
    m = StopMatcher(["</end>", "STOP"])
    emitted = ""
    for piece in ["Hello <", "/e", "nd> more"]:
        text, stopped = m.feed(piece)
        emitted += text
        if stopped:
            break
    assert stopped and emitted == "Hello "
    m = StopMatcher(["ab"])
    assert m.feed("xa") == ("x", False)
    assert m.feed("c") == ("ac", False)


def test_incremental_detokenizer_never_splits_utf8(tiny_package):
    tok = TextTokenizer.from_package(load_package(tiny_package))
    text = "Ünïcödé façade — 日本語 🙂 café"
    ids = tok.encode(text)
    detok = tok.detokenizer()
    deltas = [detok.push(i) for i in ids]
    assert "".join(deltas) + detok.flush() == text
    assert all("\ufffd" not in d for d in deltas)


def _run_constraint(constraint, rng, limit=400):
    state, out = constraint.initial_state(), []
    for _ in range(limit):
        allowed = np.flatnonzero(constraint.allowed_token_mask(state))
        assert allowed.size, "a constraint must always allow something"
        token = int(rng.choice(allowed))
        if token in constraint.eos_ids:
            break
        state = constraint.advance(state, token)
        out.append(token)
        if constraint.is_complete(state):
            break
    return out, state


def test_choice_constraint_forces_one_of(tiny_package):
    tok = TextTokenizer.from_package(load_package(tiny_package))
    choices = ["[greet]", "[trade]", "[attack]", "[flee]"]
    c = compile_constraint(ConstraintSpec.one_of(choices), tok, vocab_size=tok.vocab_size)
    rng = np.random.default_rng(0)
    for _ in range(20):
        out, state = _run_constraint(c, rng)
        assert tok.decode(out) in choices and c.is_complete(state)
    with pytest.raises(InvalidArgument):
        c.advance(c.initial_state(), tok.encode("zzz")[0])


def test_json_schema_constraint_forces_valid_json(tiny_package):
    tok = TextTokenizer.from_package(load_package(tiny_package))
    schema = {"type": "object", "required": ["action", "line"], "properties": {
        "action": {"enum": ["greet", "trade", "flee"]}, "line": {"type": "string", "maxLength": 30},
        "gold": {"type": "integer"}, "mood": {"type": "number"}, "hostile": {"type": "boolean"}}}
    c = compile_constraint(ConstraintSpec.json(schema), tok, vocab_size=tok.vocab_size)
    rng = np.random.default_rng(1)
    for _ in range(20):
        out, state = _run_constraint(c, rng)
        assert c.is_complete(state)
        value = json.loads(tok.decode(out))
        assert value["action"] in ("greet", "trade", "flee") and len(value["line"]) <= 30
        assert isinstance(value.get("gold", 0), int) and isinstance(value.get("hostile", True), bool)


def test_json_schema_rejects_unsupported(tiny_package):
    tok = TextTokenizer.from_package(load_package(tiny_package))
    # nested objects and arrays compile (decode/schema_grammar.py); these are refused, never ignored
    for schema in ({"type": "string", "pattern": "^a+$"}, {"type": "object", "properties": {"a": {"$ref": "#"}}},
                   {"type": "object", "properties": {}, "required": ["x"]}):
        with pytest.raises(InvalidArgument):
            compile_constraint(ConstraintSpec.json(schema), tok, vocab_size=tok.vocab_size)


def _byte_tokenizer() -> TextTokenizer:
    """One token per byte (byte-level BPE without merges): a character of several bytes spans tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    vocab = {ch: i for i, ch in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    return TextTokenizer(tok, bos=None, eos=())


def test_detokenizer_drops_a_character_cut_off_at_the_end():
    tok = _byte_tokenizer()
    ids = tok.encode("hé 🙂")                  # é: 2 bytes, 🙂: 4 bytes
    assert len(ids) == 1 + 2 + 1 + 4
    detok = tok.detokenizer()
    deltas = [detok.push(i) for i in ids[:-2]]   # the turn ends two bytes into the emoji
    tail = detok.flush()
    assert "".join(deltas) + tail == "hé " and "\ufffd" not in tail
    # a complete character held with the cut-off one still comes out
    detok = tok.detokenizer()
    deltas = [detok.push(i) for i in tok.encode("a")] + [detok.push(i) for i in tok.encode("é")[:1]]
    assert "".join(deltas) + detok.flush() == "a"


@pytest.mark.parametrize(("quantization", "invariant"), [
    (None, True),                                                              # fp32 / fp16
    ({"method": "MatMulNBits", "bits": 4, "batch_invariant": True}, True),     # int4, default int8
    ({"method": "MatMulInteger", "batch_invariant": False}, False),            # --int8-kernel matmulinteger
    ({"method": "onnxruntime.quantization.quantize_dynamic", "op": "MatMulInteger"}, False),   # bench int8dyn
])
def test_batch_invariance_comes_from_the_manifest(tiny_package, quantization, invariant):
    """ListModels tells clients when greedy replies depend on the batch (ModelInfo.batch_dependent)."""
    import dataclasses

    from npc_runtime.decode.package import load_package
    from npc_runtime.serving.translate import model_info_to_proto
    from npc_runtime.sessions.engine import ModelInfo

    package = load_package(tiny_package, verify_hashes=False)
    manifest = {k: v for k, v in package.manifest.items() if k != "quantization"}
    if quantization is not None:
        manifest["quantization"] = quantization
    assert dataclasses.replace(package, manifest=manifest).batch_invariant is invariant
    info = ModelInfo(name="m", path="", kind="causal-lm", family="llama", precision="int8", target="ort",
                     vocab_size=8, context_length=8, kv_layout="", max_sessions=1, kv_bytes_per_token=1,
                     has_chat_template=False, batch_invariant=invariant)
    assert model_info_to_proto(info).batch_dependent is (not invariant)
