"""modeling.Decoder (the portable decoder) reproduces the Hugging Face models, growing and fixed KV."""

import json

import pytest
import torch
from transformers import AutoModelForCausalLM

from npc_export.modeling import Decoder, DecoderConfig, load_hf_weights


@pytest.mark.parametrize("family", ["llama", "qwen2", "gpt2"])
def test_decoder_matches_hf(tiny_models, family):
    path = tiny_models(family)
    cfg = DecoderConfig.from_hf(json.loads((path / "config.json").read_text()), family)
    weights = load_hf_weights(path)
    growing, fixed = Decoder(cfg).eval(), Decoder(cfg, kv_layout="fixed").eval()
    growing.load_hf_state_dict(weights)
    fixed.load_hf_state_dict(weights)
    hf = AutoModelForCausalLM.from_pretrained(str(path)).eval()
    ids = torch.randint(3, cfg.vocab_size, (1, 9), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = hf(ids).logits[0]
        # growing: prefill 5, then 4 single steps with the past
        past = [torch.zeros(1, cfg.num_kv_heads, 0, cfg.head_dim) for _ in range(2 * cfg.num_layers)]
        out = growing(ids[:, :5], torch.ones(1, 5, dtype=torch.long), torch.arange(5)[None], *past)
        rows, past = [out[0][0]], out[1:]
        for t in range(5, 9):
            out = growing(ids[:, t : t + 1], torch.ones(1, t + 1, dtype=torch.long), torch.tensor([[t]]), *past)
            rows.append(out[0][0])
            past = out[1:]
        assert (torch.cat(rows) - ref).abs().max() < 1e-4
        # fixed capacity: one token per call, the mask selects live slots
        capacity = 12
        past = [torch.zeros(1, cfg.num_kv_heads, capacity, cfg.head_dim) for _ in range(2 * cfg.num_layers)]
        mask = torch.zeros(1, capacity + 1, dtype=torch.long)
        mask[0, -1] = 1
        rows = []
        for t in range(9):
            out = fixed(ids[:, t : t + 1], mask, torch.tensor([[t]]), *past)
            rows.append(out[0][0])
            past = out[1:]
            assert out[1].shape == (1, cfg.num_kv_heads, capacity, cfg.head_dim)
            mask = mask.clone()
            mask[0, t] = 1
        assert (torch.cat(rows) - ref).abs().max() < 1e-4


def test_left_padding_is_masked(tiny_models):
    """A padded slot (mask 0) does not change the logits of the real tokens."""
    path = tiny_models("llama")
    cfg = DecoderConfig.from_hf(json.loads((path / "config.json").read_text()), "llama")
    model = Decoder(cfg).eval()
    model.load_hf_state_dict(load_hf_weights(path))
    ids = torch.tensor([[5, 6, 7]])
    empty = [torch.zeros(1, cfg.num_kv_heads, 0, cfg.head_dim) for _ in range(2 * cfg.num_layers)]
    with torch.no_grad():
        plain = model(ids, torch.ones(1, 3, dtype=torch.long), torch.arange(3)[None], *empty)[0]
        padded = model(torch.tensor([[0, 5, 6, 7]]), torch.tensor([[0, 1, 1, 1]]), torch.tensor([[0, 0, 1, 2]]), *empty)[0]
    assert (padded[:, 1:] - plain).abs().max() < 1e-4
