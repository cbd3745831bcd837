"""`npcrt distill`: a new policy version from recorded escalations (see npc_runtime.agent.distill).

    npcrt distill --records npcrt-data/escalations --base builtin:npc-policy --out packages/npc-policy-d1

Exit 0: written (the held-out report is printed); 2: bad input, no usable record, or the gate refused the
student (nothing written); 130: interrupted.
"""

from __future__ import annotations

import argparse
import json
import sys

from npc_runtime.agent.distill.train import DistillConfig

_D = DistillConfig()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--records", required=True, metavar="DIR_OR_URL",
                        help="escalation records: a directory of *.jsonl (the server's DATA_DIR/escalations), "
                             "one .jsonl file, a file:// or http(s):// URL")
    parser.add_argument("--base", default="builtin:npc-policy",
                        help="the policy package to start from (builtin:npc-policy or a package directory)")
    parser.add_argument("--out", required=True, help="the new policy package directory")
    parser.add_argument("--version", default=None, help="version name (default: ROOT-d<generation>)")
    parser.add_argument("--steps", type=int, default=_D.steps, help=f"training steps (default {_D.steps})")
    parser.add_argument("--seed", type=int, default=_D.seed, help=f"seed (default {_D.seed})")
    parser.add_argument("--escalation-share", type=float, default=_D.escalation_share,
                        help=f"share of each batch drawn from the escalations (default {_D.escalation_share})")
    parser.add_argument("--heldout-fraction", type=float, default=_D.heldout_fraction,
                        help=f"share of the records held out for the report (default {_D.heldout_fraction})")
    parser.add_argument("--gate-margin", type=float, default=_D.gate_margin,
                        help="largest loss of base held-out accuracy allowed, as a fraction "
                             f"(default {_D.gate_margin} = {_D.gate_margin * 100:g} point)")
    parser.add_argument("--force", action="store_true", help="replace --out if it exists")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def _config(args: argparse.Namespace) -> DistillConfig | str:
    checks = (("--steps", args.steps, 1, 1_000_000), ("--escalation-share", args.escalation_share, 0.01, 0.99),
              ("--heldout-fraction", args.heldout_fraction, 0.0, 0.9), ("--gate-margin", args.gate_margin, 0.0, 1.0))
    for name, value, lo, hi in checks:
        if not lo <= value <= hi:
            return f"{name} must be within {lo}-{hi}, got {value}"
    return DistillConfig(seed=args.seed, steps=args.steps, escalation_share=args.escalation_share,
                         heldout_fraction=args.heldout_fraction, gate_margin=args.gate_margin)


def run(args: argparse.Namespace) -> int:
    from npc_runtime.agent.distill import distill
    from npc_runtime.errors import NpcRuntimeError

    config = _config(args)
    if isinstance(config, str):
        print(f"npcrt distill: {config}", file=sys.stderr)
        return 2
    try:
        result = distill(args.records, args.base, args.out, version=args.version, config=config, force=args.force,
                         progress=not args.quiet)
    except NpcRuntimeError as exc:
        print(f"npcrt distill: {exc}", file=sys.stderr)
        return 2
    for problem in result.problems[:10]:
        print(f"npcrt distill: warning: {problem}", file=sys.stderr)
    r = result.report
    if args.json:
        print(json.dumps({"out": str(result.out_dir), "version": result.version, "seconds": result.seconds, **r},
                         indent=2))
        return 0
    b, s = r["base"], r["student"]
    agree = lambda v: "n/a" if v is None else f"{v * 100:.1f} %"   # noqa: E731
    print(f"wrote {result.out_dir} (version {result.version}) in {result.seconds:.1f} s")
    print(f"  records: {r['records']} read, {r['accepted']} accepted ({r['train_escalations']} train, "
          f"{r['heldout_escalations']} held out); left out: {r['left_out'] or 'none'}")
    print(f"  base held-out accuracy (clean rule): {b['base_heldout_accuracy_clean_rule'] * 100:.2f} % -> "
          f"{s['base_heldout_accuracy_clean_rule'] * 100:.2f} % (gate: loss <= {r['gate']['margin'] * 100:g} point)")
    print(f"  agreement with the teacher on held-out escalations: {agree(b['agreement_with_teacher'])} -> "
          f"{agree(s['agreement_with_teacher'])}")
    print(f"  calibration (ECE): base held-out {b['base_heldout_ece']:.3f} -> {s['base_heldout_ece']:.3f}; "
          f"escalations {b['escalation_ece']} -> {s['escalation_ece']}")
    return 0
