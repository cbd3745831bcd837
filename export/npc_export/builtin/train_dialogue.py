"""Train npc-dialogue: a small Llama-shaped decoder (GQA, <= 5M parameters, <= 20 MB fp32) on the corpus.

    python -m npc_export.builtin.train --only dialogue [--out DIR] [--steps N]

Seeded end to end (corpus, tokenizer, init, data order); AdamW with warmup + cosine decay; the loss is
taken on the assistant reply only (action tag, line, <|end|></s>). Writes a Hugging Face model
directory (safetensors, config, generation_config, tokenizer files) and `training_report.json` with
held-out loss / perplexity and action accuracy on persona x situation combinations never trained on.
"""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from .corpus import ACTIONS, END, EOS, HELDOUT_COMBOS, Sample, generate_corpus
from .tokenizer import save_tokenizer, train_tokenizer

IGNORE = -100
ACTION_RE = re.compile(r"^\[([a-z_]+)\] (\S.*)$", re.S)


@dataclass(frozen=True)
class DialogueModelConfig:
    hidden_size: int = 256
    num_layers: int = 5
    num_heads: int = 4
    num_kv_heads: int = 2
    intermediate_size: int = 688
    context_length: int = 512
    vocab_size: int = 2048
    rope_theta: float = 10000.0


@dataclass(frozen=True)
class DialogueTrainConfig:
    seed: int = 0
    steps: int = 900
    batch_size: int = 32
    learning_rate: float = 2e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int = 60
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    num_train: int = 50000
    num_heldout: int = 2000
    eval_loss_samples: int = 1000     # held-out samples for loss / perplexity
    eval_generate_samples: int = 240  # held-out prompts generated greedily for action accuracy
    eval_actions_per_combo: int = 30  # held-out prompts per (role, situation) for the per-combo accuracy
    threads: int = 2
    device: str = "cpu"               # "cuda" only to iterate on hyper-parameters; committed weights: cpu
    model: DialogueModelConfig = DialogueModelConfig()


def build_model(cfg: DialogueModelConfig):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=cfg.vocab_size, hidden_size=cfg.hidden_size, intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers, num_attention_heads=cfg.num_heads,
        num_key_value_heads=cfg.num_kv_heads, max_position_embeddings=cfg.context_length,
        rope_theta=cfg.rope_theta, rms_norm_eps=1e-5, tie_word_embeddings=False,
        bos_token_id=1, eos_token_id=[2, 6], pad_token_id=0, hidden_act="silu",
        attention_bias=False, mlp_bias=False,
    )
    return LlamaForCausalLM(config)


def encode_samples(tokenizer, samples: list[Sample]) -> list[tuple[list[int], int]]:
    """(ids of the whole sample, length of its prompt): the loss covers ids[prompt_len:]."""
    fulls = tokenizer.encode_batch([s.text for s in samples])
    prompts = tokenizer.encode_batch([s.prompt for s in samples])
    return [(f.ids, len(p.ids)) for f, p in zip(fulls, prompts)]


