"""`npcrt demo` end to end (short run, stand-in models): real gRPC server, Play stream, summary and plot."""

from __future__ import annotations

import json

from npc_runtime.cli import main

REQUIRED = ("decisions", "escalations", "escalation_failures", "fallbacks", "rejected_actions", "actions_by_name",
            "tick_p99_ms", "tokens_per_s", "memories_written")


def test_demo_writes_summary_and_plot(tmp_path, capsys):
    summary_path, plot = tmp_path / "summary.json", tmp_path / "timeline.png"
    code = main(["demo", "--seconds", "3", "--npcs", "6", "--fps", "30", "--no-live", "--no-export",
                 "--cache-dir", str(tmp_path / "cache"), "--summary-json", str(summary_path), "--plot", str(plot)])
    assert code == 0
    summary = json.loads(summary_path.read_text())
    for key in REQUIRED:
        assert key in summary, key
    assert summary["decisions"] > 50 and summary["error_count"] == 0
    assert summary["memories_written"] > 0 and summary["escalations"] >= 1
    assert sum(summary["actions_by_name"].values()) == summary["decisions"]
    assert plot.stat().st_size > 1000
    assert "npcrt demo summary" in capsys.readouterr().out


def test_demo_bad_arguments(capsys):
    assert main(["demo", "--npcs", "0", "--no-export"]) == 2
    assert "--npcs must be" in capsys.readouterr().err
