"""The policy model (`npc-policy` package) run with ONNX Runtime directly: observations -> action probabilities.

The package holds `model.onnx` (input `observations` float32 [batch, F] in raw game units, outputs
`action_logits` [batch, A] and `confidence` [batch]) and `policy.json` (feature and action names, in
order). Observations are built by feature name from `Observation.values`; a missing feature is 0.
It is checked like every package (npc_package.check_package: manifest, confinement, sha256, graph I/O)
before any of its files is read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Protocol, Sequence

import numpy as np

from npc_package import PackageError, check_package

from npc_runtime.agent.actions import ACTIONS
from npc_runtime.errors import InternalError, ModelPackageError


@dataclass(frozen=True)
class PolicyProposal:
    """Action probabilities restricted to (and renormalised over) the allowed actions."""

    probs: Mapping[str, float]
    action: str
    confidence: float        # probability of `action` among the allowed ones
    margin: float            # top-1 minus top-2 probability among the allowed ones
    raw_confidence: float    # the model's own max softmax over all actions


class Policy(Protocol):
    name: str

    def propose(self, values: Mapping[str, float], allowed: Sequence[str]) -> PolicyProposal: ...

    def propose_batch(self, rows: Sequence[Mapping[str, float]],
                      allowed: Sequence[Sequence[str]]) -> list[PolicyProposal]: ...


def restrict(probs_all: Sequence[float], actions: Sequence[str] | Mapping[str, int], allowed: Sequence[str],
             raw_conf: float) -> PolicyProposal:
    """Renormalise a softmax over `actions` (names, or name -> index) to the `allowed` subset.
    Plain Python over a list: n <= 12, a few µs."""
    index = actions if isinstance(actions, Mapping) else {a: i for i, a in enumerate(actions)}
    p = [probs_all[index[a]] if a in index else 0.0 for a in allowed]
    total = sum(p)
    p = [x / total for x in p] if total > 0 else [1.0 / len(allowed)] * len(allowed)
    best = max(range(len(p)), key=p.__getitem__)      # first maximum: ties go to the FSM's order
    top = p[best]
    second = max((x for i, x in enumerate(p) if i != best), default=0.0)
    return PolicyProposal(probs=dict(zip(allowed, p)), action=allowed[best], confidence=top, margin=top - second,
                          raw_confidence=raw_conf)


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


class OnnxPolicyModel:
    """A loaded policy package. Thread-safe (ONNX Runtime sessions are), ~tens of µs per batch row."""

    def __init__(self, package_dir: str | Path, *, intra_op_threads: int = 1, verify_hashes: bool = True):
        from npc_runtime._ort import import_onnxruntime

        ort = import_onnxruntime()

        self.package_dir = Path(package_dir)
        try:
            checked = check_package(self.package_dir, verify_hashes=verify_hashes)
        except PackageError as exc:
            raise ModelPackageError(f"policy package: {exc} (see docs/package.md)") from exc
        if checked.manifest.kind != "policy":
            raise ModelPackageError(f"{package_dir}: a {checked.manifest.kind} package, not a policy "
                                    "(export one with `npcrt export --model builtin:npc-policy`)")
        spec_path = checked.path("policy.json")
        model_path = checked.path("model.onnx")
        try:
            spec = json.loads(spec_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ModelPackageError(f"{spec_path}: cannot read the policy spec ({exc})") from exc
        if not isinstance(spec, dict):
            raise ModelPackageError(f"{spec_path}: must hold a JSON object (the policy spec)")
        features = spec.get("features")
        actions = spec.get("actions")
        if not isinstance(features, list) or not isinstance(actions, list) or not features or not actions:
            raise ModelPackageError(f"{spec_path}: needs non-empty 'features' and 'actions' lists")
        self.features: tuple[str, ...] = tuple(f["name"] if isinstance(f, dict) else str(f) for f in features)
        self.actions: tuple[str, ...] = tuple(actions)
        self._index = {a: i for i, a in enumerate(self.actions)}
        unknown = [a for a in self.actions if a not in ACTIONS]
        if unknown:
            raise ModelPackageError(f"{spec_path}: unknown actions {unknown} (the runtime knows {list(ACTIONS)})")
        self.name = str(spec.get("name", self.package_dir.name))
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = 1
        try:
            self._session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ModelPackageError(f"{model_path}: ONNX Runtime cannot load the policy: {exc}") from exc
        outputs = [o.name for o in self._session.get_outputs()]
        if "action_logits" not in outputs:
            raise ModelPackageError(f"{model_path}: no 'action_logits' output (has {outputs})")
        self._has_confidence = "confidence" in outputs

    def _vector(self, values: Mapping[str, float]) -> list[float]:
        get = values.get
        return [get(name, 0.0) for name in self.features]

    def propose_batch(self, rows: Sequence[Mapping[str, float]],
                      allowed: Sequence[Sequence[str]]) -> list[PolicyProposal]:
        if not rows:
            return []
        obs = np.asarray([self._vector(v) for v in rows], dtype=np.float32)   # [batch, F]
        try:
            logits = self._session.run(["action_logits"], {"observations": obs})[0]  # [batch, A]
        except Exception as exc:
            raise InternalError(f"policy model {self.name}: inference failed: {exc}") from exc
        probs = _softmax(logits.astype(np.float64)).tolist()
        return [restrict(row, self._index, allowed[i], max(row)) for i, row in enumerate(probs)]

    def propose(self, values: Mapping[str, float], allowed: Sequence[str]) -> PolicyProposal:
        return self.propose_batch([values], [allowed])[0]


_UNIFORM = [1.0 / len(ACTIONS)] * len(ACTIONS)
_ACTION_INDEX = {a: i for i, a in enumerate(ACTIONS)}


class UniformPolicy:
    """No policy model: every allowed action equally likely (confidence 1/n: the planner will be unsure)."""

    name = "uniform"

    def propose(self, values: Mapping[str, float], allowed: Sequence[str]) -> PolicyProposal:
        return restrict(_UNIFORM, _ACTION_INDEX, allowed, 1.0 / len(ACTIONS))

    def propose_batch(self, rows, allowed):
        return [self.propose(v, a) for v, a in zip(rows, allowed)]
