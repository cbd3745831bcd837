"""Retrain the built-in models: `python -m npc_export.builtin.train [--only dialogue|policy] [--out DIR]
[--steps N] [--json]`. Without --out the committed weights under `builtin/weights/` are replaced."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


def _train_dialogue(out: Path, steps: int | None, threads: int, progress: bool) -> dict:
    from .train_dialogue import DialogueTrainConfig, train_dialogue

    cfg = DialogueTrainConfig(threads=threads)
    if steps is not None:
        cfg = replace(cfg, steps=steps, warmup_steps=min(cfg.warmup_steps, max(1, steps // 10)))
    return train_dialogue(out / "npc-dialogue", cfg, progress=progress)


def _train_policy(out: Path, steps: int | None, threads: int, progress: bool) -> dict:
    from .train_policy import PolicyTrainConfig, train_policy

    cfg = PolicyTrainConfig(threads=threads)
    if steps is not None:
        cfg = replace(cfg, steps=steps)
    return train_policy(out / "npc-policy", cfg, progress=progress)


TRAINERS = {"dialogue": _train_dialogue, "policy": _train_policy}


def _summary(report: dict) -> dict:
    return {k: v for k, v in report.items() if k not in ("samples", "examples")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m npc_export.builtin.train", description=__doc__)
    parser.add_argument("--only", choices=sorted(TRAINERS), help="train just one of the two models")
    parser.add_argument("--out", type=Path, default=WEIGHTS_DIR,
                        help="parent directory of npc-dialogue/ and npc-policy/ (default: the committed weights)")
    parser.add_argument("--steps", type=int, help="optimizer steps (default: each model's own)")
    parser.add_argument("--threads", type=int, default=2,
                        help="torch CPU threads (default 2: the reference 2-core machine)")
    parser.add_argument("--json", action="store_true", help="print a JSON summary of the reports")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    args = parser.parse_args(argv)
    if args.steps is not None and args.steps < 1:
        parser.error("--steps must be at least 1")
    if args.threads < 1:
        parser.error("--threads must be at least 1")
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"error: cannot create output directory {args.out}: {exc}", file=sys.stderr)
        return 2
    names = [args.only] if args.only else list(TRAINERS)
    reports = {}
    for name in names:
        reports[name] = _summary(TRAINERS[name](args.out, args.steps, args.threads, not args.no_progress))
    if args.json:
        print(json.dumps(reports, indent=2))
    else:
        for name, report in reports.items():
            keys = [k for k in ("parameters", "steps", "train_seconds", "heldout_loss", "heldout_perplexity",
                                "heldout_action_accuracy", "heldout_accuracy") if k in report]
            print(f"{name}: " + ", ".join(f"{k}={report[k]}" for k in keys))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
