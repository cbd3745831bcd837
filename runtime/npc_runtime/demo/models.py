"""The demo's models: the built-in packages shipped with npc-runtime (npc_runtime.builtin_packages), so neither
torch nor an export step is needed; a package missing from the installation is exported once into a cache
directory (needs the `export` extra)."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from npc_runtime import builtin_packages
from npc_runtime.builtin_packages import default_cache_dir

__all__ = ["BUILTINS", "Packages", "default_cache_dir", "ensure_packages"]

BUILTINS = ("npc-dialogue", "npc-policy")


@dataclass
class Packages:
    dialogue: Path | None
    policy: Path | None
    notes: list[str]


def ensure_packages(cache_dir: Path, *, progress: bool = True, export: bool = True) -> Packages:
    """The shipped packages first; then packages cached in `cache_dir`; export the rest from `builtin:NAME`
    (needs the exporter extra, once)."""
    found: dict[str, Path | None] = {}
    notes: list[str] = []
    for name in BUILTINS:
        found[name] = builtin_packages.locate(name, cache_dir)
        if found[name] is not None:
            continue
        out = cache_dir / name
        if not export:
            notes.append(f"{name}: not in {cache_dir} and --no-export given")
            continue
        try:
            from npc_export.api import export_model
        except ImportError as exc:
            notes.append(f"{name}: not cached and the exporter is not installed ({exc}); "
                         "pip install 'npc-runtime[export]' or run `npcrt export` once")
            continue
        print(f"npcrt demo: exporting builtin:{name} to {out} (first run only)...", file=sys.stderr, flush=True)
        try:
            cache_dir.mkdir(parents=True, exist_ok=True)
            # the shipped options, so a cached export is what a full installation would have shipped
            export_model(f"builtin:{name}", out, progress=progress, **builtin_packages.SHIPPED[name])
            found[name] = out
        except Exception as exc:  # noqa: BLE001 - the exporter's own errors; the demo goes on without the model
            notes.append(f"{name}: export failed ({type(exc).__name__}: {exc})")
            found[name] = None
    return Packages(dialogue=found["npc-dialogue"], policy=found["npc-policy"], notes=notes)
