"""The demo's outputs: one folder (`--out`, default `demo-out/`) with summary.json, transcript.md and
timeline.png, every path checked before the run starts; and the summary printed at the end."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from npc_runtime.demo.transcript import Recorder, transcript_markdown
from npc_runtime.errors import InvalidArgument

DEFAULT_OUT = Path("demo-out")
SUMMARY_NAME, TRANSCRIPT_NAME, TIMELINE_NAME = "summary.json", "transcript.md", "timeline.png"


@dataclass(frozen=True)
class Outputs:
    folder: Path
    summary: Path
    transcript: Path
    timeline: Path


def prepare_outputs(*, out: Path | None = None, summary: Path | None = None, plot: Path | None = None) -> Outputs:
    """Create the output folder and prove every output file can be written, before a run that may take
    minutes (export + village) ends in a write error. `summary`/`plot` override single files' places."""
    folder = Path(out) if out is not None else DEFAULT_OUT
    _make_dir(folder, "--out")
    outputs = Outputs(folder=folder, summary=Path(summary) if summary else folder / SUMMARY_NAME,
                      transcript=folder / TRANSCRIPT_NAME, timeline=Path(plot) if plot else folder / TIMELINE_NAME)
    for flag, path in (("--summary-json" if summary else "--out", outputs.summary), ("--out", outputs.transcript),
                       ("--plot" if plot else "--out", outputs.timeline)):
        _check_writable(path, flag)
    return outputs


def _make_dir(folder: Path, flag: str) -> None:
    if folder.exists() and not folder.is_dir():
        hint = "; give a folder for the demo's outputs" if flag == "--out" else ""
        raise InvalidArgument(f"{flag} {folder}: exists and is not a directory{hint}")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidArgument(f"{flag} {folder}: cannot create the folder ({exc.strerror or exc})") from exc


def _check_writable(path: Path, flag: str) -> None:
    if path.is_dir():
        raise InvalidArgument(f"{flag} {path}: is a directory; give a file path")
    _make_dir(path.parent, flag)
    existed = path.exists()
    try:
        # opening for append writes nothing to an existing file; a file made only to probe is removed
        with open(path, "ab"):
            pass
    except OSError as exc:
        raise InvalidArgument(f"{flag} {path}: cannot write there ({exc.strerror or exc})") from exc
    if not existed:
        os.unlink(path)


