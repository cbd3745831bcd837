"""A whole decoder in one readable file (nanoGPT style), written for ONNX export with plain ai.onnx ops.

Covers three Hugging Face families with one set of modules; the differences are data, not branches
sprinkled through the code (see `FAMILY_TRAITS`):

| family | norm      | positions        | attention            | MLP            | head            |
|--------|-----------|------------------|----------------------|----------------|-----------------|
| llama  | RMSNorm   | rotary (q, k)    | GQA, no bias         | SwiGLU         | lm_head or tied |
| qwen2  | RMSNorm   | rotary (q, k)    | GQA, q/k/v bias      | SwiGLU         | lm_head or tied |
| gpt2   | LayerNorm | learned (wpe)    | MHA, bias everywhere | GELU (tanh)    | tied to wte     |

Two KV-cache layouts, chosen when the module is built:

- "growing": past_key_values.{i}.key|value [batch, kv_heads, past_len, head_dim] in,
  present.{i}.* = concat(past, new) [batch, kv_heads, past_len + seq, head_dim] out.
  attention_mask [batch, past_len + seq]: 1 = a real token. A query at slot past_len + s sees key
  slot t when t <= past_len + s and attention_mask[b, t] == 1.
- "fixed" (model.fixed.onnx, for Unreal NNE): static shapes, one new token per call.
  past [1, kv_heads, capacity, head_dim]; attention_mask [1, capacity + 1]: entries 0..capacity-1
  select live cache slots, the last entry is the new token (always 1). The new token's key/value are
  written into slot `position_ids[0, 0]` (a one-hot blend, no ScatterND), and present is that updated
  buffer [1, kv_heads, capacity, head_dim]. The caller then sets attention_mask[0, position] = 1.

Everything is default-domain ONNX at opset 15: no LayerNormalization / Gelu ops (opset 17 / 20), no
If/Loop, no ScatterND; RMSNorm, LayerNorm and GELU are written out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

NEG_INF = -1e9  # additive mask value; stays finite in fp16 after the converter clamps it (-65504)


@dataclass(frozen=True)
class FamilyTraits:
    norm: str            # rms | layer
    rotary: bool         # rotary on q/k (else learned absolute positions)
    qkv_bias: bool
    out_bias: bool
    mlp: str             # swiglu | gelu
    norm_eps_key: str


FAMILY_TRAITS = {
    "llama": FamilyTraits(norm="rms", rotary=True, qkv_bias=False, out_bias=False, mlp="swiglu", norm_eps_key="rms_norm_eps"),
    "qwen2": FamilyTraits(norm="rms", rotary=True, qkv_bias=True, out_bias=False, mlp="swiglu", norm_eps_key="rms_norm_eps"),
    "gpt2": FamilyTraits(norm="layer", rotary=False, qkv_bias=True, out_bias=True, mlp="gelu", norm_eps_key="layer_norm_epsilon"),
}


@dataclass(frozen=True)
class DecoderConfig:
    family: str
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    hidden_size: int
    intermediate_size: int
    vocab_size: int
    context_length: int      # rotary table / learned positions cover this many positions
    norm_eps: float
    rope_theta: float
    tie_word_embeddings: bool
    activation: str          # silu | gelu_new | gelu

    @property
    def traits(self) -> FamilyTraits:
        return FAMILY_TRAITS[self.family]

    @classmethod
    def from_hf(cls, config: dict, family: str) -> "DecoderConfig":
        traits = FAMILY_TRAITS[family]
        if family == "gpt2":
            hidden, heads = config["n_embd"], config["n_head"]
            return cls(family=family, num_layers=config["n_layer"], num_heads=heads, num_kv_heads=heads,
                       head_dim=hidden // heads, hidden_size=hidden, intermediate_size=config.get("n_inner") or 4 * hidden,
                       vocab_size=config["vocab_size"], context_length=config["n_positions"],
                       norm_eps=config.get(traits.norm_eps_key, 1e-5), rope_theta=0.0,
                       tie_word_embeddings=config.get("tie_word_embeddings", True),
                       activation=config.get("activation_function", "gelu_new"))
        rope = config.get("rope_parameters") or config.get("rope_scaling") or {}
        rope_type = rope.get("rope_type", rope.get("type", "default"))
        if rope_type not in (None, "default"):
            from .errors import UnsupportedArchitecture

            raise UnsupportedArchitecture(f"rope scaling {rope_type!r} is not supported by the portable decoder "
                                          f"(only plain rotary); export with --target ort instead")
        hidden, heads = config["hidden_size"], config["num_attention_heads"]
        return cls(family=family, num_layers=config["num_hidden_layers"], num_heads=heads,
                   num_kv_heads=config.get("num_key_value_heads") or heads,
                   head_dim=config.get("head_dim") or hidden // heads, hidden_size=hidden,
                   intermediate_size=config["intermediate_size"], vocab_size=config["vocab_size"],
                   context_length=config["max_position_embeddings"], norm_eps=config.get(traits.norm_eps_key, 1e-6),
                   rope_theta=float(config.get("rope_theta") or rope.get("rope_theta") or 10000.0),
                   tie_word_embeddings=config.get("tie_word_embeddings", False),
                   activation=config.get("hidden_act", "silu"))


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.weight, self.eps = nn.Parameter(torch.ones(dim)), eps

    def forward(self, x):                      # x [B, S, H]
        var = (x * x).mean(-1, keepdim=True)   # [B, S, 1]
        return x * torch.rsqrt(var + self.eps) * self.weight


class LayerNorm(nn.Module):
    """Written out: LayerNormalization is opset 17, the portable profile is opset 15."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.weight, self.bias, self.eps = nn.Parameter(torch.ones(dim)), nn.Parameter(torch.zeros(dim)), eps

    def forward(self, x):                      # x [B, S, H]
        mean = x.mean(-1, keepdim=True)
        centered = x - mean
        var = (centered * centered).mean(-1, keepdim=True)
        return centered * torch.rsqrt(var + self.eps) * self.weight + self.bias


