"""(Re)write the shipped built-in packages (runtime/npc_runtime/builtin_packages/NAME) from the committed
weights, with the options in `npc_runtime.builtin_packages.SHIPPED`. Needs the `export` extra.

    python tests/install/ship_builtins.py [--out DIR]     # default: the shipped folder itself

test_shipped_packages.py calls `export_builtins` into a temp folder and compares.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from npc_runtime.builtin_packages import HERE, SHIPPED


def export_builtins(out: Path, *, progress: bool = False) -> dict[str, Path]:
    from npc_export.api import export_model

    written = {}
    for name, options in SHIPPED.items():
        result = export_model(f"builtin:{name}", out / name, force=True, progress=progress, **options)
        written[name] = result.out_dir
    return written


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=HERE)
    args = ap.parse_args(argv)
    for name, path in export_builtins(args.out, progress=True).items():
        size = sum(f.stat().st_size for f in path.iterdir())
        print(f"{name}: {path} ({size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
