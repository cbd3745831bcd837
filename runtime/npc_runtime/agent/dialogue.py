"""The local dialogue model behind one small interface, and the chat prompt it was trained on.

Prompt format (built-in `npc-dialogue`):
    <s><|system|>You are Bram, the village guard. Traits: stern, loyal. Mood: suspicious. Situation: ...<|end|>
    <|user|>Let me through.<|end|><|assistant|>[refuse] The gate stays shut until dawn, stranger.<|end|></s>
The reply starts with `[action]`; the planner constrains those first tokens to the FSM-allowed actions.

Player text is untrusted: it only ever fills the `<|user|>` slot, with every control marker removed, so
it cannot close the user turn, forge a system message or pre-write the `[action]` tag.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Mapping, Protocol, Sequence

from npc_runtime.agent.actions import ACTION_SET

BOS, EOS = "<s>", "</s>"
SYSTEM, USER, ASSISTANT, END = "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"
MAX_PLAYER_CHARS = 300

_CONTROL = re.compile(r"<\|[^|>]*\|>|</?s>|<pad>|<\|[a-z_]*|\|>", re.IGNORECASE)
_REPLY = re.compile(r"^\s*\[([a-z_]+)\]\s*(.*)$", re.DOTALL)


def sanitize_player_text(text: str) -> str:
    """Untrusted player text -> one plain line: control markers removed, whitespace collapsed, capped."""
    cleaned = _CONTROL.sub(" ", text or "")
    cleaned = " ".join(cleaned.replace("\x00", " ").split())
    return cleaned[:MAX_PLAYER_CHARS]


@dataclass(frozen=True)
class DialoguePrompt:
    persona: str          # "You are Bram, the village guard. Traits: stern, loyal."
    mood: str             # "suspicious"
    situation: str        # "the player is near the gate at night."
    player_text: str      # sanitized; "" when the player said nothing

    @property
    def system(self) -> str:
        persona = self.persona.strip()
        if persona and persona[-1] not in ".!?":
            persona += "."
        situation = self.situation.strip()
        if situation and situation[-1] not in ".!?":
            situation += "."
        return f"{persona} Mood: {self.mood}. Situation: {situation}"

    @property
    def user(self) -> str:
        return self.player_text or "..."

    def text(self) -> str:
        """Everything up to and including `<|assistant|>`: what the model continues."""
        return f"{BOS}{SYSTEM}{self.system}{END}{USER}{self.user}{END}{ASSISTANT}"


@dataclass(frozen=True)
class DialogueReply:
    action: str | None            # None when the output had no valid `[action]` tag
    line: str                     # the spoken line, end markers stripped
    raw: str                      # what the model wrote
    tokens: int                   # tokens generated
    action_probs: Mapping[str, float] | None = None  # P(action tag) over the allowed ones, when known
    prefill_tokens: int = 0


class DialogueModel(Protocol):
    """A local model that answers in character; `seed` given = sampled, else greedy."""

    name: str

    def reply(self, prompt: DialoguePrompt, *, allowed_actions: Sequence[str], max_tokens: int,
              npc_id: str, seed: int | None = None, timeout_s: float | None = None) -> DialogueReply:
        """Raises DeadlineExceeded when `timeout_s` (wall seconds) passes first."""


def parse_reply(raw: str, *, tokens: int = 0, action_probs: Mapping[str, float] | None = None) -> DialogueReply:
    """`[action] line` -> DialogueReply; an unknown or missing tag gives action=None."""
    text = raw.split(END, 1)[0].replace(EOS, "").strip()
    m = _REPLY.match(text)
    if not m or m.group(1) not in ACTION_SET:
        return DialogueReply(action=None, line=_CONTROL.sub("", text).strip(), raw=raw, tokens=tokens,
                             action_probs=action_probs)
    return DialogueReply(action=m.group(1), line=m.group(2).strip(), raw=raw, tokens=tokens, action_probs=action_probs)


MOOD_BY_STATE: Mapping[str, str] = {
    "patrol": "calm", "idle": "calm", "open": "cheerful", "chatting": "cheerful", "trading": "cheerful",
    "alert": "suspicious", "wary": "suspicious", "combat": "angry", "fleeing": "afraid", "scared": "afraid",
}


@dataclass
class TemplateDialogue:
    """No dialogue model available: a fixed line per action, so the rest of the loop still runs.

    It is a stand-in, named as such in decisions and in the demo summary; not a language model."""

    name: str = "template (no dialogue model)"
    lines: Mapping[str, str] = field(default_factory=lambda: {
        "idle": "Hm.", "greet": "Well met, traveller.", "talk": "Aye, what is it?", "trade": "Let's see your coin.",
        "refuse": "No. Not today.", "warn": "Watch yourself, stranger.", "attack": "Have at you!",
        "flee": "Help! Help!", "call_guards": "Guards! Guards!", "patrol": "", "follow": "Come with me.",
        "give": "Here, take it.",
    })

    def reply(self, prompt: DialoguePrompt, *, allowed_actions: Sequence[str], max_tokens: int,
              npc_id: str, seed: int | None = None, timeout_s: float | None = None) -> DialogueReply:
        action = allowed_actions[0]
        line = self.lines.get(action, "")
        return DialogueReply(action=action, line=line, raw=f"[{action}] {line}", tokens=0)