def gelu(x, kind: str):
    if kind == "gelu":                          # exact: Erf is a default-domain op
        return 0.5 * x * (1.0 + torch.erf(x * (1.0 / math.sqrt(2.0))))
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x * x * x)))


def rotate_half(x):                             # x [..., hd] -> [-x2, x1]
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class Attention(nn.Module):
    def __init__(self, cfg: DecoderConfig, fixed: bool):
        super().__init__()
        t = cfg.traits
        self.cfg, self.fixed = cfg, fixed
        self.q = nn.Linear(cfg.hidden_size, cfg.num_heads * cfg.head_dim, bias=t.qkv_bias)
        self.k = nn.Linear(cfg.hidden_size, cfg.num_kv_heads * cfg.head_dim, bias=t.qkv_bias)
        self.v = nn.Linear(cfg.hidden_size, cfg.num_kv_heads * cfg.head_dim, bias=t.qkv_bias)
        self.o = nn.Linear(cfg.num_heads * cfg.head_dim, cfg.hidden_size, bias=t.out_bias)

    def forward(self, x, bias, cos, sin, past_k, past_v, slot_onehot):
        # x [B, S, H]; bias [B, 1, 1, S, T] additive mask; cos/sin [B, 1, S, hd] (rotary families)
        c = self.cfg
        kvh, group, hd = c.num_kv_heads, c.num_heads // c.num_kv_heads, c.head_dim
        b, s = x.shape[0], x.shape[1]
        q = self.q(x).view(b, s, c.num_heads, hd).transpose(1, 2)   # [B, nh, S, hd]
        k = self.k(x).view(b, s, kvh, hd).transpose(1, 2)           # [B, kvh, S, hd]
        v = self.v(x).view(b, s, kvh, hd).transpose(1, 2)           # [B, kvh, S, hd]
        if cos is not None:
            q = q * cos + rotate_half(q) * sin
            k = k * cos + rotate_half(k) * sin
        if self.fixed:
            # present = past with slot `position` replaced by the new token   [1, kvh, C, hd]
            present_k = past_k * (1.0 - slot_onehot) + k * slot_onehot
            present_v = past_v * (1.0 - slot_onehot) + v * slot_onehot
            keys, values = torch.cat((past_k, k), dim=2), torch.cat((past_v, v), dim=2)  # [1, kvh, C+1, hd]
        else:
            present_k, present_v = torch.cat((past_k, k), dim=2), torch.cat((past_v, v), dim=2)  # [B, kvh, T, hd]
            keys, values = present_k, present_v
        # GQA without repeat_kv: group the query heads by their kv head and let MatMul broadcast
        q = q.reshape(b, kvh, group, s, hd)                                   # [B, kvh, g, S, hd]
        scores = torch.matmul(q, keys.unsqueeze(2).transpose(-1, -2)) * (1.0 / math.sqrt(hd))  # [B, kvh, g, S, T]
        probs = torch.softmax(scores + bias, dim=-1)
        out = torch.matmul(probs, values.unsqueeze(2))                        # [B, kvh, g, S, hd]
        out = out.reshape(b, c.num_heads, s, hd).transpose(1, 2).reshape(b, s, c.num_heads * hd)
        return self.o(out), present_k, present_v


