"""Reflection: when recent memories add up to enough importance, write a few insights back.

The built-in dialogue model is trained only to answer in character, not to summarise, so insights are
made by rules over what happened since the last reflection (event kinds, who did what, how often),
e.g. "The player has stolen from me 3 times recently; I should not trust them." They are stored as
`reflection` memories with importance 8, so later retrieval and escalation prompts see them.
"""

from __future__ import annotations

from collections import Counter
from typing import Mapping, Sequence

from npc_runtime.agent.memory import Memory

# event kind -> (insight template with {n}, importance)
INSIGHTS: Mapping[str, tuple[str, float]] = {
    "theft": ("The player has stolen {n} time(s) recently; I should not trust them near goods.", 8),
    "attack": ("The player attacked {n} time(s) recently; they are dangerous.", 9),
    "threat": ("The player made {n} threat(s) recently; I should stay on guard.", 8),
    "trade_offer": ("The player traded with us {n} time(s); they can be a good customer.", 6),
    "greeting": ("The player greets people politely.", 4),
    "gift": ("The player gave gifts {n} time(s); they may be a friend.", 6),
}
MAX_INSIGHTS = 3


def reflect(recent: Sequence[Memory]) -> list[tuple[str, float]]:
    """[(insight text, importance)] from the memories since the last reflection, most important first."""
    kinds = Counter(m.kind.split(":", 1)[1] for m in recent if m.kind.startswith("event:"))
    out: list[tuple[str, float]] = []
    for kind, n in kinds.most_common():
        if kind in INSIGHTS:
            template, importance = INSIGHTS[kind]
            out.append((template.format(n=n), importance))
    said = [m for m in recent if m.kind == "utterance"]
    if said:
        top = max(said, key=lambda m: m.importance)
        out.append((f"The player talked to me {len(said)} time(s); what stood out: {top.text}", min(10.0, top.importance + 1)))
    out.sort(key=lambda item: -item[1])
    return out[:MAX_INSIGHTS]
