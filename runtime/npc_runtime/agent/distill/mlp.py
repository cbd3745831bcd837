"""The policy network in numpy: the same MLP the exporter trains with PyTorch, trainable without torch.

    observations [batch, F] raw game units
      -> clip((x - offset) / scale, lo, hi)        (normalisation inside the model, as in the package)
      -> (Linear -> ReLU) * k -> Linear             action_logits [batch, A]
      -> max softmax                                confidence [batch]

Linear weights are stored as [out, in] (PyTorch's layout, and what the ONNX Gemm with transB=1 reads), so
a package written from here and one exported from PyTorch hold the same tensors under the same names.
Training is plain minibatch Adam with a cosine schedule; two losses: cross-entropy over all actions (base
data) and cross-entropy over the allowed actions only (escalations: the runtime renormalises the policy
over the FSM's allowed actions, so that is the distribution the teacher's choice speaks about).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np


@dataclass
class PolicyWeights:
    offset: np.ndarray                  # [F]
    scale: np.ndarray                   # [F]
    lo: np.ndarray                      # [F]
    hi: np.ndarray                      # [F]
    weights: list[np.ndarray]           # layer i: [out_i, in_i]
    biases: list[np.ndarray]            # layer i: [out_i]

    @property
    def hidden_sizes(self) -> tuple[int, ...]:
        return tuple(int(w.shape[0]) for w in self.weights[:-1])

    @property
    def num_features(self) -> int:
        return int(self.offset.shape[0])

    @property
    def num_actions(self) -> int:
        return int(self.weights[-1].shape[0])

    def copy(self) -> "PolicyWeights":
        return PolicyWeights(self.offset.copy(), self.scale.copy(), self.lo.copy(), self.hi.copy(),
                             [w.copy() for w in self.weights], [b.copy() for b in self.biases])

    def normalise(self, x: np.ndarray) -> np.ndarray:
        return np.minimum(np.maximum((x - self.offset) / self.scale, self.lo), self.hi)

    def logits(self, x: np.ndarray) -> np.ndarray:
        """Inference in float32, the package's precision."""
        h = self.normalise(np.asarray(x, dtype=np.float32)).astype(np.float32)
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = h @ w.T.astype(np.float32) + b.astype(np.float32)
            if i < len(self.weights) - 1:
                h = np.maximum(h, 0.0)
        return h


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


@dataclass(frozen=True, kw_only=True)
class TrainSchedule:
    steps: int = 1500
    learning_rate: float = 1e-3      # fine-tuning from the base weights: a third of the base's 3e-3
    weight_decay: float = 1e-4
    beta1: float = 0.9
    beta2: float = 0.999


@dataclass
class _Adam:
    params: list[np.ndarray]
    schedule: TrainSchedule
    m: list[np.ndarray] = field(default_factory=list)
    v: list[np.ndarray] = field(default_factory=list)
    t: int = 0

    def __post_init__(self) -> None:
        self.m = [np.zeros_like(p) for p in self.params]
        self.v = [np.zeros_like(p) for p in self.params]

    def step(self, grads: list[np.ndarray], lr: float) -> None:
        s = self.schedule
        self.t += 1
        c1, c2 = 1 - s.beta1 ** self.t, 1 - s.beta2 ** self.t
        for p, g, m, v in zip(self.params, grads, self.m, self.v):
            m *= s.beta1
            m += (1 - s.beta1) * g
            v *= s.beta2
            v += (1 - s.beta2) * g * g
            p -= lr * (s.weight_decay * p + (m / c1) / (np.sqrt(v / c2) + 1e-8))   # AdamW: decoupled decay


def _grads(w: PolicyWeights, x: np.ndarray, y: np.ndarray, mask: np.ndarray, weight: np.ndarray
           ) -> tuple[float, list[np.ndarray]]:
    """Weighted cross-entropy of softmax(logits + log mask) against y; gradients of every layer.
    `mask` [batch, A] is 1 for the actions the row's softmax runs over (all, or the allowed ones)."""
    acts = [w.normalise(x)]
    pre = []
    h = acts[0]
    for i, (wi, bi) in enumerate(zip(w.weights, w.biases)):
        z = h @ wi.T + bi
        pre.append(z)
        h = np.maximum(z, 0.0) if i < len(w.weights) - 1 else z
        acts.append(h)
    logits = np.where(mask > 0, acts[-1], -1e9)
    p = softmax(logits)
    n = float(weight.sum()) or 1.0
    rows = np.arange(len(y))
    loss = float(-(weight * np.log(p[rows, y] + 1e-12)).sum() / n)
    d = p
    d[rows, y] -= 1.0
    d *= (weight / n)[:, None]
    gw, gb = [None] * len(w.weights), [None] * len(w.weights)
    for i in range(len(w.weights) - 1, -1, -1):
        gw[i] = d.T @ acts[i]
        gb[i] = d.sum(axis=0)
        if i > 0:
            d = (d @ w.weights[i]) * (pre[i - 1] > 0)
    return loss, gw + gb


def train(w: PolicyWeights, batches, schedule: TrainSchedule, *, on_step=None) -> PolicyWeights:
    """Fine-tune a copy of `w` (float64 while training) on `batches(step) -> (x, y, mask, weight)`; cosine
    learning rate from `schedule.learning_rate` to 0. `on_step(step, loss)` reports progress."""
    w = w.copy()
    w.weights = [a.astype(np.float64) for a in w.weights]
    w.biases = [a.astype(np.float64) for a in w.biases]
    opt = _Adam(w.weights + w.biases, schedule)
    for step in range(schedule.steps):
        lr = schedule.learning_rate * 0.5 * (1 + math.cos(math.pi * step / schedule.steps))
        x, y, mask, weight = batches(step)
        loss, grads = _grads(w, x, y, mask, weight)
        opt.step(grads, lr)
        if on_step is not None:
            on_step(step, loss)
    w.weights = [a.astype(np.float32) for a in w.weights]
    w.biases = [a.astype(np.float32) for a in w.biases]
    return w
