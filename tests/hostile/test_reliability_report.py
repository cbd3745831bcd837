"""docs/reliability.md's tables are the ones bench/reliability_report.py makes from the committed
bench/results/hostile.json (regenerate with `python -m bench.reliability_report` after a bench run)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import reliability_report

ROOT = Path(__file__).resolve().parents[2]


def test_reliability_doc_is_generated_from_the_committed_results():
    results = ROOT / "bench" / "results" / "hostile.json"
    if not results.exists():
        pytest.skip("no bench/results/hostile.json in this checkout")
    assert reliability_report.main(["--check"]) == 0, "run: python -m bench.reliability_report"


def test_report_states_lost_data_and_rows_not_yet_right():
    row = {"case": "x", "finding": 1, "sent": "s", "limit": "l", "status": "HTTP 500", "expected": "HTTP 400",
           "ok": False, "time_s": 0.5, "detail": "", "rss_before_mib": 1.0, "rss_after_mib": 2.0,
           "health_p50_ms": 1.0, "health_p99_ms": 2.0, "health_max_ms": 3.0, "health_failures": 1}
    rows = [dict(row, kind="request"),
            dict(row, case="sigkill_during_writes", kind="fault", finding="fault", ok=False,
                 status="10 memories acknowledged, 2 lost", lost=2),
            dict(row, case="sigterm_under_load", kind="fault", finding="fault", ok=True, lost=0,
                 status="20 memories acknowledged, 0 lost")]
    text = reliability_report.render({"rows": rows})
    assert "**Data lost: sigkill_during_writes.**" in text
    assert "not yet: x, sigkill_during_writes" in text and "| **no** |" in text and "(1 failed)" in text
    with pytest.raises(SystemExit):
        reliability_report.splice("no markers here", text)
