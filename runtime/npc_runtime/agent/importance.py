"""Importance (1-10) of a perception, without a model call.

Cheap rules decide the mundane (event kinds with a fixed importance); the rest goes to a keyword scorer.
The built-in dialogue model is not trained to rate importance, so the "model" scorer of the design is,
for now, this heuristic (documented in docs/agent.md). `ImportanceScorer` is the seam to plug a model in.
"""

from __future__ import annotations

import re
from typing import Mapping, Protocol

# event kind -> importance: the mundane and the obvious, decided by rule
EVENT_IMPORTANCE: Mapping[str, float] = {
    "greeting": 2, "small_talk": 2, "talk": 3, "weather": 1, "footsteps": 1, "trade_offer": 4, "trade": 4,
    "gift": 5, "threat": 7, "theft": 7, "attack": 9, "death": 10, "quest": 8, "crime": 7,
}

# keyword -> weight added to a base of 2, capped at 10
_KEYWORDS: Mapping[str, float] = {
    "kill": 5, "murder": 6, "dead": 5, "die": 4, "attack": 4, "sword": 2, "blood": 4, "steal": 4, "stole": 4,
    "thief": 4, "crown": 4, "king": 3, "queen": 3, "dragon": 5, "gold": 2, "coin": 1, "help": 2, "please": 1,
    "secret": 3, "love": 3, "hate": 3, "fire": 4, "threat": 3, "guard": 1, "quest": 3, "treasure": 3,
    "poison": 5, "betray": 5, "ignore your instructions": 3, "danger": 3,
}
_WORD = re.compile(r"[a-z']+")


class ImportanceScorer(Protocol):
    def score(self, text: str, *, kind: str = "") -> float: ...


class HeuristicImportance:
    """Rules for known event kinds, keyword weights for free text. Deterministic, ~microseconds."""

    def score(self, text: str, *, kind: str = "") -> float:
        if kind in EVENT_IMPORTANCE:
            return float(EVENT_IMPORTANCE[kind])
        lowered = text.lower()
        words = set(_WORD.findall(lowered))
        total = 2.0
        for key, weight in _KEYWORDS.items():
            if (" " in key and key in lowered) or key in words:
                total += weight
        if "!" in text:
            total += 1
        return float(min(10.0, max(1.0, total)))
