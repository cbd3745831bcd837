"""The exporter's self-check: every export is compared with its PyTorch source before it is committed.

- fp32: max |logits_onnx - logits_torch| over random prompts, prefill then decode steps that use the
  past (the ONNX side runs prefill + one token at a time; the torch side one full forward).
- fp16 / int8 / int4: greedy-token agreement with fp32 over `generate_tokens` tokens on held-out
  prompts: teacher-forced on the fp32 greedy continuation (so one early flip does not count as 128),
  the fraction of positions where the export's argmax is fp32's argmax; and the perplexity change on
  held-out text.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .runner import FixedCapacityDecoder, GrowingDecoder
from .threads import DEFAULT_THREADS

# Held-out chat turns, rendered through the model's own chat template when it has one (so a chat
# model is checked on the kind of input it serves), else joined as plain text.
HELD_OUT_CHATS = (
    ({"role": "system", "content": "You are Odo, the ferryman. Traits: gruff, honest. The player waits at the "
                                   "river crossing at dawn. Mood: tired."},
     {"role": "user", "content": "How much to cross the river?"},
     {"role": "assistant", "content": "[talk] Two coppers, and keep your hands inside the boat."}),
    ({"role": "system", "content": "You are Lysa, the herbalist. Traits: kind, curious. The player enters your "
                                   "shop in the rain. Mood: cheerful."},
     {"role": "user", "content": "Do you have anything for a fever?"},
     {"role": "assistant", "content": "[trade] Willow bark tea, friend. Three silver, and rest for a day."}),
    ({"role": "system", "content": "You are Brann, the guard captain. Traits: stern, loyal. The player reports "
                                   "at the north gate at night. Mood: suspicious."},
     {"role": "user", "content": "I saw smoke on the northern road."},
     {"role": "assistant", "content": "[warn] Smoke, you say? Stay inside the walls until we know more."}),
)
HELD_OUT_PROMPTS = (
    "The guard captain looks up from the map and says",
    "Welcome to the Rusty Anchor, traveller. What",
    "The herbalist sorts her roots and asks whether you have seen",
)
HELD_OUT_TEXT = (
    "Night falls over the harbour town. The fishmonger closes her stall and counts the day's coins, "
    "grumbling about the tax collector who came twice this week. Up the hill, the old priest rings the "
    "bell and the children run home before the lamps are lit. A stranger in a grey cloak asks the "
    "stable boy about the road to the mountain pass, and pays him in foreign silver."
)


@dataclass(frozen=True)
class Thresholds:
    """Pass criteria of the self-check; `precision`-keyed where they differ."""

    max_abs_diff: float = 1e-3                      # fp32 vs PyTorch
    # Chosen from measurements (docs/exporter.md, `python -m npc_export.gate_report`): the built-in dialogue
    # model agrees 0.999-1.000 (fp16), 0.995 (int8), 0.981 (int4) with a perplexity change under 0.05 %;
    # broken exports of it measured 0.886 / +19.8 % (norm weights lost), 0.052 (one MLP zeroed), 0.951 /
    # +1.5 % (3-bit weights), 0.953 / +4.1 % (25 % weight noise). Random-weight models have near-flat
    # logits and agree less (tests pass their own thresholds; int4 of one needs allow_validation_failure).
    min_greedy_agreement: dict = field(default_factory=lambda: {"fp16": 0.98, "int8": 0.95, "int4": 0.90})
    # relative perplexity change allowed: |ppl - ppl_fp32| / ppl_fp32
    max_perplexity_delta_ratio: dict = field(default_factory=lambda: {"fp16": 0.005, "int8": 0.01, "int4": 0.10})

    def for_precision(self, precision: str) -> dict:
        if precision == "fp32":
            return {"max_abs_diff": self.max_abs_diff}
        return {
            "min_greedy_agreement": self.min_greedy_agreement[precision],
            "max_perplexity_delta_ratio": self.max_perplexity_delta_ratio[precision],
        }


@dataclass(frozen=True)
class ValidationConfig:
    thresholds: Thresholds = field(default_factory=Thresholds)
    num_random_prompts: int = 2
    random_prompt_len: int = 6
    decode_steps: int = 4
    generate_tokens: int = 128
    seed: int = 0


@dataclass(frozen=True)
class HeldOut:
    """Prompts for greedy agreement and a text for perplexity."""

    prompts: tuple[str, ...] = HELD_OUT_PROMPTS
    text: str = HELD_OUT_TEXT
    # (prompt, prompt + reply) renderings of held-out chats: when present, perplexity is scored on the
    # reply tokens only, the part a chat model is trained to predict (its prompts are not).
    replies: tuple[tuple[str, str], ...] = ()


def held_out_for(chat_template: str | None, special: dict[str, str | None], chats=HELD_OUT_CHATS) -> HeldOut:
    """Held-out prompts / chats in the model's chat format when it has a template, else plain prose.
    `chats`: sequences of {"role", "content"} messages whose last message is the reply to score."""
    if not chat_template:
        return HeldOut()
    try:
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        template = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True).from_string(chat_template)
        render = lambda msgs, gen: template.render(messages=list(msgs), add_generation_prompt=gen, **special)  # noqa: E731
        prompts = tuple(render(chat[:-1], True) for chat in chats)
        text = "".join(render(chat, False) for chat in chats)
        replies = tuple((prompt, render(chat, False)) for prompt, chat in zip(prompts, chats))
    except Exception:  # noqa: BLE001 - a template we cannot render: plain prose still checks the graph
        return HeldOut()
    return HeldOut(prompts=prompts, text=text, replies=replies)


def _torch_logits(model, ids: list[int]) -> np.ndarray:
    import torch

    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].float().numpy()


def _torch_greedy(model, prompt: list[int], n: int) -> list[int]:
    """fp32 greedy continuation (min_new_tokens keeps EOS from ending it early)."""
    import torch
    from transformers.utils import logging as hf_logging

    ids = torch.tensor([prompt])
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # generate() warns about pad == eos on some configs; not ours to print
    try:
        with torch.no_grad():
            out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=n,
                                 min_new_tokens=n, pad_token_id=0, num_beams=1)
    finally:
        hf_logging.set_verbosity(verbosity)
    return out[0, len(prompt):].tolist()


def _token_nll(logits: np.ndarray, ids: list[int], start: int = 1) -> np.ndarray:
    """Next-token negative log-likelihoods of ids[start:] under logits[start-1:-1]; shape [len(ids) - start]."""
    x = logits[start - 1 : -1].astype(np.float64)
    x = x - x.max(-1, keepdims=True)
    logp = x - np.log(np.exp(x).sum(-1, keepdims=True))
    return -logp[np.arange(len(ids) - start), ids[start:]]


def _perplexities(decoder: GrowingDecoder, torch_model, encode, context_length: int, held_out: HeldOut):
    """(fp32 PyTorch perplexity, exported-graph perplexity, what was scored) on the held-out text."""
    if held_out.replies:
        pieces = [(encode(full)[:context_length], len(encode(prompt))) for prompt, full in held_out.replies]
        pieces = [(ids, start) for ids, start in pieces if 0 < start < len(ids)]
        scope = f"reply tokens of {len(pieces)} held-out chats"
    else:
        pieces = [(encode(held_out.text)[: min(context_length, 256)], 1)]
        scope = "held-out prose"
    ref = np.concatenate([_token_nll(_torch_logits(torch_model, ids), ids, start) for ids, start in pieces])
    got = np.concatenate([_token_nll(decoder.step(np.array([ids]))[0][0], ids, start) for ids, start in pieces])
    return math.exp(float(ref.mean())), math.exp(float(got.mean())), scope


def decoder_parity(decoder: GrowingDecoder, torch_model, *, vocab: int, cfg: ValidationConfig) -> float:
    """max |onnx - torch| over random prompts: prefill, then `decode_steps` single-token steps with past."""
    rng = np.random.default_rng(cfg.seed)
    worst = 0.0
    for _ in range(cfg.num_random_prompts):
        ids = rng.integers(3, vocab, size=cfg.random_prompt_len + cfg.decode_steps).tolist()
        ref = _torch_logits(torch_model, ids)
        prompt = np.array([ids[: cfg.random_prompt_len]])
        logits, past = decoder.step(prompt)
        rows = [logits[0]]
        for tok in ids[cfg.random_prompt_len :]:
            logits, past = decoder.step(np.array([[tok]]), past)
            rows.append(logits[0])
        got = np.concatenate(rows, axis=0)
        worst = max(worst, float(np.abs(got - ref).max()))
    return worst


def fixed_parity(decoder: FixedCapacityDecoder, torch_model, *, vocab: int, cfg: ValidationConfig) -> float:
    rng = np.random.default_rng(cfg.seed + 1)
    ids = rng.integers(3, vocab, size=min(cfg.random_prompt_len + cfg.decode_steps, decoder.capacity)).tolist()
    return float(np.abs(decoder.run(ids) - _torch_logits(torch_model, ids)).max())


def quality_figures(decoder: GrowingDecoder, torch_model, *, encode, context_length: int, cfg: ValidationConfig,
                    held_out: HeldOut) -> dict:
    """Greedy agreement (teacher-forced on the fp32 continuation) and perplexities."""
    agree = total = 0
    for prompt_text in held_out.prompts:
        prompt = encode(prompt_text)[: max(1, context_length // 4)]
        n = min(cfg.generate_tokens, context_length - len(prompt))
        if n <= 0:
            continue
        seq = prompt + _torch_greedy(torch_model, prompt, n)[:-1]
        # Both sides' choices are the argmax of their own logits over the same sequence. (The continuation
        # itself was generated with EOS suppressed to reach n tokens; comparing against its tokens scored
        # every place where fp32 itself would have stopped as a disagreement: 0.894 for fp32 vs itself.)
        ref = _torch_logits(torch_model, seq)[len(prompt) - 1 :].argmax(-1)
        logits, _ = decoder.step(np.array([seq]))
        pred = logits[0, len(prompt) - 1 :].argmax(-1)
        agree += int((pred == ref).sum())
        total += n
    ppl_ref, ppl, scope = _perplexities(decoder, torch_model, encode, context_length, held_out)
    return {
        "greedy_agreement": agree / max(total, 1),
        "greedy_tokens": total,
        "perplexity_fp32": ppl_ref,
        "perplexity": ppl,
        "perplexity_delta": ppl - ppl_ref,
        "perplexity_delta_ratio": abs(ppl - ppl_ref) / ppl_ref,
        "perplexity_scope": scope,
    }


def judge(figures: dict, precision: str, thresholds: Thresholds) -> tuple[bool, list[str]]:
    """(passed, reasons it failed)."""
    reasons = []
    if precision == "fp32":
        for key in ("fp32_max_abs_diff", "fixed_max_abs_diff"):
            value = figures.get(key)
            if value is not None and not value <= thresholds.max_abs_diff:
                reasons.append(f"{key} {value:.3g} > {thresholds.max_abs_diff:g} (logits differ from PyTorch)")
        return not reasons, reasons
    agreement, min_agreement = figures["greedy_agreement"], thresholds.min_greedy_agreement[precision]
    if not agreement >= min_agreement:
        reasons.append(f"greedy agreement with fp32 {agreement:.3f} < {min_agreement:g}")
    ratio, max_ratio = figures["perplexity_delta_ratio"], thresholds.max_perplexity_delta_ratio[precision]
    if not ratio <= max_ratio:
        reasons.append(f"perplexity change {ratio:.3%} > {max_ratio:.1%} "
                       f"({figures['perplexity_fp32']:.4g} -> {figures['perplexity']:.4g})")
    return not reasons, reasons


def validate_decoder(
    model_path: Path,
    torch_model,
    *,
    precision: str,
    vocab: int,
    encode,
    context_length: int,
    cfg: ValidationConfig,
    kv_heads: int,
    head_dim: int,
    fixed_path: Path | None = None,
    held_out: HeldOut | None = None,
    threads: int = DEFAULT_THREADS,
) -> dict:
    """Run the self-check on an exported decoder; returns the manifest `validation` dict."""
    decoder = GrowingDecoder(model_path, kv_heads=kv_heads, head_dim=head_dim, threads=threads)
    figures: dict = {"precision": precision}
    if precision == "fp32":
        figures["fp32_max_abs_diff"] = decoder_parity(decoder, torch_model, vocab=vocab, cfg=cfg)
        if fixed_path is not None:
            figures["fixed_max_abs_diff"] = fixed_parity(FixedCapacityDecoder(fixed_path, threads=threads), torch_model, vocab=vocab, cfg=cfg)
    else:
        figures["max_abs_diff_vs_torch"] = decoder_parity(decoder, torch_model, vocab=vocab, cfg=cfg)
        figures.update(quality_figures(decoder, torch_model, encode=encode, context_length=context_length, cfg=cfg,
                                       held_out=held_out or HeldOut()))
        if fixed_path is not None:
            figures["fixed_max_abs_diff_vs_torch"] = fixed_parity(FixedCapacityDecoder(fixed_path, threads=threads), torch_model, vocab=vocab, cfg=cfg)
    passed, reasons = judge(figures, precision, cfg.thresholds)
    figures["thresholds"] = cfg.thresholds.for_precision(precision)
    figures["passed"] = passed
    figures["failures"] = reasons
    figures["overridden"] = False
    return figures
