"""Distillation: a new policy version from the teacher's accepted escalations, keeping the base skills.

    result = distill(records, base_dir, out_dir, config=DistillConfig())   # -> DistillResult (report, lineage)

1. Base data: the generator the built-in policy was trained on (npc_export.builtin.policy_rules), replayed
   with the base's own seed and sizes, so the training set and the base held-out set are the ones the base
   model was made with.
2. Escalations: the accepted records (records.accepted), split by a hash of each record into train and
   held-out (`heldout_fraction`).
3. Training: the base weights fine-tuned (numpy, mlp.py) on batches that mix base rows (cross-entropy over
   all actions, the base's noisy labels) and escalation rows (cross-entropy over the record's allowed
   actions: what the runtime's renormalised proposal is), `escalation_share` of each batch.
4. Report: accuracy on the base held-out set (student and base), agreement with the teacher on the held-out
   escalations (student and base), calibration (expected calibration error, ECE) of the confidence head on
   the base held-out set and of the allowed-restricted confidence (what escalation triggers on).
5. Gate: a student that loses more than `gate_margin` of clean-rule accuracy on the base held-out set,
   compared with the ROOT of its lineage (the first base, so a chain of daily versions cannot drift a point a
   day), is refused (GateRefused) and nothing is written.
Seeded: the same records, base and config give the same weights, byte for byte.
"""

from __future__ import annotations

import functools
import random
import time
from dataclasses import asdict, dataclass
from typing import Callable, Sequence

import numpy as np

from npc_runtime.agent.distill.blas import one_blas_thread
from npc_runtime.agent.distill.mlp import PolicyWeights, TrainSchedule, softmax, train
from npc_runtime.agent.distill.records import Example, accepted, split
from npc_runtime.errors import FailedPrecondition

# the built-in policy's training set-up (npc_export.builtin.train_policy.PolicyTrainConfig defaults, which
# import torch): replayed here to regenerate exactly its training and held-out sets
BASE_SEED, BASE_TRAIN, BASE_HELDOUT, BASE_NOISE = 0, 60_000, 10_000, 0.05
ECE_BINS = 15


class GateRefused(FailedPrecondition):
    """The student lost more than the allowed margin on the base held-out set."""


@dataclass(frozen=True, kw_only=True)
class DistillConfig:
    seed: int = 0
    steps: int = 1500
    batch_size: int = 256
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    # share of every batch drawn from the escalation examples (the rest: base data)
    escalation_share: float = 0.25
    # records whose hash falls below this go to the held-out escalation set
    heldout_fraction: float = 0.2
    # largest allowed loss of clean-rule accuracy on the base held-out set, vs the lineage's root (0.01 = 1 point)
    gate_margin: float = 0.01
    min_examples: int = 1


@dataclass(frozen=True)
class BaseData:
    x_train: np.ndarray      # [n, F] float32 raw observations
    y_train: np.ndarray      # [n] noisy labels (as the base trained on)
    x_held: np.ndarray
    y_held: np.ndarray       # noisy labels
    y_held_clean: np.ndarray


@functools.lru_cache(maxsize=2)
def base_data(seed: int = BASE_SEED) -> BaseData:
    """The base's training and held-out sets (~0.7 s; cached for a process that distills daily)."""
    from npc_export.builtin.policy_rules import ACTIONS, observation_vector, random_observation, rule_action

    rng = random.Random(seed)

    def make(count: int):
        rows, noisy, clean = [], [], []
        for _ in range(count):   # the same draws, in the same order, as train_policy.make_dataset
            obs = random_observation(rng)
            label = ACTIONS.index(rule_action(obs))
            rows.append(observation_vector(obs))
            clean.append(label)
            noisy.append(rng.randrange(len(ACTIONS)) if rng.random() < BASE_NOISE else label)
        return np.asarray(rows, dtype=np.float32), np.asarray(noisy), np.asarray(clean)

    x_train, y_train, _ = make(BASE_TRAIN)
    x_held, y_held, y_clean = make(BASE_HELDOUT)
    return BaseData(x_train, y_train, x_held, y_held, y_clean)


@dataclass(frozen=True)
class EscalationSet:
    x: np.ndarray            # [n, F]
    y: np.ndarray            # [n] teacher action index
    mask: np.ndarray         # [n, A] 1 = allowed

    def __len__(self) -> int:
        return len(self.y)


def encode(examples: Sequence[Example], features: Sequence[str], actions: Sequence[str]) -> EscalationSet:
    """Examples -> arrays in the policy's feature and action order (a missing feature is 0, as at run time)."""
    index = {a: i for i, a in enumerate(actions)}
    x = np.zeros((len(examples), len(features)), dtype=np.float32)
    mask = np.zeros((len(examples), len(actions)), dtype=np.float64)
    y = np.zeros(len(examples), dtype=np.int64)
    for r, e in enumerate(examples):
        x[r] = [e.observation.get(f, 0.0) for f in features]
        for a in e.allowed:
            if a in index:
                mask[r, index[a]] = 1.0
        y[r] = index[e.teacher]
    return EscalationSet(x, y, mask)


