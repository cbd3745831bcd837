"""The built-in model packages, shipped ready to serve (no torch, no export step on a user's machine).

Each sub-folder is a model package (docs/model-package.md) written by `npc_export.api.export_model` from the
committed weights in export/npc_export/builtin/weights, with the options in `SHIPPED`.
tests/install/test_shipped_packages.py re-exports them and checks they match; to regenerate after the
weights or the exporter change:

    python tests/install/ship_builtins.py        # needs the `export` extra

npc-dialogue ships as int8: on 300 held-out chats its greedy replies agree with fp32's on 99.9 % of the
reply tokens (teacher-forced), 97 % of the replies are identical, and the action accuracy is the same
(96 %), at 5.4 MB instead of 19 MB (tests/install/precision_agreement.py, docs/install.md).
"""

from __future__ import annotations

import os
from pathlib import Path

HERE = Path(__file__).resolve().parent

# name -> export_model keyword options (target "ort": the server's profile)
SHIPPED: dict[str, dict] = {
    "npc-dialogue": {"precision": "int8", "target": "ort"},
    "npc-policy": {"precision": "fp32", "target": "ort"},
}


def default_cache_dir() -> Path:
    """Where built-ins missing from the installation are exported once (NPCRT_CACHE_DIR or ~/.cache/npcrt)."""
    base = os.environ.get("NPCRT_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "npcrt")
    return Path(base) / "models"


def locate(name: str, cache_dir: Path | None = None) -> Path | None:
    """The package `name`: shipped with this installation, else exported earlier into `cache_dir`
    (default `default_cache_dir()`), else None. Never exports or downloads anything."""
    shipped = package_dir(name)
    if shipped is not None:
        return shipped
    cached = (cache_dir or default_cache_dir()) / name
    return cached if (cached / "manifest.json").is_file() else None


def package_dir(name: str) -> Path | None:
    """The shipped package `name` (a key of SHIPPED), or None when this installation lacks it."""
    if name not in SHIPPED:
        return None
    path = HERE / name
    return path if (path / "manifest.json").is_file() else None
