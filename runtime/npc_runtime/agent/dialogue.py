"""The local dialogue model behind one small interface, and the chat prompt it was trained on.

Prompt format (built-in `npc-dialogue`):
    <s><|system|>You are Bram, the village guard. Traits: stern, loyal. Mood: suspicious. Situation: ...<|end|>
    <|user|>Let me through.<|end|><|assistant|>[refuse] The gate stays shut until dawn, stranger.<|end|></s>
The reply starts with `[action]`; the planner constrains those first tokens to the FSM-allowed actions.

Player text is untrusted: it only ever fills the `<|user|>` slot, with every control marker removed, so
it cannot close the user turn, forge a system message or pre-write the `[action]` tag.

Streaming (`NpcAgent.StepStream`): a model that can stream implements `StreamingDialogueModel.reply_stream`,
which reports the `[action]` as soon as the tag is decoded and then the spoken line's text as the engine
decodes it; `SentenceDeltas` turns those raw pieces into the deltas a client gets (the line's outer
whitespace dropped, sentence ends marked). A whole line (FSM, cloud, template) is cut by `split_sentences`
at the same boundaries.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from typing import Iterator, Mapping, Protocol, Sequence

from npc_runtime.agent.actions import ACTION_SET

BOS, EOS = "<s>", "</s>"
SYSTEM, USER, ASSISTANT, END = "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"
MAX_PLAYER_CHARS = 300

_CONTROL = re.compile(r"<\|[^|>]*\|>|</?s>|<pad>|<\|[a-z_]*|\|>", re.IGNORECASE)
_REPLY = re.compile(r"^\s*\[([a-z_]+)\]\s*(.*)$", re.DOTALL)
_TAG = re.compile(r"^\s*\[([a-z_]+)\]\s*$")
# a sentence ends after a run of . ! ? … (and closing quotes / brackets) that whitespace follows; "Mr. Smith"
# splits too, which costs a subtitle line, never text
_SENTENCE_END = re.compile(r"[.!?\u2026]+[\"'\u201d\u2019)\]]*(?=\s)")
_ENDS_SENTENCE = re.compile(r"[.!?\u2026]+[\"'\u201d\u2019)\]]*$")


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


class DialogueStream(Protocol):
    """One reply being decoded: the `[action]` tag first, then the spoken line piece by piece."""

    tokens: int           # tokens generated so far (tag and line)
    prefill_tokens: int

    def action(self, *, timeout_s: float) -> tuple[str | None, Mapping[str, float] | None, str]:
        """(action or None when the tag is malformed, P(action) over the allowed ones or None, the tag text)
        once the tag is decoded. Raises DeadlineExceeded when `timeout_s` passes first, NpcRuntimeError
        when the model fails."""

    def pieces(self, *, timeout_s: float, cancelled: threading.Event | None = None) -> Iterator[str]:
        """The line's raw text as it decodes (whole characters; stop markers already removed). Ends early,
        without error, when `timeout_s` passes or `cancelled` is set; the decoding stops then."""

    def cancel(self) -> None:
        """Stop decoding now (idempotent)."""


class StreamingDialogueModel(DialogueModel, Protocol):
    def reply_stream(self, prompt: DialoguePrompt, *, allowed_actions: Sequence[str], max_tokens: int,
                     npc_id: str, seed: int | None = None) -> DialogueStream:
        """Starts decoding at once; the same tokens `reply()` would produce for the same arguments."""


def parse_reply(raw: str, *, tokens: int = 0, action_probs: Mapping[str, float] | None = None) -> DialogueReply:
    """`[action] line` -> DialogueReply; an unknown or missing tag gives action=None."""
    text = raw.split(END, 1)[0].replace(EOS, "").strip()
    m = _REPLY.match(text)
    if not m or m.group(1) not in ACTION_SET:
        return DialogueReply(action=None, line=_CONTROL.sub("", text).strip(), raw=raw, tokens=tokens,
                             action_probs=action_probs)
    return DialogueReply(action=m.group(1), line=m.group(2).strip(), raw=raw, tokens=tokens, action_probs=action_probs)


def tag_action(tag: str) -> str | None:
    """The action of a decoded `[action]` tag; None when it is not exactly one known tag."""
    m = _TAG.match(tag.split(END, 1)[0].replace(EOS, ""))
    return m.group(1) if m and m.group(1) in ACTION_SET else None


def split_sentences(line: str) -> list[str]:
    """A whole line -> its sentences, whitespace kept with the sentence it precedes ("".join = line)."""
    out, start = [], 0
    for m in _SENTENCE_END.finditer(line):
        out.append(line[start:m.end()])
        start = m.end()
    if start < len(line):
        out.append(line[start:])
    return out


class SentenceDeltas:
    """Raw text pieces of a spoken line, as decoded -> (text, sentence_end) deltas for a client.

    The concatenated deltas equal the line with its outer whitespace stripped (as `parse_reply` strips it).
    The last word is held back until the next piece shows where it ends, so a delta never ends inside a
    word, a delta that ends a sentence is known to (whitespace follows its `.`/`!`/`?`), and the final delta,
    sent by `finish()`, always holds text and carries `sentence_end`. Pieces are str, so whole characters."""

    def __init__(self) -> None:
        self._pending = ""
        self._started = False
        self.text = ""          # everything emitted so far

    def feed(self, piece: str) -> list[tuple[str, bool]]:
        self._pending += piece
        if not self._started:
            self._pending = self._pending.lstrip()
            self._started = bool(self._pending)
        body = self._pending.rstrip()
        cut = max((i for i, ch in enumerate(body) if ch.isspace()), default=-1)
        if cut <= 0:
            return []
        while cut > 0 and body[cut - 1].isspace():   # the start of the whitespace before the last word
            cut -= 1
        return self._emit(self._pending[:cut], self._pending[cut:], final=False)

    def finish(self) -> list[tuple[str, bool]]:
        """The held-back rest; its last delta ends the line (sentence_end=True)."""
        return self._emit(self._pending.rstrip(), "", final=True)

    def _emit(self, ready: str, rest: str, *, final: bool) -> list[tuple[str, bool]]:
        # `ready` is followed by whitespace (`rest` starts with it) or ends the line, so a terminal run at its
        # end is a sentence end as surely as one split_sentences finds inside it
        self._pending = rest
        self.text += ready
        out = [(piece, _ENDS_SENTENCE.search(piece) is not None) for piece in split_sentences(ready)]
        if final and out:
            out[-1] = (out[-1][0], True)
        return out


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
