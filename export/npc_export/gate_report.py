"""Measure the self-check's figures for every precision and target of one model, to choose or check the
gate thresholds (`validation.Thresholds`) from data:

    python -m npc_export.gate_report                       # the built-in dialogue model
    python -m npc_export.gate_report --model ~/models/SmolLM2-135M --json out/gate.json

Each combination is exported into a temporary directory with `allow_validation_failure`, so the figures
are reported whether or not the current thresholds pass them; nothing is kept. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

COMBINATIONS = (("ort", "fp16"), ("ort", "int8"), ("ort", "int4"), ("portable", "fp16"))


def measure(model: str, combinations=COMBINATIONS, *, threads: int | None = None) -> list[dict]:
    from .api import export_model
    from .threads import DEFAULT_THREADS

    rows = []
    with tempfile.TemporaryDirectory(prefix="npc-gate-") as tmp:
        for target, precision in combinations:
            result = export_model(model, Path(tmp) / f"{target}-{precision}", precision=precision, target=target,
                                  progress=False, allow_validation_failure=True, threads=threads or DEFAULT_THREADS)
            v = result.manifest["validation"]
            rows.append({
                "target": target, "precision": precision,
                "greedy_agreement": v["greedy_agreement"], "greedy_tokens": v["greedy_tokens"],
                "perplexity_fp32": v["perplexity_fp32"], "perplexity": v["perplexity"],
                "perplexity_delta_ratio": v["perplexity_delta_ratio"],
                "max_abs_diff_vs_torch": v["max_abs_diff_vs_torch"],
                "thresholds": v["thresholds"], "passed": v["passed"],
            })
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| target | precision | greedy agreement | floor | perplexity fp32 → export | change | ceiling "
             "| max abs diff vs PyTorch | passes |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        t = r["thresholds"]
        lines.append(
            f"| {r['target']} | {r['precision']} | {r['greedy_agreement']:.3f} ({r['greedy_tokens']} tokens) "
            f"| {t['min_greedy_agreement']:g} | {r['perplexity_fp32']:.4f} → {r['perplexity']:.4f} "
            f"| {r['perplexity_delta_ratio']:.3%} | {t['max_perplexity_delta_ratio']:.1%} "
            f"| {r['max_abs_diff_vs_torch']:.3g} | {'yes' if r['passed'] else 'NO'} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m npc_export.gate_report", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="builtin:npc-dialogue", help="builtin:npc-dialogue or a local HF dir")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON here")
    parser.add_argument("--threads", type=int, default=None, help="threads while exporting (default: threads.py)")
    args = parser.parse_args(argv)
    from .errors import ExportError

    try:
        rows = measure(args.model, threads=args.threads)
    except ExportError as exc:
        print(f"gate_report: error: {exc}", file=sys.stderr)
        return 1
    print(table(rows))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"model": args.model, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
