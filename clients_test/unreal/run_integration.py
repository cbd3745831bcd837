"""Runs the Unreal core's C++ integration test against a real Python server.

1. Builds a tiny random-weight model package once (tests/helpers/tiny_models.py -> npc_export,
   fp32, `ort` profile), cached under the build directory.
2. Starts `npcrt serve --model PKG --host 127.0.0.1 --port 0 --http-port -1` and reads the port from its
   "npcrt serve: listening grpc=HOST:PORT ..." line.
3. Runs the C++ test binary with that target; stops the server; exits with the binary's status.

Run from the repository root (the Makefile does): python clients_test/unreal/run_integration.py BIN BUILD_DIR
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LISTENING = re.compile(r"listening grpc=([^\s]+):(\d+)")
STARTUP_TIMEOUT_S = 120.0


def make_package(cache_dir: Path) -> Path:
    """The tiny llama package, exported once per build directory."""
    package = cache_dir / "tiny-llama-fp32-ort"
    if (package / "manifest.json").exists():
        return package
    from npc_export import export_model
    from tests.helpers.tiny_models import make_tiny_hf_model

    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="npc-unreal-hf-") as tmp:
        source = make_tiny_hf_model(tmp, "llama")
        export_model(source, package, precision="fp32", target="ort", progress=False, force=True)
    return package


def start_server(package: Path) -> tuple[subprocess.Popen, str]:
    npcrt = Path(sys.executable).with_name("npcrt")
    command = [str(npcrt) if npcrt.exists() else sys.executable, *([] if npcrt.exists() else ["-m", "npc_runtime.cli"]),
               "serve", "--model", str(package), "--host", "127.0.0.1", "--port", "0", "--http-port", "-1",
               "--log-format", "text", "--log-level", "WARNING"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=None, text=True)
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break  # the server exited
        match = LISTENING.search(line)
        if match:
            return proc, f"127.0.0.1:{match.group(2)}"
    proc.kill()
    proc.wait()
    raise SystemExit(f"run_integration: the server did not report a port (exit code {proc.returncode}); "
                     f"command: {' '.join(command)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("binary", help="the npc_integration_test executable")
    parser.add_argument("build_dir", help="where to cache the model package")
    args = parser.parse_args()
    package = make_package(Path(args.build_dir) / "packages")
    proc, target = start_server(package)
    try:
        return subprocess.run([args.binary, target], check=False).returncode
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


if __name__ == "__main__":
    sys.exit(main())
