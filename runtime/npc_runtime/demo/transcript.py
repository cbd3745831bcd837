"""What the demo's NPCs heard, said and did: the transcript and the counts of a run.

`Recorder.add` takes every `Decision` the server sends back (quiet FSM ticks and talk steps alike) and keeps:

- the transcript: one `Entry` per step that had words or events (what the player said, what happened) and
  per non-empty line an NPC spoke, in the order the answers arrived;
- counts that mean what they say. `decisions` counts every answer, quiet 10 Hz ticks included.
  `actions_by_name` counts actions *taken*: an answer to an interaction always counts (the NPC chose what to
  do about it), a quiet tick counts only when it changes what the NPC is doing (a guard patrolling on for
  another tick is one patrol, not ten a second). `utterances` counts non-empty lines.
- per NPC, the latest decision and the last non-empty line (for the live view) and a timeline (for the plot).
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from typing import Iterable

# DecisionSource enum names -> the words the transcript uses
SOURCE_LABELS = {
    "DECISION_SOURCE_UNSPECIFIED": "unspecified", "DECISION_SOURCE_FSM": "fsm", "DECISION_SOURCE_POLICY": "policy",
    "DECISION_SOURCE_LOCAL_MODEL": "local model", "DECISION_SOURCE_CLOUD": "cloud",
    "DECISION_SOURCE_FALLBACK": "fallback",
}


@dataclass(frozen=True)
class Entry:
    """One transcript line. `heard` is the player's words in quotes, then the events the NPC witnessed."""

    game_time_s: float
    npc_id: str
    name: str
    heard: str
    said: str
    action: str
    source: str
    escalated: bool
    escalated_to: str      # the escalation provider ("local:local", "openai:gpt-4o-mini"...) when escalated
    rejected: bool
    reason: str            # why this decision (the server's words); for a rejection, why it was rejected
    state: str

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Step:
    """A decision as the demo sees it, decoupled from protobuf: what the timeline and the live view need."""

    game_time_s: float
    state: str
    action: str
    source: str
    escalated: bool
    rejected: bool
    said: str


def heard_text(utterance: str, events: Iterable[str]) -> str:
    """What an NPC perceived in one step, as one readable string ("" for a quiet tick)."""
    parts = [f'"{utterance}"'] if utterance else []
    parts.extend(e for e in events if e)
    return " · ".join(parts)


class Recorder:
    def __init__(self, names: dict[str, str], *, escalation_provider: str = ""):
        self.names = names                                   # npc id -> display name
        self.escalation_provider = escalation_provider       # "cloud" may be a local model: say which
        self.transcript: list[Entry] = []
        self.timeline: dict[str, list[Step]] = defaultdict(list)
        self.latest: dict[str, Step] = {}
        self.last_line: dict[str, tuple[str, float]] = {}    # npc id -> (line, wall time it arrived)
        self.counts: Counter = Counter()
        self.actions: Counter = Counter()                    # actions taken (see the module docstring)
        self.decisions_by_action: Counter = Counter()        # every decision's action, quiet ticks included
        self.decisions_by_source: Counter = Counter()
        self.utterances_by_source: Counter = Counter()

    def add(self, decision, *, game_time_s: float, heard: str = "") -> None:
        """Record one `npc_proto.v1.Decision` answering a step sent at `game_time_s` (`heard`: what it perceived)."""
        from npc_proto.v1 import agent_pb2 as pb

        d = decision
        source = SOURCE_LABELS.get(pb.DecisionSource.Name(d.source), "unspecified")
        said = d.dialogue.strip()
        step = Step(game_time_s, d.state, d.action, source, d.escalated, d.rejected_action, said)
        previous = self.latest.get(d.npc_id)
        self.latest[d.npc_id] = step
        self.timeline[d.npc_id].append(step)

        c = self.counts
        c["decisions"] += 1
        c["escalations"] += int(d.escalated)
        c["rejected_actions"] += int(d.rejected_action)
        c["fallbacks"] += int(source == "fallback")
        c["memories_written"] += d.memories_written
        c["interactions"] += int(bool(heard))
        self.decisions_by_action[d.action] += 1
        self.decisions_by_source[source] += 1
        if heard or previous is None or previous.action != d.action:
            self.actions[d.action] += 1
        if said:
            c["utterances"] += 1
            self.utterances_by_source[source] += 1
            self.last_line[d.npc_id] = (said, time.perf_counter())
        if heard or said:
            self.transcript.append(Entry(
                game_time_s=round(game_time_s, 2), npc_id=d.npc_id, name=self.names.get(d.npc_id, d.npc_id),
                heard=heard, said=said, action=d.action, source=source, escalated=d.escalated,
                escalated_to=self.escalation_provider if d.escalated else "", rejected=d.rejected_action,
                reason=d.reason, state=d.state))

    def summary(self) -> dict:
        c = self.counts
        return {
            "decisions": c["decisions"], "interactions": c["interactions"], "utterances": c["utterances"],
            "escalations": c["escalations"], "fallbacks": c["fallbacks"], "rejected_actions": c["rejected_actions"],
            "memories_written": c["memories_written"],
            "actions_by_name": dict(sorted(self.actions.items())),
            "utterances_by_source": dict(sorted(self.utterances_by_source.items())),
            "decisions_by_source": dict(sorted(self.decisions_by_source.items())),
            "decisions_by_action": dict(sorted(self.decisions_by_action.items())),
        }


def entry_text(e: Entry) -> str:
    """One plain line for logs: `  5.1s guard-01 (Bram) heard "..." -> refuse [local model] says "..."`."""
    parts = [f"{e.game_time_s:6.1f}s {e.npc_id} ({e.name})"]
    if e.heard:
        parts.append(f"heard {e.heard} ->")
    parts.append(f"{e.action} [{_source(e)}]")
    if e.said:
        parts.append(f'says "{e.said}"')
    if e.rejected:
        parts.append(f"(rejected: {e.reason})")
    return " ".join(parts)


def _source(e: Entry) -> str:
    if e.escalated:
        return f"{e.source}, escalated to {e.escalated_to}" if e.escalated_to else f"{e.source}, escalated"
    return e.source


def transcript_markdown(entries: list[Entry], *, title: str, notes: Iterable[str] = ()) -> str:
    """The transcript as a Markdown table (pipes and newlines in the text escaped)."""

    def cell(text: str) -> str:
        return " ".join(str(text).split()).replace("|", "\\|")

    lines = [f"# {title}", ""]
    lines.extend(f"{n}  " for n in notes)
    if notes:
        lines.append("")
    lines += ["| time (s) | NPC | heard | said | action | source | escalated | rejected |",
              "|---:|---|---|---|---|---|---|---|"]
    for e in entries:
        rejected = f"yes: {cell(e.reason)}" if e.rejected else ""
        lines.append(f"| {e.game_time_s:.2f} | {cell(e.npc_id)} ({cell(e.name)}) | {cell(e.heard)} | "
                     f"{cell(e.said)} | {e.action} | {e.source} | {e.escalated_to or ('yes' if e.escalated else '')} | "
                     f"{rejected} |")
    if not entries:
        lines.append("| | | (nothing was said or happened) | | | | | |")
    return "\n".join(lines) + "\n"
