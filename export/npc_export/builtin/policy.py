"""npc-policy: a small MLP from named observation features to action logits and a confidence.

Input: RAW observations float32 [batch, num_features] in game units, in the order of `FEATURES`; the
module normalises them itself ((x - offset) / scale, clipped to [lo, hi]), so callers (runtime, Unity,
Unreal) pass the numbers the game has. Every feature's neutral value is 0, so a caller that leaves a
feature out (0) gets sensible behaviour. Output: action_logits [batch, num_actions] over `ACTIONS` and
confidence [batch] = max softmax probability, in (0, 1].
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from .corpus import ACTIONS
# the data side lives in a torch-free module (the runtime's distillation and rules provider use it)
from .policy_rules import (FEATURE_INDEX, FEATURE_NAMES, FEATURES, ROLES, Feature,  # noqa: F401
                           observation_vector, random_observation, rule_action)


class PolicyNet(nn.Module):
    """[batch, num_features] raw float32 -> (action_logits [batch, num_actions], confidence [batch])."""

    def __init__(self, features: tuple[Feature, ...] = FEATURES, num_actions: int = len(ACTIONS),
                 hidden_sizes: tuple[int, ...] = (64, 64)):
        super().__init__()
        self.register_buffer("offset", torch.tensor([f.offset for f in features], dtype=torch.float32))
        self.register_buffer("scale", torch.tensor([f.scale for f in features], dtype=torch.float32))
        self.register_buffer("lo", torch.tensor([f.lo for f in features], dtype=torch.float32))
        self.register_buffer("hi", torch.tensor([f.hi for f in features], dtype=torch.float32))
        layers: list[nn.Module] = []
        width = len(features)
        for hidden in hidden_sizes:
            layers += [nn.Linear(width, hidden), nn.ReLU()]
            width = hidden
        layers.append(nn.Linear(width, num_actions))
        self.mlp = nn.Sequential(*layers)

    def normalise(self, observations: torch.Tensor) -> torch.Tensor:
        return torch.minimum(torch.maximum((observations - self.offset) / self.scale, self.lo), self.hi)

    def forward(self, observations: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.mlp(self.normalise(observations))            # [batch, num_actions]
        confidence = torch.softmax(logits, dim=-1).amax(dim=-1)     # [batch]
        return logits, confidence


def policy_spec(hidden_sizes: tuple[int, ...]) -> dict:
    """The contents of policy.json."""
    return {
        "format_version": 1,
        "name": "npc-policy",
        "input": {"name": "observations", "dtype": "float32", "shape": ["batch", len(FEATURES)],
                  "values": "raw game units; the model normalises them itself"},
        "outputs": [
            {"name": "action_logits", "dtype": "float32", "shape": ["batch", len(ACTIONS)]},
            {"name": "confidence", "dtype": "float32", "shape": ["batch"],
             "description": "max softmax probability, in (0, 1]"},
        ],
        "num_features": len(FEATURES),
        "num_actions": len(ACTIONS),
        "features": [
            {"index": i, "name": f.name, "description": f.description,
             "normalisation": {"offset": f.offset, "scale": f.scale, "clip": [f.lo, f.hi]}}
            for i, f in enumerate(FEATURES)
        ],
        "normalisation_formula": "clip((raw - offset) / scale, clip[0], clip[1]), applied inside the model",
        "actions": list(ACTIONS),
        "hidden_sizes": list(hidden_sizes),
        "activation": "relu",
    }


def save_policy(model: PolicyNet, directory: Path, hidden_sizes: tuple[int, ...], extra: dict | None = None) -> None:
    from safetensors.torch import save_file

    directory.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(directory / "policy.safetensors"))
    spec = policy_spec(hidden_sizes) | (extra or {})
    (directory / "policy.json").write_text(json.dumps(spec, indent=2) + "\n")


def load_policy_from(directory: Path) -> tuple[PolicyNet, dict]:
    from safetensors.torch import load_file

    spec_path, weights_path = directory / "policy.json", directory / "policy.safetensors"
    if not spec_path.is_file() or not weights_path.is_file():
        raise FileNotFoundError(
            f"npc-policy weights not found in {directory}; run `python -m npc_export.builtin.train --only policy`")
    spec = json.loads(spec_path.read_text())
    features = tuple(
        Feature(f["name"], f["description"], f["normalisation"]["offset"], f["normalisation"]["scale"],
                f["normalisation"]["clip"][0], f["normalisation"]["clip"][1])
        for f in spec["features"]
    )
    model = PolicyNet(features, len(spec["actions"]), tuple(spec["hidden_sizes"]))
    model.load_state_dict(load_file(str(weights_path)))
    model.eval()
    return model, spec