def write_outputs(outputs: Outputs, summary: dict, recorder: Recorder, village, *, notes: list[str]) -> None:
    """summary.json and transcript.md always; the timeline PNG too, or `plot_error` in the summary when it
    cannot be drawn (a failed plot must not lose the transcript)."""
    try:
        plot_timeline(recorder, village, outputs.timeline)
        summary["plot"] = str(outputs.timeline)
    except Exception as exc:  # noqa: BLE001 - matplotlib's own errors; the text outputs matter more
        summary["plot_error"] = f"{type(exc).__name__}: {exc}"
    summary["transcript_md"], summary["summary_json"] = str(outputs.transcript), str(outputs.summary)
    title = "npcrt demo transcript" + (" (interrupted)" if summary.get("interrupted") else "")
    outputs.transcript.write_text(transcript_markdown(recorder.transcript, title=title, notes=notes), encoding="utf-8")
    outputs.summary.write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def plot_timeline(recorder: Recorder, village, path: Path) -> None:
    """NPC states as coloured bars over game time; scripted player actions as labelled lines; escalations,
    rejections, spoken lines and FSM reflexes as markers on the NPC's row."""
    logging.getLogger("matplotlib").setLevel(logging.WARNING)   # "generated new fontManager" is not news
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    timeline = recorder.timeline
    states = sorted({s.state for rows in timeline.values() for s in rows})
    cmap = plt.get_cmap("tab10")
    color = {s: cmap(i % 10) for i, s in enumerate(states)}
    npcs = [n.npc_id for n in village.npcs][:60]
    row = {npc_id: y for y, npc_id in enumerate(npcs)}
    fig, ax = plt.subplots(figsize=(13, 2.2 + 0.45 * len(npcs)))
    end = max((rows[-1].game_time_s for rows in timeline.values() if rows), default=1.0)
    for npc_id in npcs:
        y, rows = row[npc_id], timeline.get(npc_id, [])
        for i, s in enumerate(rows):
            t_next = rows[i + 1].game_time_s if i + 1 < len(rows) else end
            ax.barh(y, max(1e-3, t_next - s.game_time_s), left=s.game_time_s, color=color[s.state], height=0.6,
                    linewidth=0)
        for s in rows:
            if s.rejected:
                ax.plot(s.game_time_s, y, marker="X", color="red", markersize=10, markeredgecolor="black")
            elif s.escalated:
                ax.plot(s.game_time_s, y, marker="*", color="gold", markersize=13, markeredgecolor="black")
            elif s.said:
                ax.plot(s.game_time_s, y, marker="o", color="white", markersize=6, markeredgecolor="black")
            elif s.source == "fsm":
                ax.plot(s.game_time_s, y, marker="|", color="black", markersize=10)
    for k, e in enumerate(village.log):
        if e.t > end + 0.5:
            break
        ax.axvline(e.t, color="dimgrey", alpha=0.5, linewidth=0.8, linestyle="--")
        if e.target in row:   # just above the bar, so the NPC's answer (on the bar) stays visible
            ax.plot(e.t, row[e.target] - 0.42, marker="v", color="black", markersize=7)
        # labels alternate between two heights so neighbours do not overlap
        ax.annotate(e.act, xy=(e.t, -0.6 - 0.55 * (k % 2)), ha="center", va="bottom", fontsize=8,
                    bbox={"boxstyle": "round,pad=0.2", "fc": "lightyellow", "ec": "grey", "lw": 0.5})
    ax.set_ylim(len(npcs) - 0.4, -1.9)
    ax.set_yticks(range(len(npcs)))
    ax.set_yticklabels(npcs)
    ax.set_xlim(0, max(end, 0.1) + 0.3)   # room for a beat label at the very end
    ax.set_xlabel("game time (s)")
    ax.set_title("NPC states over time; scripted player actions (labels, ▼ on the NPC addressed)")
    handles = [plt.Rectangle((0, 0), 1, 1, color=color[s]) for s in states]
    labels = list(states)
    for marker, colour, size, label in (("v", "black", 8, "player acts on this NPC"), ("o", "white", 6, "NPC speaks"),
                                        ("*", "gold", 13, "escalated"), ("X", "red", 10, "action rejected"),
                                        ("|", "black", 10, "FSM reflex")):
        handles.append(Line2D([], [], marker=marker, color=colour, markeredgecolor="black", markersize=size,
                              linestyle="none"))
        labels.append(label)
    ax.legend(handles, labels, title="state / marker", loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def print_summary(summary: dict, *, file=None) -> None:
    from rich.console import Console
    from rich.table import Table

    title = "npcrt demo summary" + (" (interrupted)" if summary.get("interrupted") else "")
    table = Table(title=title, show_header=False)
    for key in ("seconds", "npcs", "decisions", "interactions", "utterances", "escalations", "escalation_failures",
                "escalations_denied", "fallbacks", "rejected_actions", "tick_p50_ms", "tick_p99_ms", "talk_p50_ms",
                "talk_p99_ms", "step_p99_ms", "tokens_per_s", "memories_written", "reflections",
                "escalation_cost_usd", "late_frames", "error_count"):
        table.add_row(key, str(summary.get(key)))
    for key in ("actions_by_name", "utterances_by_source", "decisions_by_source", "models"):
        table.add_row(key, ", ".join(f"{k}={v}" for k, v in summary.get(key, {}).items()))
    for key, label in (("transcript_md", "transcript"), ("plot", "timeline"), ("plot_error", "timeline error"),
                       ("summary_json", "summary")):
        if key in summary:
            table.add_row(label, str(summary[key]))
    Console(file=file).print(table)
