"""Real packages to break: copies of the shipped built-ins (a causal-lm with external data, a policy)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from npc_package import sha256_of
from npc_runtime.builtin_packages import HERE as BUILTINS


def rewrite(pkg: Path, edit) -> dict:
    """Apply `edit(manifest_dict)` to pkg/manifest.json (hashes left as they are unless edit changes them)."""
    manifest = json.loads((pkg / "manifest.json").read_text())
    edit(manifest)
    (pkg / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest


def rehash(pkg: Path, *names: str) -> None:
    def edit(m):
        for name in names:
            m["files"][name] = sha256_of(pkg / name)
    rewrite(pkg, edit)


@pytest.fixture
def dialogue(tmp_path) -> Path:
    dst = tmp_path / "pkgs" / "npc-dialogue"
    shutil.copytree(BUILTINS / "npc-dialogue", dst)
    return dst


@pytest.fixture
def policy(tmp_path) -> Path:
    dst = tmp_path / "pkgs" / "npc-policy"
    shutil.copytree(BUILTINS / "npc-policy", dst)
    return dst
