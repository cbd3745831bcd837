"""Every command in the README's "Command line" block runs as written, from a clone's root."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Command line", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [line.split("  #")[0].strip() for line in block.splitlines() if line.strip().startswith("npcrt ")]


def npcrt(command: str) -> list[str]:
    args = shlex.split(command)
    return [sys.executable, "-m", "npc_runtime.cli", *args[1:]]


def test_the_block_has_the_commands_a_newcomer_needs():
    commands = readme_commands()
    for verb in ("export", "validate", "serve", "demo"):
        assert any(c.startswith(f"npcrt {verb} ") for c in commands), verb


@pytest.mark.slow
def test_readme_commands_run_as_written(tmp_path):
    pytest.importorskip("torch")
    # a clone's root, without writing into this checkout: the paths the commands read, linked
    (tmp_path / "export").symlink_to(ROOT / "export")
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    for command in readme_commands():
        if command.startswith("npcrt serve") and "--print-config" not in command:
            proc = subprocess.Popen(npcrt(command), cwd=tmp_path, env=env, text=True,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            try:
                line = proc.stdout.readline()
                assert "listening grpc=" in line, (command, line, proc.stderr.read() if proc.poll() is not None else "")
                proc.send_signal(signal.SIGTERM)
                assert proc.wait(timeout=60) == 0, command
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            continue
        proc = subprocess.run(npcrt(command), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, f"{command}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
        assert "Traceback" not in proc.stderr, command
    assert (tmp_path / "pkgs" / "dialogue-int4" / "manifest.json").is_file()
    assert (tmp_path / "pkgs" / "my-npc" / "manifest.json").is_file()
    assert (tmp_path / "demo-out" / "transcript.md").is_file()
