"""The performance figures in README.md and docs/performance.md come from committed result files.

Runs no benchmark: it reads bench/results/**/*.json and the documents (bench/report.py does the work).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from bench import report

METADATA_KEYS = ("machine", "versions", "git", "command", "timestamp")
MACHINE_KEYS = ("label", "cpu_model", "cores_logical", "cores_physical", "memory_bytes", "load_avg_before",
                "load_avg_after")


def test_generated_blocks_are_fresh():
    stale = report.stale_blocks()
    assert stale == [], f"re-run `make bench-report` and commit: {stale}"


def test_every_ratio_and_tokens_per_second_figure_has_a_result_file():
    unbacked = report.unbacked_figures()
    assert unbacked == [], f"figures with no bench/results/*.json behind them: {unbacked}"


def test_the_documents_hold_the_engine_blocks():
    readme = (report.ROOT / "README.md").read_text()
    docs = (report.ROOT / "docs" / "performance.md").read_text()
    assert "<!-- bench:engine -->" in readme
    for name in ("engine", "engine-detail", "where-we-lose", "runs"):
        assert f"<!-- bench:{name} -->" in docs


def test_engine_results_carry_their_machine_versions_and_command():
    runs = report.engine_runs(report.load_results())
    assert runs, "no engine result file committed under bench/results/"
    for run in runs:
        missing = [k for k in METADATA_KEYS if not run.data.get(k)]
        missing += [f"machine.{k}" for k in MACHINE_KEYS if run.data["machine"].get(k) is None]
        assert missing == [], f"{run.rel} lacks {missing}"
        assert run.data["versions"].get("onnxruntime") and run.data["versions"].get("onnxruntime-genai")
        assert run.data["threads"] >= 1, "both peers get an explicit thread count"


# -- the renderer and the checker on synthetic results (tmp files, no benchmark) ---------------------------------
def _comparison(case, sessions, precision, mode, engine, peer):
    cpu = {"wall_s": 1.0, "cpu_s": 2.0, "parallelism": 2.0, "busy_threads": 2}
    return {"case": case, "sessions": sessions, "precision": precision, "peer_mode": mode, "peer_label": mode,
            "engine_tok_s": engine, "peer_tok_s": peer, "ratio": engine / peer,
            "engine": {"cpu": cpu}, "peer": {"cpu": cpu}}


def _run(label: str, cores: int, comparisons: list[dict]) -> dict:
    return {"benchmark": "engine", "threads": cores, "quick": False, "timestamp": "2026-01-01T00:00:00+00:00",
            "machine": {"label": label, "cores_physical": cores, "cores_logical": cores, "memory_bytes": 2**34,
                        "load_avg_before": [0.1, 0, 0], "load_avg_after": [0.2, 0, 0]},
            "versions": {"onnxruntime": "1.32.0", "onnxruntime-genai": "0.18.0", "python": "3.12"},
            "git": {"commit": "0" * 40, "dirty": False}, "command": "python -m bench.bench_engine",
            "comparisons": comparisons}


@pytest.fixture
def two_machines(tmp_path: Path) -> list[report.Result]:
    small = _run("2-core", 2, [_comparison("single", 1, "int4", "batched", 700.0, 800.0),
                               _comparison("aggregate", 64, "int4", "batched", 2200.0, 1350.0),
                               _comparison("aggregate", 64, "fp32", "batched", 1900.0, 1400.0)])
    big = _run("16-core", 16, [_comparison("single", 1, "int4", "batched", 900.0, 1500.0),
                               _comparison("aggregate", 64, "int4", "batched", 6900.0, 5200.0)])
    quick_older = copy.deepcopy(big)
    quick_older.update(quick=True, timestamp="2027-01-01T00:00:00+00:00")
    quick_older["comparisons"][0]["engine_tok_s"] = 1.0
    results = []
    for name, data in (("engine.json", small), ("lead/engine-16core.json", big),
                       ("lead/engine-quick.json", quick_older)):
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data))
    results = report.load_results(tmp_path)
    assert len(results) == 3
    return results


def test_machines_are_columns_and_losses_are_marked(two_machines):
    block = report.block_engine(two_machines)
    header = block.splitlines()[0]
    assert header.index("2-core") < header.index("16-core")   # fewest cores first
    single = next(line for line in block.splitlines() if line.startswith("| 1 session, int4"))
    assert "**0.88× ▼**" in single and "**0.60× ▼**" in single   # 700/800 and 900/1500 (the full run wins)
    batched = next(line for line in block.splitlines() if "batched" in line and line.startswith("| 64 sessions"))
    # our best precision vs the peer's best precision: 2200 (int4) / 1400 (fp32)
    assert "1.57× (2,200 tok/s vs 1,400 tok/s, int4 vs fp32)" in batched
    losses = report.block_where_we_lose(two_machines)
    assert losses.count("▼") == 2 and "2-core: single" in losses and "16-core: single" in losses


def test_a_stale_block_and_an_unbacked_figure_are_found(two_machines, tmp_path: Path):
    doc = tmp_path / "performance.md"
    fresh = report.render("## Measured\n<!-- bench:engine -->\n<!-- /bench:engine -->\n", two_machines)
    doc.write_text(fresh + "the engine runs 2,200 tok/s (1.63 × genai); a made-up 9.99 × and 123 tok/s; "
                   "target ≥ 2.5 ×\n")
    assert report.stale_blocks([doc], two_machines) == []
    assert report.unbacked_figures([doc], two_machines) == ["performance.md: '9.99 ×'",
                                                             "performance.md: '123 tok/s'"]
    doc.write_text(fresh.replace("1.57×", "1.75×"))
    assert report.stale_blocks([doc], two_machines) == ["performance.md: bench:engine"]
