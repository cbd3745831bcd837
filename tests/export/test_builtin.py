"""Built-in models: corpus, tokenizer, chat template, committed weights, policy, tiny training runs."""

from __future__ import annotations

import json
import re

import pytest
import torch

from npc_export.builtin import ACTIONS, BUILTIN_MODELS, dialogue_dir, format_prompt, load_policy
from npc_export.builtin.corpus import (
    HELDOUT_COMBOS, MOODS, PERSONAS, SITUATIONS, SPECIAL_TOKENS, choose_action, generate_corpus,
)

REPLY_RE = re.compile(r"^\[([a-z_]+)\] \S")


@pytest.fixture(scope="module")
def corpus():
    return generate_corpus(seed=0, num_train=3000, num_heldout=300)


@pytest.fixture(scope="module")
def tokenizer():
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(dialogue_dir() / "tokenizer.json"))


def test_public_api_constants():
    assert BUILTIN_MODELS == ("npc-dialogue", "npc-policy")
    assert ACTIONS == ["idle", "greet", "talk", "trade", "refuse", "warn", "attack", "flee", "call_guards",
                       "patrol", "follow", "give"]


def test_corpus_is_deterministic(corpus):
    again = generate_corpus(seed=0, num_train=3000, num_heldout=300)
    assert corpus == again
    other = generate_corpus(seed=1, num_train=3000, num_heldout=300)
    assert [s.text for s in other.train] != [s.text for s in corpus.train]


def test_heldout_combinations_are_disjoint_from_training(corpus):
    heldout = set(HELDOUT_COMBOS)
    assert len(heldout) >= 12
    assert not {(s.role, s.situation) for s in corpus.train} & heldout
    assert {(s.role, s.situation) for s in corpus.heldout} <= heldout
    # every role and every situation still appears in training
    assert {s.role for s in corpus.train} == {p.role for p in PERSONAS}
    assert {s.situation for s in corpus.train} == {s.key for s in SITUATIONS}


def test_samples_follow_the_chat_format(corpus):
    for sample in corpus.train[:300] + corpus.heldout[:100]:
        assert sample.text.startswith("<s><|system|>You are ")
        assert sample.text.endswith("<|end|></s>")
        assert f"Mood: {sample.mood}." in sample.system
        match = REPLY_RE.match(sample.reply)
        assert match and match.group(1) == sample.action in ACTIONS
        assert sample.action == choose_action(sample.role, sample.situation, sample.mood)


def test_corpus_is_varied(corpus):
    replies = {s.reply for s in corpus.train}
    assert len(replies) > 0.6 * len(corpus.train)
    assert {s.mood for s in corpus.train} == set(MOODS)
    assert {s.action for s in corpus.train} == set(ACTIONS)


def test_tokenizer_special_ids_and_round_trip(tokenizer, corpus):
    for expected_id, token in enumerate(SPECIAL_TOKENS):
        assert tokenizer.token_to_id(token) == expected_id
    assert tokenizer.get_vocab_size() == 2048
    for sample in corpus.heldout[:50]:
        ids = tokenizer.encode(sample.text).ids
        assert ids[0] == 1 and ids[-1] == 2
        assert tokenizer.decode(ids, skip_special_tokens=False) == sample.text
    text = "Ünïcode & émojis 🐉 survive the byte-level round trip."
    assert tokenizer.decode(tokenizer.encode(text).ids) == text


def test_chat_template_matches_format_prompt(corpus):
    from transformers import AutoTokenizer

    hf = AutoTokenizer.from_pretrained(dialogue_dir())
    assert (hf.bos_token_id, hf.eos_token_id, hf.pad_token_id) == (1, 2, 0)
    sample = corpus.heldout[0]
    messages = [{"role": "system", "content": sample.system}, {"role": "user", "content": sample.user}]
    rendered = hf.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert rendered == sample.prompt
    persona = "You are Bram, the village guard. Traits: stern, loyal."
    prompt = format_prompt(persona, "the player is near the gate at night.", "suspicious", "Let me through.")
    assert prompt == ("<s><|system|>You are Bram, the village guard. Traits: stern, loyal. Mood: suspicious. "
                      "Situation: the player is near the gate at night.<|end|><|user|>Let me through.<|end|>"
                      "<|assistant|>")
    messages = [{"role": "system", "content": persona + " Mood: suspicious. Situation: the player is near the "
                 "gate at night."}, {"role": "user", "content": "Let me through."}]
    assert hf.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) == prompt
    full = messages + [{"role": "assistant", "content": sample.reply}]
    assert hf.apply_chat_template(full, tokenize=False).endswith(f"<|assistant|>{sample.reply}<|end|></s>")


