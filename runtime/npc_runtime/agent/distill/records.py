"""Escalation records: what the policy saw and proposed, what the teacher (the cloud) chose, what ran.

The agent appends one JSON line per settled escalation (`AgentRuntime.records`, wired by the assembly to a
`RecordLog` in `<data_dir>/escalations/`), one file per UTC day:

    {"observation": {"player_distance": 2.1, ...}, "allowed": ["greet", "talk", ...], "state": "idle",
     "local_action": "greet", "local_confidence": 0.41, "policy_version": "base", "trigger": "low_confidence",
     "outcome": "ok", "teacher_action": "talk", "executed": "talk", "cost_usd": 0.0002, "game_time_s": 61.5,
     "wall_time_unix": 1795686000.1, "npc_id": "merchant-01", ...}

`npcrt distill --records SOURCE` reads them back: SOURCE is a directory (every *.jsonl in it), one .jsonl
file, a file:// URL, or an http(s):// URL serving JSON lines. Only ACCEPTED records train: outcome "ok"
and a teacher action that is a known action inside the record's allowed list (a hostile or broken teacher's
forbidden choice never becomes a label, even from a tampered file).
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from npc_runtime.agent.actions import ACTION_SET
from npc_runtime.errors import InvalidArgument, Unavailable

MAX_RECORD_BYTES = 64 * 1024          # one line; an observation is a few hundred bytes
MAX_SOURCE_BYTES = 512 * 1024 * 1024  # everything read from one SOURCE
MAX_FEATURES = 256


class RecordLog:
    """Appends records as JSON lines to `<directory>/escalations-YYYYMMDD.jsonl` (UTC day); thread-safe.
    Each line is written whole with one write() on a file opened in append mode."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InvalidArgument(f"escalation records dir {self.directory}: {exc.strerror or exc}") from exc
        self._lock = threading.Lock()
        self.written = 0

    def path_for(self, wall_time_unix: float) -> Path:
        return self.directory / time.strftime("escalations-%Y%m%d.jsonl", time.gmtime(wall_time_unix))

    def append(self, record: Mapping[str, Any]) -> None:
        line = json.dumps(record, ensure_ascii=False, separators=(",", ":"), allow_nan=False) + "\n"
        path = self.path_for(float(record.get("wall_time_unix", time.time())))
        with self._lock:
            try:
                with open(path, "a", encoding="utf-8") as f:
                    f.write(line)
                self.written += 1
            except OSError:
                # a full disk must not fail the NPC's step: the record is lost, the decision is not
                return

    def close(self) -> None:
        """Nothing stays open between appends; here for the assembly's closers."""


@dataclass(frozen=True)
class Example:
    """One accepted record, ready to train on."""
    observation: Mapping[str, float]
    allowed: tuple[str, ...]
    teacher: str
    local_action: str
    policy_version: str
    wall_time_unix: float
    key: str               # stable id (hash of the line): the held-out split and dedup use it


def read_records(source: str) -> tuple[list[dict], list[str]]:
    """(records, problems): every JSON-object line of SOURCE; a line that is not one is reported, skipped."""
    lines = _lines(source)
    records, problems = [], []
    for where, line in lines:
        if not line.strip():
            continue
        if len(line) > MAX_RECORD_BYTES:
            problems.append(f"{where}: record longer than {MAX_RECORD_BYTES} bytes, skipped")
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(f"{where}: not JSON ({exc.msg}), skipped")
            continue
        if not isinstance(obj, dict):
            problems.append(f"{where}: not a JSON object, skipped")
            continue
        obj["_key"] = hashlib.sha256(line.encode("utf-8", "replace")).hexdigest()[:16]
        records.append(obj)
    return records, problems


def _lines(source: str) -> list[tuple[str, str]]:
    parsed = urllib.parse.urlparse(source)
    if parsed.scheme in ("http", "https"):
        return _http_lines(source)
    path = Path(urllib.request.url2pathname(parsed.path)) if parsed.scheme == "file" else Path(source)
    if path.is_dir():
        files = sorted(path.glob("*.jsonl"))
        if not files:
            raise InvalidArgument(f"--records {source}: no *.jsonl files in this directory")
    elif path.is_file():
        files = [path]
    else:
        raise InvalidArgument(f"--records {source}: no such file or directory")
    out, total = [], 0
    for file in files:
        try:
            text = file.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            raise InvalidArgument(f"--records {file}: {exc.strerror or exc}") from exc
        total += len(text)
        if total > MAX_SOURCE_BYTES:
            raise InvalidArgument(f"--records {source}: more than {MAX_SOURCE_BYTES >> 20} MiB of records; "
                                  "pass fewer files (a directory per day)")
        out.extend((f"{file.name}:{i + 1}", line) for i, line in enumerate(text.splitlines()))
    return out


def _http_lines(url: str) -> list[tuple[str, str]]:
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:   # noqa: S310 - the user's own URL
            body = resp.read(MAX_SOURCE_BYTES + 1)
    except (OSError, ValueError) as exc:
        raise Unavailable(f"--records {url}: cannot fetch ({exc})") from exc
    if len(body) > MAX_SOURCE_BYTES:
        raise InvalidArgument(f"--records {url}: more than {MAX_SOURCE_BYTES >> 20} MiB of records")
    return [(f"{url}:{i + 1}", line) for i, line in enumerate(body.decode("utf-8", "replace").splitlines())]


def accepted(records: Iterable[Mapping[str, Any]]) -> tuple[list[Example], dict[str, int]]:
    """The records a student may learn from, and why the others were left out (reason -> count)."""
    out: list[Example] = []
    skipped: dict[str, int] = {}
    seen: set[str] = set()

    def skip(reason: str) -> None:
        skipped[reason] = skipped.get(reason, 0) + 1

    for r in records:
        allowed = r.get("allowed")
        teacher = r.get("teacher_action")
        obs = r.get("observation")
        if r.get("outcome") != "ok" or teacher is None:
            skip(f"outcome {r.get('outcome')!r}")
            continue
        if not isinstance(allowed, list) or not all(isinstance(a, str) for a in allowed):
            skip("no allowed actions")
            continue
        if not isinstance(teacher, str) or teacher not in allowed or teacher not in ACTION_SET:
            skip("teacher action outside the allowed actions")    # hostile or broken: never a label
            continue
        if not isinstance(obs, dict) or len(obs) > MAX_FEATURES or not all(
                isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                for k, v in obs.items()):
            skip("observation is not a map of finite numbers")
            continue
        key = str(r.get("_key") or hashlib.sha256(json.dumps(r, sort_keys=True, default=str).encode()).hexdigest()[:16])
        if key in seen:
            skip("duplicate")
            continue
        seen.add(key)
        wall = r.get("wall_time_unix")
        out.append(Example(observation={k: float(v) for k, v in obs.items()},
                           allowed=tuple(a for a in allowed if a in ACTION_SET), teacher=teacher,
                           local_action=str(r.get("local_action", "")), policy_version=str(r.get("policy_version", "")),
                           wall_time_unix=float(wall) if isinstance(wall, (int, float)) else 0.0, key=key))
    return out, skipped


def split(examples: list[Example], *, heldout_fraction: float) -> tuple[list[Example], list[Example]]:
    """(train, held-out) by a hash of each record: the same record always lands on the same side."""
    train, held = [], []
    for e in examples:
        h = int(hashlib.sha256(("heldout:" + e.key).encode()).hexdigest()[:8], 16) / 2 ** 32
        (held if h < heldout_fraction else train).append(e)
    return train, held