class MLP(nn.Module):
    def __init__(self, cfg: DecoderConfig):
        super().__init__()
        self.kind, self.act = cfg.traits.mlp, cfg.activation
        bias = self.kind == "gelu"
        if self.kind == "swiglu":
            self.gate = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=False)
        self.up = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=bias)
        self.down = nn.Linear(cfg.intermediate_size, cfg.hidden_size, bias=bias)

    def forward(self, x):                                 # [B, S, H] -> [B, S, H]
        if self.kind == "swiglu":
            g = self.gate(x)
            return self.down(g * torch.sigmoid(g) * self.up(x))
        return self.down(gelu(self.up(x), self.act))


class Block(nn.Module):
    def __init__(self, cfg: DecoderConfig, fixed: bool):
        super().__init__()
        norm = RMSNorm if cfg.traits.norm == "rms" else LayerNorm
        self.norm1, self.norm2 = norm(cfg.hidden_size, cfg.norm_eps), norm(cfg.hidden_size, cfg.norm_eps)
        self.attn, self.mlp = Attention(cfg, fixed), MLP(cfg)

    def forward(self, x, bias, cos, sin, past_k, past_v, slot_onehot):
        a, pk, pv = self.attn(self.norm1(x), bias, cos, sin, past_k, past_v, slot_onehot)
        x = x + a
        return x + self.mlp(self.norm2(x)), pk, pv


