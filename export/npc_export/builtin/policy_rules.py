"""The built-in policy's data, without torch: observation features (names, units, normalisation), the
synthetic game moments the policy is trained on, and the rule that labels them.

Torch-free on purpose: the runtime's `npcrt distill` regenerates the base training data with the same
seeded generator (so a distilled version keeps the base skills), and the offline `rules` escalation
provider answers with `rule_action` (the teacher of the distillation demo).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from .corpus import ACTIONS  # noqa: F401 - re-exported: the action order of the policy's logits


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
