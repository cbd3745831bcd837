"""Distillation: escalations the teacher (the cloud) decided become a new on-device policy version.

    from npc_runtime.agent.distill import distill
    result = distill("npcrt-data/escalations", "builtin:npc-policy", "packages/npc-policy-d1")

numpy + ONNX Runtime only (no torch), so it runs on the light runtime install: records.py (the escalation
records and which ones may teach), mlp.py (the policy network, trained in numpy), onnx_io.py (its ONNX
graph, written without the `onnx` package), train.py (data mix, held-out report, gate), package.py
(reading the base, writing the new package with its lineage). CLI: `npcrt distill` (cli_distill.py).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from npc_runtime.agent.distill.records import read_records
from npc_runtime.agent.distill.train import DistillConfig, GateRefused, base_data, distill_weights

__all__ = ["DistillConfig", "DistillResult", "GateRefused", "distill", "distill_records"]


@dataclass(frozen=True)
class DistillResult:
    out_dir: Path
    version: str
    manifest: dict
    report: dict
    problems: list[str]          # record lines that could not be read
    seconds: float


def distill(records: str, base: str, out: str | Path, *, version: str | None = None,
            config: DistillConfig = DistillConfig(), force: bool = False, progress: bool = True) -> DistillResult:
    """Read the records at `records` (dir, .jsonl, file:// or http(s):// URL) and distill (see distill_records)."""
    rows, problems = read_records(records)
    return distill_records(rows, base, out, version=version, config=config, force=force, progress=progress,
                           problems=problems)


def distill_records(rows: list[dict], base: str, out: str | Path, *, version: str | None = None,
                    config: DistillConfig = DistillConfig(), force: bool = False, progress: bool = True,
                    problems: list[str] | None = None) -> DistillResult:
    """Train a student from the `base` package on `rows`, gate it, write it to `out` as version `version`
    (default: the base name + "-d<generation>"). Raises GateRefused / FailedPrecondition / InvalidArgument."""
    from npc_runtime.agent.distill.package import load_base, write_package

    started = time.perf_counter()
    basepkg = load_base(base)
    features = [f["name"] if isinstance(f, dict) else str(f) for f in basepkg.spec["features"]]
    actions = list(basepkg.spec["actions"])
    root = basepkg.lineage.get("root_heldout_accuracy_clean_rule")

    def report_progress(step: int, steps: int, loss: float) -> None:
        if progress:
            print(f"npcrt distill: step {step}/{steps}  loss {loss:.3f}  {time.perf_counter() - started:.1f} s",
                  file=sys.stderr, flush=True)

    if progress:
        print(f"npcrt distill: {len(rows)} record(s); base {basepkg.name} ({basepkg.directory})", file=sys.stderr,
              flush=True)
    outcome = distill_weights(rows, basepkg.weights, features=features, actions=actions, root_accuracy=root,
                              config=config, progress=report_progress)
    name = version or f"{basepkg.lineage.get('root_version', basepkg.name)}-d{int(basepkg.lineage.get('generation', 0)) + 1}"
    probes = np.concatenate([base_data().x_held[:256], np.random.default_rng(0).uniform(-5, 50, (64, len(features)))])
    manifest = write_package(Path(out), outcome.weights, basepkg, outcome.report, version=name, probes=probes,
                             force=force)
    return DistillResult(out_dir=Path(out), version=name, manifest=manifest, report=outcome.report,
                         problems=list(problems or []), seconds=round(time.perf_counter() - started, 2))
