"""Progress of an export, by stage: a live line in a terminal, one plain line per stage elsewhere.

- stderr is a terminal: a tqdm line `NAME [3/4] self-check vs PyTorch  00:02` whose clock (time since
  the export began) keeps ticking while a long stage runs (a bar that only moves between stages looks
  frozen).
- otherwise (CI logs, `make demo | tee`, a service manager): one line per finished stage,
  `npcrt export: NAME [3/4] self-check vs PyTorch ... 2.8 s`, flushed at once.
A stage that fails prints nothing: the caller's error line says what went wrong.
"""

from __future__ import annotations

import sys
import threading
import time

LABEL = "npcrt export"
TICK_S = 0.5  # how often the terminal line's clock is redrawn


class Stages:
    """Runs an export's stages in order, times each (`timings`: key -> seconds) and shows progress.
    `stages`: (key, label) pairs; `key` names the timing, `label` is what the user reads."""

    def __init__(self, stages: list[tuple[str, str]], *, enabled: bool, desc: str, stream=None):
        self.stages = list(stages)
        self.labels = dict(self.stages)
        self.desc = desc
        self.stream = stream if stream is not None else sys.stderr
        self.timings: dict[str, float] = {}
        self.notes: list[str] = []
        self.mode = "off" if not enabled else ("bar" if _isatty(self.stream) else "lines")
        self._bar = None
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        if self.mode == "bar":
            from tqdm import tqdm

            self._bar = tqdm(total=len(self.stages), desc=desc, leave=False, file=self.stream,
                             bar_format="{desc}  {elapsed}")
            self._ticker = threading.Thread(target=self._tick, name="npc-export-progress", daemon=True)
            self._ticker.start()

    def _tick(self) -> None:
        while not self._stop.wait(TICK_S):
            self._bar.refresh()

    def run(self, key: str, fn, *args, **kwargs):
        index = [k for k, _ in self.stages].index(key) + 1
        label = self.labels[key]
        where = f"{self.desc} [{index}/{len(self.stages)}] {label}"
        if self._bar is not None:
            self._bar.set_description_str(where, refresh=True)
        start = time.perf_counter()
        result = fn(*args, **kwargs)
        elapsed = time.perf_counter() - start
        self.timings[key] = round(elapsed, 3)
        if self._bar is not None:
            self._bar.update(1)
        elif self.mode == "lines":
            self._line(f"{where} ... {elapsed:.1f} s")
        return result

    def note(self, message: str) -> None:
        """Something the user should know that is not an error (kept in `notes` for the result)."""
        self.notes.append(message)
        if self._bar is not None:
            self._bar.write(f"{LABEL}: {message}", file=self.stream)
        elif self.mode == "lines":
            self._line(message)

    def _line(self, text: str) -> None:
        print(f"{LABEL}: {text}", file=self.stream, flush=True)

    def close(self) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
        if self._bar is not None:
            self._bar.close()


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False