class Decoder(nn.Module):
    """forward(input_ids, attention_mask, position_ids, *past) -> (logits, *present); past/present are
    flat [k0, v0, k1, v1, ...] so that torch.onnx.export names them one by one."""

    def __init__(self, cfg: DecoderConfig, *, kv_layout: str = "growing"):
        super().__init__()
        self.cfg, self.fixed = cfg, kv_layout == "fixed"
        self.embed = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.pos_embed = None if cfg.traits.rotary else nn.Embedding(cfg.context_length, cfg.hidden_size)
        self.layers = nn.ModuleList(Block(cfg, self.fixed) for _ in range(cfg.num_layers))
        self.norm = (RMSNorm if cfg.traits.norm == "rms" else LayerNorm)(cfg.hidden_size, cfg.norm_eps)
        self.lm_head = nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)
        # Rotary angles as a table computed here in fp32 and gathered by position, not position * inv_freq
        # inside the graph: an fp16 graph would round that product (spacing 0.25 rad at position 512),
        # and the portable fp16 logits drifted from 0.03 to 0.68 off fp32 between positions 100 and 500.
        # cos/sin values in [-1, 1] survive fp16 as well as any weight does.
        rows = cfg.context_length if cfg.traits.rotary else 1
        inv_freq = 1.0 / (cfg.rope_theta ** (torch.arange(0, cfg.head_dim, 2).float() / cfg.head_dim)) if cfg.traits.rotary else torch.zeros(1)
        angles = torch.arange(rows, dtype=torch.float32)[:, None] * inv_freq[None, :]     # [ctx, hd/2]
        self.register_buffer("rope_cos", angles.cos(), persistent=False)
        self.register_buffer("rope_sin", angles.sin(), persistent=False)

    def _mask_bias(self, attention_mask, seq: int, total: int):
        """Additive mask [B, 1, 1, S, T]: 0 where a query may look, NEG_INF elsewhere."""
        live = attention_mask > 0                                               # [B, T]
        if self.fixed:                                                          # slots chosen by the mask only
            allowed = live[:, None, :]                                          # [B, 1, T]
        else:
            q_slot = torch.arange(seq, device=attention_mask.device) + (total - seq)   # [S]
            k_slot = torch.arange(total, device=attention_mask.device)                 # [T]
            causal = k_slot[None, :] <= q_slot[:, None]                                # [S, T]
            allowed = causal[None, :, :] & live[:, None, :]                            # [B, S, T]
        zero = torch.zeros((), dtype=torch.float32)
        return torch.where(allowed, zero, torch.full((), NEG_INF))[:, None, None]    # [B, 1, 1, S|1, T]

    def forward(self, input_ids, attention_mask, position_ids, *past):
        b, s = input_ids.shape
        x = self.embed(input_ids)                                               # [B, S, H]
        cos = sin = None
        if self.pos_embed is not None:
            x = x + self.pos_embed(position_ids)
        else:
            half_cos, half_sin = self.rope_cos[position_ids], self.rope_sin[position_ids]   # [B, S, hd/2]
            cos = torch.cat((half_cos, half_cos), dim=-1)[:, None]                # [B, 1, S, hd]
            sin = torch.cat((half_sin, half_sin), dim=-1)[:, None]
        total = attention_mask.shape[1]
        bias = self._mask_bias(attention_mask, s, total)
        slot_onehot = None
        if self.fixed:                                                          # [1, 1, C, 1]
            capacity = past[0].shape[2]
            slots = torch.arange(capacity, device=input_ids.device)
            slot_onehot = (slots[None, :] == position_ids[:, :1]).float()[:, None, :, None]
        presents = []
        for i, layer in enumerate(self.layers):
            x, pk, pv = layer(x, bias, cos, sin, past[2 * i], past[2 * i + 1], slot_onehot)
            presents += [pk, pv]
        logits = self.lm_head(self.norm(x))                                      # [B, S, V]
        return (logits, *presents)

    # ---- weights -------------------------------------------------------------------------------
    def load_hf_state_dict(self, state: dict) -> None:
        """Copy a Hugging Face state dict (llama / qwen2 / gpt2 naming) into this module."""
        mapped = HF_MAPPERS[self.cfg.family](state, self.cfg)
        if self.cfg.tie_word_embeddings or "lm_head.weight" not in mapped:
            mapped["lm_head.weight"] = mapped["embed.weight"]
        missing, unexpected = self.load_state_dict(mapped, strict=False)
        if missing or unexpected:
            from .errors import SourceError

            raise SourceError(f"weights do not match the {self.cfg.family} layout: missing {missing[:4]}, "
                              f"unexpected {unexpected[:4]}")


