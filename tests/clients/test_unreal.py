"""The Unreal plugin's checks, run through clients_test/unreal/Makefile.

No Unreal Engine here: the engine-agnostic C++ core is built with CMake against the system gRPC and
protobuf (code generated from proto/ at build time), its unit and shared-vector tests run, the Unreal
module's sources pass `g++ -fsyntax-only` against API shims, and the C++ client drives a real
`npcrt serve` on a free loopback port. Skipped, with the missing tool named, where the C++ toolchain
is absent (`.ci/run` installs it).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UNREAL_TESTS = REPO / "clients_test" / "unreal"
TOOLS = ("cmake", "make", "g++", "pkg-config", "protoc", "grpc_cpp_plugin")
SUMMARY = re.compile(r"^(\d+) passed, (\d+) failed", re.MULTILINE)


def _missing_toolchain() -> str | None:
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        return f"C++ toolchain missing: {', '.join(missing)} (apt-get install cmake g++ pkg-config protobuf-compiler protobuf-compiler-grpc)"
    probe = subprocess.run(["pkg-config", "--exists", "grpc++", "protobuf"], capture_output=True)
    if probe.returncode != 0:
        return "pkg-config finds no grpc++/protobuf (apt-get install libgrpc++-dev libprotobuf-dev)"
    return None


pytestmark = pytest.mark.skipif(_missing_toolchain() is not None, reason=_missing_toolchain() or "")


def _make(target: str, timeout: float) -> str:
    proc = subprocess.run(
        ["make", "--no-print-directory", "-C", str(UNREAL_TESTS), target, f"PYTHON={sys.executable}"],
        capture_output=True, text=True, timeout=timeout,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"make {target} failed (exit {proc.returncode}):\n{output[-6000:]}"
    return output


def _assert_all_passed(output: str, *, at_least: int) -> None:
    """Every test binary the target ran printed "N passed, 0 failed"; at least `at_least` passed in all."""
    summaries = [(int(p), int(f)) for p, f in SUMMARY.findall(output)]
    assert summaries, f"no 'N passed, M failed' line in:\n{output[-3000:]}"
    assert all(failed == 0 for _, failed in summaries), output[-3000:]
    assert sum(passed for passed, _ in summaries) >= at_least, output[-3000:]


@pytest.fixture(scope="module")
def built() -> None:
    # Configure + compile once (generated protobuf/gRPC code included); later targets reuse the build.
    _make("build", timeout=1200)


def test_core_unit_tests(built) -> None:
    _assert_all_passed(_make("unit", timeout=120), at_least=20)


def test_cpp_client_metadata_against_fake_server(built) -> None:
    """x-npc-id on every per-NPC call (none on Handshake, ListModels, a Tick of several NPCs, or when turned
    off), npcrt-replica of the latest answer, SaveSession / RestoreSession bytes: a grpc++ fake on loopback."""
    output = _make("client", timeout=120)
    _assert_all_passed(output, at_least=6)
    assert "routing: a Tick of several NPCs carries none" in output


def test_shared_vectors(built) -> None:
    _assert_all_passed(_make("vectors", timeout=120), at_least=8)


def test_unreal_sources_pass_syntax_check() -> None:
    output = _make("syntax", timeout=300)
    match = re.search(r"syntax: (\d+) passed, 0 failed", output)
    assert match and int(match.group(1)) >= 10, output[-3000:]


def test_cpp_client_against_python_server(built) -> None:
    """integration_test.cpp, then fleet_live_test.cpp (save / restore under new ids, same greedy and seeded
    tokens, npcrt-replica read back) against one `npcrt serve --replica unreal-live`."""
    output = _make("integration", timeout=600)
    _assert_all_passed(output, at_least=11)
    assert "answered by replica 'unreal-live'" in output
