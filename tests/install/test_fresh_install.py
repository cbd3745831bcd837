"""A fresh venv with `pip install npc-runtime` (no extras) has no torch and runs the demo on the shipped models.

The project (pyproject.toml, README.md and the four source roots, as they are in this working tree) is
copied to a temp folder and installed from there, so the build neither sees nor writes the checkout.
Needs PyPI (or a pip cache / local index): this is what a new user's first install does.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import venv
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
PROJECT_FILES = ("pyproject.toml", "README.md")
SOURCE_ROOTS = ("proto", "package", "export", "runtime")
INSTALL_TIMEOUT_S = 900


def _copy_project(dest: Path) -> Path:
    dest.mkdir()
    for name in PROJECT_FILES:
        shutil.copy2(ROOT / name, dest / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "*.tmp-*")
    for name in SOURCE_ROOTS:
        shutil.copytree(ROOT / name, dest / name, ignore=ignore)
    return dest


def _clean_env(**extra: str) -> dict[str, str]:
    """This process's environment minus what would let the venv see the checkout or another interpreter."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.update(extra)
    return env


def _run(cmd: list, *, env: dict[str, str] | None = None, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=env or _clean_env(), **kwargs)


def test_fresh_install_without_extras_runs_the_demo(tmp_path):
    src = _copy_project(tmp_path / "src")
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True, system_site_packages=False).create(env_dir)
    python = env_dir / "bin" / "python"

    pip = _run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check", src], timeout=INSTALL_TIMEOUT_S)
    assert pip.returncode == 0, f"pip install failed:\n{pip.stdout[-2000:]}\n{pip.stderr[-3000:]}"
    for noise in ("SetuptoolsDeprecationWarning", "project.license"):   # the setuptools banners, fixed in pyproject
        assert noise not in pip.stderr, f"setup printed {noise}:\n{pip.stderr[-3000:]}"

    no_torch = _run([python, "-c", "import torch"])
    assert no_torch.returncode != 0 and "No module named 'torch'" in no_torch.stderr, "torch came with a plain install"
    shipped = _run([python, "-c", "from npc_runtime.builtin_packages import package_dir as p; "
                    "print(p('npc-dialogue'), p('npc-policy'))"])
    assert shipped.returncode == 0 and "None" not in shipped.stdout, shipped.stdout + shipped.stderr
    assert str(env_dir) in shipped.stdout, "the shipped packages must come from the installed copy"

    npcrt = env_dir / "bin" / "npcrt"
    help_text = _run([npcrt, "demo", "--help"]).stdout
    flags = [flag for flag in ("--no-live", "--no-export", "--json") if flag in help_text]
    demo_env = _clean_env(PATH=f"{env_dir / 'bin'}:/usr/bin:/bin", HOME=str(tmp_path / "home"),
                          NPCRT_CACHE_DIR=str(tmp_path / "cache"), NPCRT_ESCALATION_PROVIDER="local")
    for key in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY"):
        demo_env.pop(key, None)
    demo = _run([npcrt, "demo", "--seconds", "3", *flags], cwd=tmp_path, env=demo_env, timeout=300)
    assert demo.returncode == 0, f"npcrt demo failed in the fresh venv:\n{demo.stderr[-3000:]}"
    if "--json" in flags:
        assert json.loads(demo.stdout)["decisions"] > 0
    assert not (tmp_path / "cache").exists(), "the demo exported a model although the packages are shipped"
