"""Tiny random-weight Hugging Face model directories for tests and benchmarks (offline, seconds).

`make_tiny_hf_model(tmp_path, family)` writes config.json, model.safetensors and a locally trained
byte-level BPE tokenizer (tokenizer.json, tokenizer_config.json, special_tokens_map.json) that both
`transformers` and onnxruntime-genai's model builder / tokenizer accept. Nothing is downloaded.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

# Special tokens shared by every tiny model: ids 0, 1, 2 are pad, bos, eos.
PAD, BOS, EOS = "<pad>", "<s>", "</s>"
PAD_ID, BOS_ID, EOS_ID = 0, 1, 2

CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>{{ message['content'] }}</s>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)

_SEED_TEXT = """\
The blacksmith wipes the soot from his hands and nods at the traveller.
"Steel does not lie," he says. "Bring me ore from the northern mine and I will forge you a blade."
The innkeeper laughs. "Another round for the guards! The night is long and the road is cold."
A merchant counts silver coins by candlelight, wary of thieves in the market square.
The old wizard mutters about stars, dragons and the price of mushrooms in the spring.
Guards patrol the city walls; a farmer drives his cart to the gate with apples and wheat.
"Have you seen my cat?" asks the child near the well. "She ran into the forest after a bird."
"""

# family -> (HF config class name, architectures entry, default tiny config)
_FAMILIES: dict[str, tuple[str, str, dict]] = {
    "llama": (
        "LlamaConfig",
        "LlamaForCausalLM",
        dict(
            hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=256, rms_norm_eps=1e-6, rope_theta=10000.0,
            tie_word_embeddings=False, hidden_act="silu",
        ),
    ),
    "qwen2": (
        "Qwen2Config",
        "Qwen2ForCausalLM",
        dict(
            hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=256, rms_norm_eps=1e-6, rope_theta=10000.0,
            tie_word_embeddings=False, hidden_act="silu", use_sliding_window=False,
        ),
    ),
    "gpt2": (
        "GPT2Config",
        "GPT2LMHeadModel",
        dict(n_embd=64, n_layer=2, n_head=4, n_positions=256, n_inner=None, activation_function="gelu_new"),
    ),
}

SUPPORTED_TINY_FAMILIES = tuple(_FAMILIES)


def _corpus(vocab_size: int, seed: int) -> list[str]:
    """Built-in text plus seeded pseudo-words, enough for a BPE to reach `vocab_size` merges."""
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz"
    lines = _SEED_TEXT.splitlines() * 4
    n_words = max(200, vocab_size * 2)
    words = ["".join(rng.choice(letters) for _ in range(rng.randint(3, 9))) for _ in range(n_words)]
    for i in range(0, len(words), 12):
        lines.append(" ".join(words[i : i + 12]))
        lines.append(" ".join(words[i : i + 12]).capitalize() + ".")
    return lines


def make_tokenizer(out_dir: Path, *, vocab_size: int = 512, seed: int = 0, model_max_length: int = 256) -> int:
    """Train a byte-level BPE (GPT-2 style) locally and write the three tokenizer files.

    Returns the tokenizer's real vocabulary size (<= vocab_size)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[PAD, BOS, EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(vocab_size, seed), trainer=trainer)
    out_dir.mkdir(parents=True, exist_ok=True)
    tok.save(str(out_dir / "tokenizer.json"))
    tokenizer_config = {
        "tokenizer_class": "GPT2Tokenizer",
        "bos_token": BOS,
        "eos_token": EOS,
        "pad_token": PAD,
        "unk_token": None,
        "add_bos_token": False,
        "add_prefix_space": False,
        "model_max_length": model_max_length,
        "clean_up_tokenization_spaces": False,
        "chat_template": CHAT_TEMPLATE,
    }
    (out_dir / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=2))
    (out_dir / "special_tokens_map.json").write_text(
        json.dumps({"bos_token": BOS, "eos_token": EOS, "pad_token": PAD}, indent=2)
    )
    return tok.get_vocab_size()


def make_tiny_hf_model(
    tmp_path: str | Path,
    family: str = "llama",
    *,
    seed: int = 0,
    vocab_size: int = 512,
    name: str | None = None,
    **config_overrides,
) -> Path:
    """Write a tiny random-weight HF model directory under `tmp_path` and return its path.

    `config_overrides` go into the HF config (e.g. num_hidden_layers=3, tie_word_embeddings=True)."""
    import torch
    import transformers

    if family not in _FAMILIES:
        raise ValueError(f"unknown tiny family {family!r}; choose one of {', '.join(_FAMILIES)}")
    config_cls_name, arch, defaults = _FAMILIES[family]
    out = Path(tmp_path) / (name or f"tiny-{family}")
    out.mkdir(parents=True, exist_ok=True)

    max_len = config_overrides.get("max_position_embeddings", config_overrides.get("n_positions", 256))
    make_tokenizer(out, vocab_size=vocab_size, seed=seed, model_max_length=max_len)

    cfg_kwargs = {**defaults, **config_overrides}
    cfg_kwargs.update(vocab_size=vocab_size, bos_token_id=BOS_ID, eos_token_id=EOS_ID, pad_token_id=PAD_ID)
    config = getattr(transformers, config_cls_name)(**cfg_kwargs)
    config.architectures = [arch]
    torch.manual_seed(seed)
    model = getattr(transformers, arch)(config).eval()
    # Random init with std 0.02 gives near-uniform logits; a larger spread makes greedy decoding
    # (and so parity tests) meaningful instead of a coin toss between near-equal logits.
    with torch.no_grad():
        gen = torch.Generator().manual_seed(seed)
        for param in model.parameters():
            if param.dim() >= 2:
                param.normal_(0.0, 0.08, generator=gen)
        for pname, param in model.named_parameters():  # non-zero biases, so qkv bias paths are tested
            if pname.endswith(".bias"):
                param.normal_(0.0, 0.02, generator=gen)
    model.save_pretrained(out, safe_serialization=True)
    try:
        model.generation_config.save_pretrained(out)
    except Exception:  # noqa: BLE001 - generation_config.json is optional
        pass
    return out
