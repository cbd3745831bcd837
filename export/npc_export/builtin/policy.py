"""npc-policy: a small MLP from named observation features to action logits and a confidence.

Input: RAW observations float32 [batch, num_features] in game units, in the order of `FEATURES`; the
module normalises them itself ((x - offset) / scale, clipped to [lo, hi]), so callers (runtime, Unity,
Unreal) pass the numbers the game has. Every feature's neutral value is 0, so a caller that leaves a
feature out (0) gets sensible behaviour. Output: action_logits [batch, num_actions] over `ACTIONS` and
confidence [batch] = max softmax probability, in (0, 1].
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .corpus import ACTIONS


@dataclass(frozen=True)
class Feature:
    name: str
    description: str
    offset: float = 0.0      # normalised = clip((raw - offset) / scale, lo, hi)
    scale: float = 1.0
    lo: float = 0.0
    hi: float = 1.0


FEATURES: tuple[Feature, ...] = (
    Feature("player_distance", "distance to the player in meters", scale=20.0),
    Feature("player_hostility", "how hostile the player looks, 0 (friendly) .. 1 (murderous)"),
    Feature("player_armed", "1 if the player holds a weapon"),
    Feature("player_attacking", "1 if the player is attacking this NPC right now"),
    Feature("player_is_stealing", "1 if the player is stealing from this NPC or its stall"),
    Feature("gold_offered", "gold the player offers (bribe or payment)", scale=100.0),
    Feature("npc_injury", "how hurt this NPC is, 0 (unhurt) .. 1 (dying)"),
    Feature("npc_is_guard", "1 if this NPC is a guard (or another fighter)"),
    Feature("npc_is_merchant", "1 if this NPC trades (merchant, smith, innkeeper)"),
    Feature("npc_is_villager", "1 if this NPC is a villager (farmer, child, priest...)"),
    Feature("allies_nearby", "friendly NPCs within shouting range (count)", scale=5.0),
    Feature("is_night", "1 at night"),
    Feature("crime_witnessed", "1 if this NPC saw the player commit a crime recently"),
    Feature("player_reputation", "the player's reputation with this NPC's faction, -1 .. 1", lo=-1.0),
    Feature("player_wounded", "1 if the player is badly hurt"),
    Feature("player_talking", "1 if the player is addressing this NPC"),
)
FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)
FEATURE_INDEX: dict[str, int] = {name: i for i, name in enumerate(FEATURE_NAMES)}
ROLES = ("guard", "merchant", "villager")


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


# --------------------------------------------------------------------------------------------------
# Synthetic observations and rule-based labels


def random_observation(rng: random.Random) -> dict[str, float]:
    """One plausible game moment, in raw units, with the correlations a game would show."""
    role = rng.choice(ROLES)
    hostile_player = rng.random() < 0.35
    obs = {
        "player_distance": rng.choice((rng.uniform(0.5, 3.0), rng.uniform(3.0, 8.0), rng.uniform(8.0, 40.0))),
        "player_hostility": rng.uniform(0.5, 1.0) if hostile_player else rng.uniform(0.0, 0.5),
        "player_armed": float(rng.random() < (0.7 if hostile_player else 0.3)),
        "player_attacking": float(hostile_player and rng.random() < 0.3),
        "player_is_stealing": float(rng.random() < (0.2 if hostile_player else 0.05)),
        "gold_offered": rng.choice((0.0, 0.0, 0.0, rng.uniform(1, 200))),
        "npc_injury": rng.choice((0.0, rng.uniform(0.0, 1.0))),
        "npc_is_guard": float(role == "guard"),
        "npc_is_merchant": float(role == "merchant"),
        "npc_is_villager": float(role == "villager"),
        "allies_nearby": float(rng.randint(0, 6)),
        "is_night": float(rng.random() < 0.35),
        "crime_witnessed": float(rng.random() < (0.3 if hostile_player else 0.05)),
        "player_reputation": rng.uniform(-1.0, 0.2) if hostile_player else rng.uniform(-0.3, 1.0),
        "player_wounded": float(rng.random() < 0.12),
        "player_talking": float(rng.random() < 0.5),
    }
    return obs


def rule_action(o: dict[str, float]) -> str:
    """The ground-truth policy the network learns (first matching rule wins)."""
    guard, merchant = o["npc_is_guard"] > 0.5, o["npc_is_merchant"] > 0.5
    near, close = o["player_distance"] < 8.0, o["player_distance"] < 3.0
    weak = o["npc_injury"] > 0.7
    if o["player_attacking"] > 0.5:
        if weak:
            return "flee"
        if guard or o["allies_nearby"] >= 3:
            return "attack"
        return "call_guards" if merchant else "flee"
    if (o["player_is_stealing"] > 0.5 and near) or o["crime_witnessed"] > 0.5:
        if guard:
            return "attack" if o["player_hostility"] > 0.7 else "warn"
        return "call_guards"
    if o["player_armed"] > 0.5 and o["player_hostility"] > 0.6 and near:
        if guard:
            return "warn"
        return "flee" if (weak or o["is_night"] > 0.5 or o["allies_nearby"] == 0) else "call_guards"
    if o["player_wounded"] > 0.5 and near:
        return "follow" if guard else "give"
    if o["gold_offered"] > 0 and close:
        if merchant:
            return "trade"
        return "refuse" if guard or o["player_reputation"] < 0 else "talk"
    if close and o["player_talking"] > 0.5:
        if o["player_reputation"] < -0.5:
            return "warn" if guard else "refuse"
        if merchant:
            return "trade"
        if guard and o["player_reputation"] > 0.7:
            return "follow"
        return "talk"
    if near:
        if guard and o["player_reputation"] < -0.5:
            return "warn"
        return "greet" if o["player_reputation"] > 0.0 else "idle"
    return "patrol" if guard else "idle"


def observation_vector(obs: dict[str, float]) -> list[float]:
    return [float(obs[name]) for name in FEATURE_NAMES]


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
