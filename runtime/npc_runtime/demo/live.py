"""The demo's live view: a `rich` table in a terminal, plain periodic lines otherwise (CI logs).

Both read the `Recorder` the demo fills as answers arrive; `refresh()` is called once per frame and does
its own rate limiting, so the game loop never waits on the terminal.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from npc_runtime.demo.transcript import Recorder, entry_text

TABLE_REFRESH_S = 0.25
PLAIN_EVERY_S = 2.0
RECENT_LINES = 6


def make_live_view(recorder: Recorder, village, *, enabled: bool, stream: TextIO | None = None,
                   every_s: float = PLAIN_EVERY_S):
    """The table when `stream` is a terminal, plain lines when it is not, nothing when not `enabled`."""
    stream = stream or sys.stdout
    if not enabled:
        return NoLiveView()
    if stream.isatty():
        return LiveTable(recorder, village)
    return PlainLines(recorder, stream=stream, every_s=every_s)


class NoLiveView:
    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        return None

    def refresh(self) -> None:
        return None


class PlainLines:
    """Every `every_s` wall seconds, one line per transcript entry that arrived since the last print (what
    the player said or did and the NPC's answer, escalations and rejections flagged); the rest at exit."""

    def __init__(self, recorder: Recorder, *, stream: TextIO, every_s: float = PLAIN_EVERY_S):
        self.recorder, self.stream, self.every_s = recorder, stream, every_s
        self._printed = 0
        self._next = 0.0

    def __enter__(self):
        self._next = time.perf_counter() + self.every_s
        return self

    def __exit__(self, *exc) -> None:
        self._flush()

    def refresh(self) -> None:
        now = time.perf_counter()
        if now >= self._next:
            self._next = now + self.every_s
            self._flush()

    def _flush(self) -> None:
        entries = self.recorder.transcript[self._printed:]
        self._printed += len(entries)
        if entries:
            self.stream.write("".join(entry_text(e) + "\n" for e in entries))
            self.stream.flush()


class LiveTable:
    """Every NPC's state and action, and the last thing it said (with how long ago): the latest decision
    alone is almost always a quiet tick with no words. Below it, the most recent transcript lines."""

    def __init__(self, recorder: Recorder, village):
        self.recorder, self.village = recorder, village
        self._live = None
        self._next = 0.0

    def __enter__(self):
        from rich.live import Live

        self._live = Live(self._render(), auto_refresh=False, transient=False)
        self._live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self._live is not None:
            self._live.update(self._render(), refresh=True)
            self._live.__exit__(*exc)

    def refresh(self) -> None:
        now = time.perf_counter()
        if self._live is None or now < self._next:
            return
        self._next = now + TABLE_REFRESH_S
        self._live.update(self._render(), refresh=True)

    def _render(self):
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        r, c = self.recorder, self.recorder.counts
        now = time.perf_counter()
        table = Table(title=f"npcrt demo — village of {len(self.village.npcs)} NPCs · decisions {c['decisions']} · "
                            f"lines spoken {c['utterances']} · escalations {c['escalations']} · "
                            f"rejected {c['rejected_actions']} · fallbacks {c['fallbacks']}")
        for col in ("npc", "name", "state", "action", "source", "said", "says (last line)"):
            table.add_column(col, overflow="ellipsis", no_wrap=True, max_width=70 if col.startswith("says") else 16,
                             justify="right" if col == "said" else "left")
        for npc in self.village.npcs[:40]:
            s = r.latest.get(npc.npc_id)
            line = r.last_line.get(npc.npc_id)
            # the age in its own column: a long line is cut at the right edge, the age must stay visible
            ago, says = (f"{now - line[1]:.0f}s ago", f"“{line[0]}”") if line else ("", "")
            if s is None:
                table.add_row(npc.npc_id, npc.name, "-", "-", "-", ago, says)
                continue
            flag = " ✗" if s.rejected else (" ☁" if s.escalated else "")
            table.add_row(npc.npc_id, npc.name, s.state, s.action, s.source + flag, ago, says)
        recent = [Text(entry_text(e), overflow="ellipsis", no_wrap=True) for e in r.transcript[-RECENT_LINES:]]
        return Group(table, Text("recent:", style="bold"), *recent) if recent else table