def _llama_names(state: dict, cfg: DecoderConfig) -> dict:
    out = {"embed.weight": state["model.embed_tokens.weight"], "norm.weight": state["model.norm.weight"]}
    if "lm_head.weight" in state:
        out["lm_head.weight"] = state["lm_head.weight"]
    for i in range(cfg.num_layers):
        p, q = f"model.layers.{i}.", f"layers.{i}."
        out[q + "norm1.weight"] = state[p + "input_layernorm.weight"]
        out[q + "norm2.weight"] = state[p + "post_attention_layernorm.weight"]
        for ours, theirs in (("q", "q_proj"), ("k", "k_proj"), ("v", "v_proj"), ("o", "o_proj")):
            for kind in ("weight", "bias"):
                key = f"{p}self_attn.{theirs}.{kind}"
                if key in state:
                    out[f"{q}attn.{ours}.{kind}"] = state[key]
        for ours, theirs in (("gate", "gate_proj"), ("up", "up_proj"), ("down", "down_proj")):
            out[f"{q}mlp.{ours}.weight"] = state[f"{p}mlp.{theirs}.weight"]
    return out


def _gpt2_names(state: dict, cfg: DecoderConfig) -> dict:
    # GPT-2 uses Conv1D: weight [in, out], so transpose for nn.Linear [out, in]
    pre = "transformer." if "transformer.wte.weight" in state else ""
    out = {"embed.weight": state[pre + "wte.weight"], "pos_embed.weight": state[pre + "wpe.weight"],
           "norm.weight": state[pre + "ln_f.weight"], "norm.bias": state[pre + "ln_f.bias"]}
    if "lm_head.weight" in state:
        out["lm_head.weight"] = state["lm_head.weight"]
    h = cfg.hidden_size
    for i in range(cfg.num_layers):
        p, q = f"{pre}h.{i}.", f"layers.{i}."
        for ours, theirs in (("norm1", "ln_1"), ("norm2", "ln_2")):
            out[f"{q}{ours}.weight"], out[f"{q}{ours}.bias"] = state[f"{p}{theirs}.weight"], state[f"{p}{theirs}.bias"]
        w, bias = state[p + "attn.c_attn.weight"].t(), state[p + "attn.c_attn.bias"]     # [3H, H], [3H]
        for j, name in enumerate("qkv"):
            out[f"{q}attn.{name}.weight"] = w[j * h : (j + 1) * h].contiguous()
            out[f"{q}attn.{name}.bias"] = bias[j * h : (j + 1) * h].contiguous()
        out[q + "attn.o.weight"], out[q + "attn.o.bias"] = state[p + "attn.c_proj.weight"].t().contiguous(), state[p + "attn.c_proj.bias"]
        out[q + "mlp.up.weight"], out[q + "mlp.up.bias"] = state[p + "mlp.c_fc.weight"].t().contiguous(), state[p + "mlp.c_fc.bias"]
        out[q + "mlp.down.weight"], out[q + "mlp.down.bias"] = state[p + "mlp.c_proj.weight"].t().contiguous(), state[p + "mlp.c_proj.bias"]
    return out


HF_MAPPERS = {"llama": _llama_names, "qwen2": _llama_names, "gpt2": _gpt2_names}


def load_hf_weights(model_dir: Path) -> dict:
    """State dict of a local HF directory (safetensors, sharded safetensors or pytorch_model.bin), fp32."""
    import json

    from safetensors.torch import load_file

    model_dir = Path(model_dir)
    if (model_dir / "model.safetensors").is_file():
        state = load_file(str(model_dir / "model.safetensors"))
    elif (model_dir / "model.safetensors.index.json").is_file():
        index = json.loads((model_dir / "model.safetensors.index.json").read_text())
        state = {}
        for shard in sorted(set(index["weight_map"].values())):
            state.update(load_file(str(model_dir / shard)))
    else:
        state = torch.load(model_dir / "pytorch_model.bin", map_location="cpu", weights_only=True)
    return {k: v.float() for k, v in state.items()}
