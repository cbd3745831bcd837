"""Runs the Unreal core's C++ integration test against a real Python server.

1. Builds tiny random-weight model packages once (tests/helpers/tiny_models.py -> npc_export, fp32):
   the `ort` one the server serves and the `portable` one (model.fixed.onnx) the C++ side reads the way
   the Unreal NNE brain does; cached under the build directory.
2. Starts `npcrt serve --model PKG --host 127.0.0.1 --port 0 --http-port -1 --data-dir TMP --replica NAME`
   (a fresh data directory per run: the NpcAgent memory and NPC registry) and reads the port from its
   "npcrt serve: listening grpc=HOST:PORT ..." line.
3. Runs the C++ test binary (then each --also binary) with that target and NPC_EXPECT_REPLICA=NAME in the
   environment; stops the server; exits with the first failing status.

Run from the repository root (the Makefile does):
    python clients_test/unreal/run_integration.py BIN BUILD_DIR [--also BIN2 ...]
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
REPLICA = "unreal-live"  # --replica of the server: the C++ side reads it back from npcrt-replica


def make_packages(cache_dir: Path) -> dict[str, Path]:
    """The tiny llama packages per target, exported once per build directory from one HF source."""
    packages = {target: cache_dir / f"tiny-llama-fp32-{target}" for target in ("ort", "portable")}
    missing = [t for t, p in packages.items() if not (p / "manifest.json").exists()]
    if missing:
        from npc_export import export_model
        from tests.helpers.tiny_models import make_tiny_hf_model

        cache_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="npc-unreal-hf-") as tmp:
            source = make_tiny_hf_model(tmp, "llama")
            for target in missing:
                export_model(source, packages[target], precision="fp32", target=target, progress=False, force=True)
    return packages


def start_server(package: Path, data_dir: Path) -> tuple[subprocess.Popen, str]:
    npcrt = Path(sys.executable).with_name("npcrt")
    command = [str(npcrt) if npcrt.exists() else sys.executable, *([] if npcrt.exists() else ["-m", "npc_runtime.cli"]),
               "serve", "--model", str(package), "--host", "127.0.0.1", "--port", "0", "--http-port", "-1",
               "--data-dir", str(data_dir), "--replica", REPLICA, "--log-format", "text", "--log-level", "WARNING"]
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
    parser.add_argument("--also", action="append", default=[], metavar="BIN",
                        help="another test binary to run against the same server (same arguments)")
    args = parser.parse_args()
    packages = make_packages(Path(args.build_dir) / "packages")
    with tempfile.TemporaryDirectory(prefix="npc-unreal-data-") as data_dir:
        proc, target = start_server(packages["ort"], Path(data_dir))
        env = {**os.environ, "NPC_EXPECT_REPLICA": REPLICA}
        try:
            failed = 0
            for binary in [args.binary, *args.also]:
                code = subprocess.run([binary, target, str(packages["portable"])], check=False, env=env).returncode
                failed = failed or code
            return failed
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


if __name__ == "__main__":
    sys.exit(main())
