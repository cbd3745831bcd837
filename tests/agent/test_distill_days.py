"""`npcrt demo --days N` end to end (the real server, the `rules` teacher): per-day rows with the escalation
rate per trigger class, the policy-driven rate, a distilled version swapped in each day, days.png; and
docs/agent.md's distillation figures generated from the committed bench/results/distill.json."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench import distill_report
from npc_runtime.demo.models import ensure_packages

ROOT = Path(__file__).resolve().parents[2]
POLICY_TRIGGERS = ("low_confidence", "low_margin")


def test_days_distill_and_swap_with_rates_per_trigger(tmp_path):
    cache = tmp_path / "cache"
    packages = ensure_packages(cache, progress=False)
    assert packages.dialogue and packages.policy, packages.notes
    out = tmp_path / "out"
    env = {**os.environ, "MPLCONFIGDIR": str(tmp_path / "mpl")}
    # 2 days of 40 game seconds at 10x: a few dozen interactions a day, quick
    proc = subprocess.run([sys.executable, "-m", "npc_runtime.cli", "demo", "--days", "2", "--seconds", "40",
                           "--speed", "10", "--fps", "15", "--no-live", "--cache-dir", str(cache), "--out", str(out)],
                          capture_output=True, text=True, timeout=420, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    days = summary["days"]
    assert [d["day"] for d in days] == [1, 2]
    assert days[0]["policy_version"] == "base"
    for d in days:
        by = d["by_trigger"]
        assert sum(by.values()) == d["escalations"] and d["interactions"] > 0
        assert d["policy_escalations"] == sum(by.get(t, 0) for t in POLICY_TRIGGERS)
        assert d["policy_escalation_rate"] == pytest.approx(d["policy_escalations"] / d["interactions"], abs=1e-4)
        assert d["escalation_rate_by_trigger"] == {t: pytest.approx(n / d["interactions"], abs=1e-4)
                                                   for t, n in by.items()}
        assert d["forbidden_actions"] == 0
    first = days[0]["distilled"]
    if first.get("version"):     # day 1 distilled and swapped in: day 2 played with it
        assert days[1]["policy_version"] == "day-1"
        assert first["base_heldout_accuracy"] >= first["gate"]["reference_accuracy_clean_rule"] - 0.01
        manifest = json.loads((out / "policies" / "day-1" / "manifest.json").read_text())
        assert manifest["lineage"]["records"] == first["records"]
    assert (out / "days.png").stat().st_size > 0
    assert "policy-driven" in proc.stderr


def test_agent_doc_figures_are_generated_from_the_committed_results():
    if not (ROOT / "bench" / "results" / "distill.json").exists():
        pytest.skip("no bench/results/distill.json in this checkout")
    assert distill_report.main(["--check"]) == 0, "run: python -m bench.distill_report"


def test_report_marks_missed_targets_and_needs_its_markers():
    day = {"day": 1, "policy_version": "base", "interactions": 10, "escalations": 4, "escalation_rate": 0.4,
           "policy_escalation_rate": 0.2, "escalation_rate_by_trigger": {"low_confidence": 0.2, "story_critical": 0.2},
           "agreement_with_teacher": 0.5, "forbidden_actions": 0, "cost_usd": 0.001,
           "distilled": {"agreement_with_teacher": 0.8, "heldout_escalations": 3, "base_heldout_accuracy": 0.95,
                         "seconds": 1.0}}
    result = {"summary": {"settings": {"days": 1, "day_seconds": 10, "speed": 1, "fps": 15, "npcs": 8, "moments": 5},
                          "total_wall_seconds": 1.0, "base_model_heldout_accuracy": 0.95,
                          "targets": {"heldout_agreement_scenario": {"value": 0.8, "n": 3, "target": ">= 0.9",
                                                                     "met": False}}},
              "scenario": [day], "simulation": [],
              "safety": {"hostile_records": 2, "accepted": 0, "forbidden_executed": 0}}
    text = distill_report.render(result)
    assert "| 80.0 % (n=3) | **missed** |" in text and "**20.0 %**" in text
    with pytest.raises(SystemExit):
        distill_report.splice("no markers here", text)
