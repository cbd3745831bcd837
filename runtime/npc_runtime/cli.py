"""`npcrt`: one command line for the whole project.

Each subcommand lives in its own module that exposes `add_arguments(parser)` and `run(args) -> int`.
Modules are imported only when their subcommand runs, so `npcrt serve` works without torch
(the exporter's commands need the `export` extra).
"""

from __future__ import annotations

import argparse
import importlib
import sys

# subcommand -> (module path, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "export": ("npc_export.cli_export", "export a built-in or Hugging Face model to an ONNX model package"),
    "validate": ("npc_export.cli_validate", "check a model package against its profile and manifest"),
    "serve": ("npc_runtime.serving.cli_serve", "run the gRPC (+ OpenAI-compatible HTTP) server"),
    "demo": ("npc_runtime.demo.cli_demo", "run the offline demo on the built-in models"),
    "distill": ("npc_runtime.agent.distill.cli_distill", "train a new policy version from recorded escalations"),
}


def _requested(argv: list[str]) -> set[str]:
    return {a for a in argv if a in SUBCOMMANDS}


def _load(module_path: str):
    try:
        return importlib.import_module(module_path)
    except ImportError as exc:
        hint = " (install the exporter extra: pip install 'npc-runtime[export]')" if "npc_export" in module_path else ""
        raise SystemExit(f"npcrt: cannot load {module_path}: {exc}{hint}") from exc


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="npcrt", description="npc-runtime: small language models for game NPCs")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    requested = _requested(argv[:1])
    for name, (module_path, help_text) in SUBCOMMANDS.items():
        sp = sub.add_parser(name, help=help_text, description=help_text)
        sp.set_defaults(_module=module_path)
        if name in requested:
            _load(module_path).add_arguments(sp)
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    try:
        return int(_load(args._module).run(args) or 0)
    except KeyboardInterrupt:
        print("npcrt: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
