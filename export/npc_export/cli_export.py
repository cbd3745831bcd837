"""`npcrt export --model SRC --out DIR [--precision ...] [--target ...] [--context N] [--json] [--force]
[--allow-validation-failure] [--threads N] [--file-mode MODE]`: one-line errors, non-zero exit, never a
traceback; progress on stderr (a live line in a terminal, one line per stage otherwise; none with --json);
SIGTERM / SIGHUP / SIGINT remove the partial package and exit 128 + the signal number."""

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
    parser.add_argument("--int8-kernel", default="matmulnbits", choices=("matmulnbits", "matmulinteger"),
                        help="int8 on ort: matmulnbits (default; greedy output identical batched or alone) or "
                             "matmulinteger (dynamic activation quantization: faster at large batches, but a "
                             "row's output depends on the rest of its batch)")
    parser.add_argument("--target", default="ort", choices=TARGETS,
                        help="ort: server graph with fused ops; portable: plain ai.onnx opset 15 for Sentis / NNE")
    parser.add_argument("--context", type=int, default=None, metavar="N",
                        help="context length (KV capacity) in positions; default: the model's maximum")
    parser.add_argument("--json", action="store_true", help="print a machine-readable summary on stdout")
    parser.add_argument("--force", action="store_true", help="replace DIR if it is a model package (a folder of other files is never replaced)")
    parser.add_argument("--allow-validation-failure", action="store_true",
                        help="write the package even when the self-check is past its thresholds")
    parser.add_argument("--no-validate", action="store_true", help="skip the self-check (not recommended)")
    parser.add_argument("--threads", type=_positive_int, default=None, metavar="N",
                        help="PyTorch / ONNX Runtime threads while exporting (default: half the cores, at most "
                             "4; idle threads sleep, so a busy machine does not stall the export)")
    parser.add_argument("--file-mode", type=_octal_mode, default=None, metavar="MODE",
                        help="octal mode of the package files, e.g. 640 (default 644; directories get the "
                             "matching search bits; the umask applies as to any new file)")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return value


def _octal_mode(text: str) -> int:
    try:
        value = int(text.removeprefix("0o"), 8)
    except ValueError:
        value = -1
    if not 0 <= value <= 0o777 or not value & 0o400:
        raise argparse.ArgumentTypeError(f"expected an octal mode the owner can read, like 644 or 640, got {text!r}")
    return value


def human_size(num_bytes: float) -> str:
    """1234 -> '1.2 kB', 32768 -> '32.8 kB', 18_700_000 -> '18.7 MB' (decimal units, as the docs use)."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if num_bytes >= scale:
            return f"{num_bytes / scale:.1f} {unit}"
    return f"{int(num_bytes)} B"


def self_check_figure(validation: dict | None) -> str:
    """What the self-check measured, in a few words (decoders: parity or agreement; policies: parity)."""
    v = validation or {}
    if not v:
        return "not run (--no-validate)"
    if "fp32_max_abs_diff" in v:
        figure = f"max |diff| vs PyTorch {v['fp32_max_abs_diff']:.2e}"
    elif "greedy_agreement" in v:
        figure = (f"greedy agreement {v['greedy_agreement']:.3f}, perplexity {v['perplexity_fp32']:.4g} -> "
                  f"{v['perplexity']:.4g}")
    elif "max_abs_diff" in v:
        figure = f"max |diff| vs PyTorch {v['max_abs_diff']:.2e}"
        if "action_agreement" in v:
            figure += f", action agreement {v['action_agreement']:.3f}"
    else:
        figure = "ran"
    if v.get("overridden"):
        return figure + " (FAILED, overridden)"
    return figure + (", passed" if v.get("passed") else "")


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
        "notes": list(getattr(result, "notes", [])),
    }


def run(args: argparse.Namespace) -> int:
    from .errors import ExportError, ExportInterrupted

    try:
        from .api import export_model

        options = {}
        if args.threads is not None:
            options["threads"] = args.threads
        if args.file_mode is not None:
            options["file_mode"] = args.file_mode
        if args.int8_kernel != "matmulnbits":
            options["int8_kernel"] = args.int8_kernel
        result = export_model(
            args.model, args.out, precision=args.precision, target=args.target, context_length=args.context,
            validate=not args.no_validate, force=args.force, progress=not args.json,
            allow_validation_failure=args.allow_validation_failure, **options,
        )
    except ExportError as exc:
        _fail(args, str(exc))
        return 1
    except ExportInterrupted as exc:
        _fail(args, f"{exc}; nothing was written to {args.out}")
        return exc.exit_code
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
        manifest_file = result.out_dir / "manifest.json"
        size = human_size(sum(summary["files"].values()) + (manifest_file.stat().st_size if manifest_file.is_file() else 0))
        print(f"wrote {result.out_dir} ({summary['target']}/{summary['precision']}, {size}); "
              f"self-check: {self_check_figure(summary['validation'])}")
    return 0


def _fail(args, message: str) -> None:
    if getattr(args, "json", False):
        print(json.dumps({"ok": False, "error": message}))
    print(f"npcrt export: error: {message}", file=sys.stderr)