def collate(encoded: list[tuple[list[int], int]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded batch: input_ids, attention_mask, labels (prompt and padding ignored)."""
    width = max(len(ids) for ids, _ in encoded)
    input_ids = torch.zeros(len(encoded), width, dtype=torch.long)
    mask = torch.zeros(len(encoded), width, dtype=torch.long)
    labels = torch.full((len(encoded), width), IGNORE, dtype=torch.long)
    for row, (ids, prompt_len) in enumerate(encoded):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        mask[row, : len(ids)] = 1
        labels[row, prompt_len: len(ids)] = torch.tensor(ids[prompt_len:])
    return input_ids, mask, labels


def lr_at(step: int, cfg: DialogueTrainConfig) -> float:
    if step < cfg.warmup_steps:
        return cfg.learning_rate * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return cfg.learning_rate * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * cosine)


def batch_order(num_samples: int, cfg: DialogueTrainConfig) -> list[list[int]]:
    """Deterministic data order: one seeded permutation per epoch, cut into batches."""
    gen = torch.Generator().manual_seed(cfg.seed)
    order: list[int] = []
    while len(order) < cfg.steps * cfg.batch_size:
        order.extend(torch.randperm(num_samples, generator=gen).tolist())
    return [order[i * cfg.batch_size: (i + 1) * cfg.batch_size] for i in range(cfg.steps)]


@torch.no_grad()
def evaluate_loss(model, encoded: list[tuple[list[int], int]], *, batch_size: int = 50) -> float:
    """Mean cross-entropy per reply token (nats)."""
    model.eval()
    device = next(model.parameters()).device
    total, count = 0.0, 0
    for start in range(0, len(encoded), batch_size):
        input_ids, mask, labels = (t.to(device) for t in collate(encoded[start: start + batch_size]))
        logits = model(input_ids=input_ids, attention_mask=mask).logits[:, :-1]
        targets = labels[:, 1:]
        loss = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=IGNORE, reduction="sum")
        total += loss.item()
        count += int((targets != IGNORE).sum())
    return total / max(1, count)


def parse_reply(text: str) -> tuple[str | None, str]:
    """'[warn] Step back.' -> ('warn', 'Step back.'); (None, text) when the tag is missing or unknown."""
    match = ACTION_RE.match(text.strip())
    if not match or match.group(1) not in ACTIONS:
        return None, text.strip()
    return match.group(1), match.group(2).strip()


@torch.no_grad()
def generate_replies(model, tokenizer, prompts: list[str], *, max_new_tokens: int = 48,
                     batch_size: int = 40) -> list[str]:
    """Greedy continuations of `prompts` (batched, left-padded), cut at <|end|>."""
    model.eval()
    end_id, eos_id = tokenizer.token_to_id(END), tokenizer.token_to_id(EOS)
    replies: list[str] = []
    for start in range(0, len(prompts), batch_size):
        encoded = [e.ids for e in tokenizer.encode_batch(prompts[start: start + batch_size])]
        width = max(len(ids) for ids in encoded)
        input_ids = torch.zeros(len(encoded), width, dtype=torch.long)
        mask = torch.zeros(len(encoded), width, dtype=torch.long)
        for row, ids in enumerate(encoded):
            input_ids[row, width - len(ids):] = torch.tensor(ids)
            mask[row, width - len(ids):] = 1
        device = next(model.parameters()).device
        out = model.generate(input_ids=input_ids.to(device), attention_mask=mask.to(device), max_new_tokens=max_new_tokens,
                             do_sample=False, eos_token_id=[end_id, eos_id], pad_token_id=0)
        for row in out[:, width:].tolist():
            cut = list(row)
            for stop in (end_id, eos_id):
                if stop in cut:
                    cut = cut[: cut.index(stop)]
            replies.append(tokenizer.decode(cut, skip_special_tokens=True))
    return replies


def evaluate_generation(model, tokenizer, samples: list[Sample]) -> dict:
    replies = generate_replies(model, tokenizer, [s.prompt for s in samples])
    correct = well_formed = 0
    examples = []
    for sample, reply in zip(samples, replies):
        action, line = parse_reply(reply)
        well_formed += action is not None and bool(line)
        correct += action == sample.action
        examples.append({"role": sample.role, "situation": sample.situation, "mood": sample.mood,
                         "system": sample.system, "user": sample.user, "expected_action": sample.action,
                         "reply": reply})
    return {"action_accuracy": correct / len(samples), "well_formed": well_formed / len(samples),
            "examples": examples}


def action_accuracy_by_combo(model, tokenizer, samples: list[Sample], *, per_combo: int = 30) -> dict:
    """Greedy action tag (6 new tokens) vs the rule, for up to `per_combo` prompts of each
    (role, situation): {"overall": acc, "prompts": n, "per_combo": {"role x situation": acc}}."""
    groups: dict[str, list[Sample]] = {}
    for sample in samples:
        bucket = groups.setdefault(f"{sample.role} x {sample.situation}", [])
        if len(bucket) < per_combo:
            bucket.append(sample)
    chosen = [s for bucket in groups.values() for s in bucket]
    replies = generate_replies(model, tokenizer, [s.prompt for s in chosen], max_new_tokens=6, batch_size=90)
    hits: dict[str, list[bool]] = {}
    for sample, reply in zip(chosen, replies):
        hits.setdefault(f"{sample.role} x {sample.situation}", []).append(reply.startswith(f"[{sample.action}]"))
    total = sum(sum(v) for v in hits.values())
    return {"overall": round(total / max(1, len(chosen)), 4), "prompts": len(chosen),
            "per_combo": {k: round(sum(v) / len(v), 3) for k, v in sorted(hits.items())}}


def evaluate_dialogue(model, tokenizer, cfg: DialogueTrainConfig) -> dict:
    """Report fields: loss on fresh samples of trained combinations, held-out loss / perplexity, action
    accuracy and well-formedness of greedy replies, per-combination action accuracy, sample replies.
    The held-out set is `generate_corpus(seed).heldout` (independent of the number of training samples)."""
    heldout = list(generate_corpus(seed=cfg.seed, num_train=0, num_heldout=cfg.num_heldout).heldout)
    # Fresh samples of the training combinations (another seed), for the seen/unseen gap.
    seen = generate_corpus(seed=cfg.seed + 1, num_train=cfg.eval_loss_samples, num_heldout=0).train
    heldout_loss = evaluate_loss(model, encode_samples(tokenizer, heldout[: cfg.eval_loss_samples]))
    seen_loss = evaluate_loss(model, encode_samples(tokenizer, list(seen)))
    generation = evaluate_generation(model, tokenizer, heldout[: cfg.eval_generate_samples])
    return {
        "seen_combos_loss": round(seen_loss, 4),
        "heldout_combos": [list(c) for c in HELDOUT_COMBOS],
        "heldout_loss": round(heldout_loss, 4),
        "heldout_perplexity": round(math.exp(heldout_loss), 3),
        "heldout_action_accuracy": round(generation["action_accuracy"], 4),
        "heldout_well_formed": round(generation["well_formed"], 4),
        "heldout_generated": cfg.eval_generate_samples,
        "heldout_action_accuracy_by_combo": action_accuracy_by_combo(
            model, tokenizer, heldout, per_combo=cfg.eval_actions_per_combo),
        "loss_note": "mean cross-entropy per reply token (action tag + line + <|end|></s>), nats",
        "samples": generation["examples"][:12],
    }


def write_generation_config(directory: Path) -> None:
    # No max_length: callers pass max_new_tokens; the context limit is config.max_position_embeddings.
    config = {"bos_token_id": 1, "eos_token_id": [6, 2], "pad_token_id": 0, "do_sample": False}
    (directory / "generation_config.json").write_text(json.dumps(config, indent=2) + "\n")


def train_dialogue(out_dir: Path, cfg: DialogueTrainConfig = DialogueTrainConfig(), *,
                   progress: bool = True) -> dict:
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    started = time.perf_counter()
    corpus = generate_corpus(seed=cfg.seed, num_train=cfg.num_train, num_heldout=cfg.num_heldout)
    tokenizer = train_tokenizer((s.text for s in corpus.train), vocab_size=cfg.model.vocab_size)
    train_enc = encode_samples(tokenizer, list(corpus.train))

    model = build_model(cfg.model).to(cfg.device)
    num_params = sum(p.numel() for p in model.parameters())
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}],
                                  lr=cfg.learning_rate, betas=(0.9, 0.95), eps=1e-8)
    batches = batch_order(len(train_enc), cfg)
    model.train()
    train_start = time.perf_counter()
    losses: list[float] = []
    bar = tqdm(batches, desc="npc-dialogue", unit="step", disable=not progress)
    for step, indices in enumerate(bar):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, cfg)
        input_ids, mask, labels = (t.to(cfg.device) for t in collate([train_enc[i] for i in indices]))
        loss = model(input_ids=input_ids, attention_mask=mask, labels=labels).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        losses.append(loss.item())
        if step % 10 == 0:
            bar.set_postfix(loss=f"{sum(losses[-20:]) / len(losses[-20:]):.3f}")
    train_seconds = time.perf_counter() - train_start

    evaluation = evaluate_dialogue(model, tokenizer, cfg)

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.to("cpu").save_pretrained(out_dir, safe_serialization=True)
    save_tokenizer(tokenizer, out_dir, context_length=cfg.model.context_length)
    write_generation_config(out_dir)
    weights_bytes = sum(f.stat().st_size for f in out_dir.glob("*.safetensors"))
    tail = losses[-50:]
    report = {
        "model": "npc-dialogue",
        "architecture": asdict(cfg.model),
        "parameters": num_params,
        "weights_bytes_fp32": weights_bytes,
        "train_config": {k: v for k, v in asdict(cfg).items() if k != "model"},
        "train_samples": len(train_enc),
        "tokens_per_step_mean": sum(len(train_enc[i][0]) for b in batches for i in b) / len(batches),
        "steps": cfg.steps,
        "train_seconds": round(train_seconds, 1),
        "steps_per_second": round(cfg.steps / train_seconds, 3),
        "total_seconds": round(time.perf_counter() - started, 1),
        "torch_threads": cfg.threads,
        "device": cfg.device,
        "torch_version": torch.__version__,
        "train_loss_last50": round(sum(tail) / len(tail), 4),
        **evaluation,
    }
    (out_dir / "training_report.json").write_text(json.dumps(report, indent=2) + "\n")
    write_heldout_chats(out_dir, seed=cfg.seed)
    return report


def write_heldout_chats(out_dir: Path, *, seed: int = 0, count: int = 8) -> Path:
    """`heldout_chats.json`: chats on unseen persona x situation pairs; the exporter's self-check scores
    quantized packages' perplexity on their replies (see npc_export.validation)."""
    samples = generate_corpus(seed=seed, num_train=0, num_heldout=count).heldout
    chats = [[{"role": "system", "content": s.system}, {"role": "user", "content": s.user},
              {"role": "assistant", "content": s.reply}] for s in samples]
    path = Path(out_dir) / "heldout_chats.json"
    path.write_text(json.dumps(chats, indent=1) + "\n")
    return path