def ece(confidence: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS) -> float:
    """Expected calibration error: sum over equal-width confidence bins of |accuracy - mean confidence|,
    weighted by the bin's share of the samples."""
    if len(confidence) == 0:
        return 0.0
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        sel = which == b
        if sel.any():
            total += sel.mean() * abs(float(correct[sel].mean()) - float(confidence[sel].mean()))
    return float(total)


def evaluate(w: PolicyWeights, data: BaseData, held: EscalationSet) -> dict:
    probs = softmax(w.logits(data.x_held).astype(np.float64))
    pred = probs.argmax(-1)
    out = {
        "base_heldout_accuracy": round(float((pred == data.y_held).mean()), 4),
        "base_heldout_accuracy_clean_rule": round(float((pred == data.y_held_clean).mean()), 4),
        "base_heldout_ece": round(ece(probs.max(-1), pred == data.y_held_clean), 4),
    }
    if len(held):
        restricted = softmax(np.where(held.mask > 0, w.logits(held.x).astype(np.float64), -1e9))
        choice = restricted.argmax(-1)
        agree = choice == held.y
        out.update(agreement_with_teacher=round(float(agree.mean()), 4),
                   escalation_confidence_mean=round(float(restricted.max(-1).mean()), 4),
                   escalation_ece=round(ece(restricted.max(-1), agree), 4))
    else:
        out.update(agreement_with_teacher=None, escalation_confidence_mean=None, escalation_ece=None)
    return out


@dataclass
class DistillOutcome:
    weights: PolicyWeights
    report: dict
    examples: list[Example]
    skipped: dict[str, int]


def distill_weights(records: list[dict], base: PolicyWeights, *, features: Sequence[str], actions: Sequence[str],
                    root_accuracy: float | None, config: DistillConfig = DistillConfig(),
                    progress: Callable[[int, int, float], None] | None = None) -> DistillOutcome:
    """Train the student from `base` on `records`; raises GateRefused when it fails the gate."""
    started = time.perf_counter()
    examples, skipped = accepted(records)
    if len(examples) < config.min_examples:
        raise FailedPrecondition(
            f"only {len(examples)} accepted escalation record(s) (need {config.min_examples}); left out: "
            + (", ".join(f"{n} {why}" for why, n in sorted(skipped.items())) or "none found"))
    train_ex, held_ex = split(examples, heldout_fraction=config.heldout_fraction)
    if not train_ex:     # a handful of records all hashed to held-out: train on them, report no held-out
        train_ex, held_ex = held_ex, []
    data = base_data()
    esc_train = encode(train_ex, features, actions)
    esc_held = encode(held_ex, features, actions)

    rng = np.random.default_rng(config.seed)
    n_esc = max(1, round(config.batch_size * config.escalation_share))
    n_base = config.batch_size - n_esc
    full = np.ones((n_base, len(actions)))
    weight = np.ones(config.batch_size)

    def batch(_step: int):
        bi = rng.integers(0, len(data.x_train), n_base)
        ei = rng.integers(0, len(esc_train), n_esc)
        x = np.concatenate([data.x_train[bi], esc_train.x[ei]]).astype(np.float64)
        y = np.concatenate([data.y_train[bi], esc_train.y[ei]])
        return x, y, np.concatenate([full, esc_train.mask[ei]]), weight

    def on_step(step: int, loss: float) -> None:
        if progress is not None and (step % 100 == 0 or step == config.steps - 1):
            progress(step + 1, config.steps, loss)

    schedule = TrainSchedule(steps=config.steps, learning_rate=config.learning_rate,
                             weight_decay=config.weight_decay)
    with one_blas_thread():     # tiny matrices: BLAS threads cost more than they give (blas.py)
        student = train(base, batch, schedule, on_step=on_step)
    before, after = evaluate(base, data, esc_held), evaluate(student, data, esc_held)
    root = root_accuracy if root_accuracy is not None else before["base_heldout_accuracy_clean_rule"]
    loss = root - after["base_heldout_accuracy_clean_rule"]
    gate = {"reference": "root of the lineage" if root_accuracy is not None else "the base",
            "reference_accuracy_clean_rule": round(root, 4), "loss": round(loss, 4),
            "margin": config.gate_margin, "passed": bool(loss <= config.gate_margin + 1e-12)}
    times = [e.wall_time_unix for e in examples if e.wall_time_unix > 0]
    report = {
        "records": len(records), "accepted": len(examples), "left_out": dict(sorted(skipped.items())),
        "train_escalations": len(train_ex), "heldout_escalations": len(held_ex),
        "time_range_unix": [min(times), max(times)] if times else None,
        "base": before, "student": after, "gate": gate,
        "config": asdict(config), "train_seconds": round(time.perf_counter() - started, 2),
    }
    if not gate["passed"]:
        raise GateRefused(
            f"the distilled policy loses {loss * 100:.2f} points of base held-out accuracy "
            f"({after['base_heldout_accuracy_clean_rule']:.4f} vs {root:.4f}, allowed {config.gate_margin * 100:.2f}); "
            "not written. Fewer steps, a lower --escalation-share or more base data keep the base skills")
    return DistillOutcome(student, report, examples, skipped)
