"""Generated blocks in documents: the text between two marker comments, rewritten from result files by the
bench report scripts (reliability_report, distill_report), or checked (`--check`: exit 1 when stale)."""

from __future__ import annotations

import sys
from pathlib import Path

LOSS = "▼"   # marks a figure below its peer or its target, in every generated table


def table(header: list[str], rows: list[list[str]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def splice(doc: str, body: str, begin: str, end: str, *, who: str) -> str:
    """`doc` with the text between `begin` and `end` replaced by `body`."""
    if begin not in doc or end not in doc:
        raise SystemExit(f"{who}: the document has no {begin} ... {end} block")
    head, _, rest = doc.partition(begin)
    _, _, tail = rest.partition(end)
    return f"{head}{begin}\n{body}{end}{tail}"


def write_or_check(path: Path, new: str, *, check: bool, who: str) -> int:
    """Write `new` to `path`, or with `check` compare only; the exit code."""
    if path.read_text() == new:
        return 0
    if check:
        print(f"{path} is out of date: run python -m bench.{who}", file=sys.stderr)
        return 1
    path.write_text(new)
    print(f"wrote {path}")
    return 0
