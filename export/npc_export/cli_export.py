"""`npcrt export --model SRC --out DIR [--precision ...] [--target ...] [--context N] [--json] [--force]
[--allow-validation-failure]`: one-line errors, non-zero exit, never a traceback."""

from __future__ import annotations

import argparse
import json
import sys

PRECISIONS = ("fp32", "fp16", "int8", "int4")
TARGETS = ("ort", "portable")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, metavar="SRC",
                        help="builtin:npc-dialogue, builtin:npc-policy or a local Hugging Face model directory")
    parser.add_argument("--out", required=True, metavar="DIR", help="package directory to write")
    parser.add_argument("--precision", default="fp32", choices=PRECISIONS, help="weight precision (default fp32)")
    parser.add_argument("--target", default="ort", choices=TARGETS,
                        help="ort: server graph with fused ops; portable: plain ai.onnx opset 15 for Sentis / NNE")
    parser.add_argument("--context", type=int, default=None, metavar="N",
                        help="context length (KV capacity) in positions; default: the model's maximum")
    parser.add_argument("--json", action="store_true", help="print a machine-readable summary on stdout")
    parser.add_argument("--force", action="store_true", help="replace DIR if it exists")
    parser.add_argument("--allow-validation-failure", action="store_true",
                        help="write the package even when the self-check is past its thresholds")
    parser.add_argument("--no-validate", action="store_true", help="skip the self-check (not recommended)")


def _summary(result) -> dict:
    m = result.manifest
    return {
        "ok": True,
        "out_dir": str(result.out_dir),
        "name": m.get("name"),
        "kind": m.get("kind"),
        "target": m.get("target"),
        "precision": m.get("precision"),
        "quantization": m.get("quantization"),
        "kv_cache": m.get("kv_cache"),
        "files": {name: (result.out_dir / name).stat().st_size for name in m.get("files", {})},
        "validation": m.get("validation"),
        "timings_s": result.timings,
    }


def run(args: argparse.Namespace) -> int:
    from .errors import ExportError

    try:
        from .api import export_model

        result = export_model(
            args.model, args.out, precision=args.precision, target=args.target, context_length=args.context,
            validate=not args.no_validate, force=args.force, progress=not args.json and sys.stderr.isatty(),
            allow_validation_failure=args.allow_validation_failure,
        )
    except ExportError as exc:
        _fail(args, str(exc))
        return 1
    except KeyboardInterrupt:
        _fail(args, "interrupted; nothing was written to " + str(args.out))
        return 130
    except OSError as exc:
        _fail(args, f"cannot export: {exc.strerror or exc} ({exc.filename or args.out})")
        return 1
    summary = _summary(result)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        size = sum(summary["files"].values()) / 1e6
        v = summary["validation"] or {}
        figure = (f"max |diff| vs PyTorch {v['fp32_max_abs_diff']:.2e}" if "fp32_max_abs_diff" in v else
                  f"greedy agreement {v['greedy_agreement']:.3f}, perplexity {v['perplexity_fp32']:.4g} -> "
                  f"{v['perplexity']:.4g}" if "greedy_agreement" in v else "not validated")
        print(f"wrote {result.out_dir} ({summary['target']}/{summary['precision']}, {size:.1f} MB); "
              f"self-check: {figure}{' (FAILED, overridden)' if v.get('overridden') else ''}")
    return 0


def _fail(args, message: str) -> None:
    if getattr(args, "json", False):
        print(json.dumps({"ok": False, "error": message}))
    print(f"npcrt export: error: {message}", file=sys.stderr)
