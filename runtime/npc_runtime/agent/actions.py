"""The action vocabulary shared by the FSMs, the dialogue model (`[action]` prefix) and the policy model."""

from __future__ import annotations

ACTIONS: tuple[str, ...] = (
    "idle", "greet", "talk", "trade", "refuse", "warn", "attack", "flee", "call_guards", "patrol", "follow", "give",
)
ACTION_SET = frozenset(ACTIONS)