def test_committed_dialogue_weights_load_and_are_small():
    from transformers import AutoModelForCausalLM

    directory = dialogue_dir()
    weights = sum(f.stat().st_size for f in directory.glob("*.safetensors"))
    assert weights <= 20_000_000
    model = AutoModelForCausalLM.from_pretrained(directory)
    assert model.config.model_type == "llama"
    assert model.config.num_key_value_heads < model.config.num_attention_heads
    assert not model.config.tie_word_embeddings
    assert sum(p.numel() for p in model.parameters()) <= 5_000_000
    for name in ("generation_config.json", "tokenizer_config.json", "special_tokens_map.json",
                 "training_report.json"):
        assert (directory / name).is_file()
    report = json.loads((directory / "training_report.json").read_text())
    assert report["heldout_perplexity"] > 1.0


def test_greedy_generation_on_heldout_prompt_is_an_action_and_a_line(tokenizer):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(dialogue_dir()).eval()
    heldout = generate_corpus(seed=5, num_train=0, num_heldout=4).heldout
    for sample in heldout:
        ids = torch.tensor([tokenizer.encode(sample.prompt).ids])
        with torch.no_grad():
            out = model.generate(ids, max_new_tokens=40, do_sample=False, eos_token_id=[6, 2], pad_token_id=0)
        reply = tokenizer.decode(out[0, ids.shape[1]:].tolist(), skip_special_tokens=True)
        match = REPLY_RE.match(reply)
        assert match, reply
        assert match.group(1) in ACTIONS


def test_policy_loads_with_the_right_shapes():
    model, spec = load_policy()
    assert not model.training
    assert spec["actions"] == ACTIONS
    num_features = spec["num_features"]
    assert num_features == len(spec["features"]) >= 12
    obs = torch.rand(5, num_features) * 3
    logits, confidence = model(obs)
    assert logits.shape == (5, len(ACTIONS)) and confidence.shape == (5,)
    assert logits.dtype == torch.float32
    assert bool(((confidence > 0) & (confidence <= 1)).all())
    assert torch.allclose(confidence, torch.softmax(logits, -1).amax(-1))


def test_policy_follows_the_obvious_cases():
    from npc_export.builtin.policy import FEATURE_INDEX

    model, spec = load_policy()

    def act(**values):
        obs = torch.zeros(1, spec["num_features"])
        obs[0, FEATURE_INDEX["player_distance"]] = 2.0
        for name, value in values.items():
            obs[0, FEATURE_INDEX[name]] = value
        return ACTIONS[int(model(obs)[0].argmax())]

    assert act(npc_is_guard=1, player_attacking=1, player_hostility=0.9, player_armed=1) == "attack"
    assert act(npc_is_merchant=1, player_talking=1, player_reputation=0.5) == "trade"
    assert act(npc_is_villager=1, player_attacking=1, player_hostility=0.9) == "flee"


def test_tiny_training_runs(tmp_path):
    from npc_export.builtin.train import main

    assert main(["--out", str(tmp_path), "--steps", "2", "--no-progress", "--only", "policy"]) == 0
    assert (tmp_path / "npc-policy" / "policy.safetensors").is_file()


def test_tiny_dialogue_training_runs(tmp_path):
    from dataclasses import replace

    from npc_export.builtin.train_dialogue import DialogueModelConfig, DialogueTrainConfig, train_dialogue

    cfg = DialogueTrainConfig(steps=2, batch_size=4, warmup_steps=1, num_train=300, num_heldout=20,
                              eval_loss_samples=8, eval_generate_samples=2,
                              model=DialogueModelConfig(hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=1,
                                                        intermediate_size=64, vocab_size=512))
    report = train_dialogue(tmp_path / "npc-dialogue", replace(cfg, seed=3), progress=False)
    assert report["steps"] == 2 and report["parameters"] < 100_000
    from transformers import AutoModelForCausalLM

    assert AutoModelForCausalLM.from_pretrained(tmp_path / "npc-dialogue").config.num_hidden_layers == 1
