"""Train npc-policy on generated (observation -> action) pairs: rule-based labels with label noise.

    python -m npc_export.builtin.train --only policy [--out DIR] [--steps N]

Seeded; AdamW + cosine schedule; reports held-out accuracy against the noisy labels and against the
clean rule, and the mean confidence. Writes policy.safetensors + policy.json.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from .corpus import ACTIONS
from .policy import FEATURE_NAMES, PolicyNet, observation_vector, random_observation, rule_action, save_policy


@dataclass(frozen=True)
class PolicyTrainConfig:
    seed: int = 0
    steps: int = 3000
    batch_size: int = 256
    learning_rate: float = 3e-3
    weight_decay: float = 1e-4
    label_noise: float = 0.05          # fraction of labels replaced by a random action
    num_train: int = 60000
    num_heldout: int = 10000
    hidden_sizes: tuple[int, ...] = (64, 64)
    threads: int = 2


def make_dataset(rng: random.Random, count: int, noise: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(observations [count, F], noisy labels [count], clean labels [count])."""
    rows, noisy, clean = [], [], []
    for _ in range(count):
        obs = random_observation(rng)
        label = ACTIONS.index(rule_action(obs))
        rows.append(observation_vector(obs))
        clean.append(label)
        noisy.append(rng.randrange(len(ACTIONS)) if rng.random() < noise else label)
    return torch.tensor(rows, dtype=torch.float32), torch.tensor(noisy), torch.tensor(clean)


def train_policy(out_dir: Path, cfg: PolicyTrainConfig = PolicyTrainConfig(), *, progress: bool = True) -> dict:
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    rng = random.Random(cfg.seed)
    x_train, y_train, _ = make_dataset(rng, cfg.num_train, cfg.label_noise)
    x_test, y_test_noisy, y_test_clean = make_dataset(rng, cfg.num_heldout, cfg.label_noise)

    model = PolicyNet(hidden_sizes=cfg.hidden_sizes)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(cfg.seed)
    started = time.perf_counter()
    model.train()
    bar = tqdm(range(cfg.steps), desc="npc-policy", unit="step", disable=not progress)
    loss_value = float("nan")
    for step in bar:
        lr = cfg.learning_rate * 0.5 * (1 + math.cos(math.pi * step / cfg.steps))
        for group in optimizer.param_groups:
            group["lr"] = lr
        idx = torch.randint(0, len(x_train), (cfg.batch_size,), generator=gen)
        logits, _ = model(x_train[idx])
        loss = torch.nn.functional.cross_entropy(logits, y_train[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss_value = loss.item()
        if step % 50 == 0:
            bar.set_postfix(loss=f"{loss_value:.3f}")
    train_seconds = time.perf_counter() - started

    model.eval()
    with torch.no_grad():
        logits, confidence = model(x_test)
    predicted = logits.argmax(dim=-1)
    per_action = {
        name: round(float((predicted[y_test_clean == i] == i).float().mean()), 4)
        for i, name in enumerate(ACTIONS) if int((y_test_clean == i).sum()) > 0
    }
    report = {
        "model": "npc-policy",
        "features": list(FEATURE_NAMES),
        "actions": list(ACTIONS),
        "parameters": sum(p.numel() for p in model.parameters()),
        "train_config": asdict(cfg),
        "steps": cfg.steps,
        "train_seconds": round(train_seconds, 2),
        "final_train_loss": round(loss_value, 4),
        "heldout_samples": cfg.num_heldout,
        "heldout_accuracy": round(float((predicted == y_test_noisy).float().mean()), 4),
        "heldout_accuracy_clean_rule": round(float((predicted == y_test_clean).float().mean()), 4),
        "noise_ceiling": round(1 - cfg.label_noise * (len(ACTIONS) - 1) / len(ACTIONS), 4),
        "heldout_mean_confidence": round(float(confidence.mean()), 4),
        "heldout_per_action_recall": per_action,
        "label_distribution": {name: int((y_test_clean == i).sum()) for i, name in enumerate(ACTIONS)},
    }
    out_dir = Path(out_dir)
    save_policy(model, out_dir, cfg.hidden_sizes,
                extra={"training": {k: report[k] for k in ("heldout_accuracy", "heldout_accuracy_clean_rule")}})
    (out_dir / "training_report.json").write_text(json.dumps(report, indent=2) + "\n")
    return report
