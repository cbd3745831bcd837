"""bench/cpp's npc_tick_client (the served Tick timed with the Unreal plugin's C++ client) builds and measures.

Builds the tool as bench/bench_cpp_tick.py does (CMake Release, into a fresh folder) and runs it against a
real `npcrt serve` on the built-in package: a handful of 1-token ticks and budget ticks, and its errors.
Skipped, with the packages to install named, where the C++ toolchain is absent. What it measures is reported
by the bench, never asserted as a speed here.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

import pytest

from bench.bench_cpp_tick import build_tool, missing_toolchain
from bench.bench_serving_paths import BUILTIN, start_server

pytestmark = [pytest.mark.clients, pytest.mark.skipif(missing_toolchain() is not None,
                                                      reason=missing_toolchain() or "")]
KEYS = {"rtt_ms", "handler_ms", "engine_ms", "tokens", "seconds", "noop_ms"}


@pytest.fixture(scope="module")
def tool(tmp_path_factory) -> Path:
    return build_tool(tmp_path_factory.mktemp("cpp-build"), quiet=True)


@pytest.fixture(scope="module")
def port():
    with tempfile.TemporaryDirectory(prefix="npc-cpp-test-") as tmp:
        proc, grpc_port, _ = start_server(BUILTIN, 2, Path(tmp))
        try:
            yield grpc_port
        finally:
            proc.terminate()
            proc.wait(timeout=60)


def _run(tool: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(tool), *args], capture_output=True, text=True, timeout=120, check=False)


def test_tokens_mode_times_every_tick_and_the_noop(tool, port):
    done = _run(tool, "--target", f"127.0.0.1:{port}", "--sessions", "2", "--mode", "tokens", "--tokens", "5",
                "--ticks", "0", "--noop", "5")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert set(out) == KEYS | {"budget_counted"} and out["budget_counted"] == "server"
    assert out["tokens"] == 10 and out["seconds"] > 0       # 2 sessions x 5 tokens, one token per tick
    assert len(out["rtt_ms"]) == len(out["handler_ms"]) == len(out["engine_ms"]) >= 5
    assert all(r > 0 for r in out["rtt_ms"])
    # the round trip holds the handler, which holds the engine call
    assert all(r >= h >= e > 0 for r, h, e in zip(out["rtt_ms"], out["handler_ms"], out["engine_ms"]))
    assert len(out["noop_ms"]) == 5 and all(n > 0 for n in out["noop_ms"])


def test_budget_mode_runs_the_asked_ticks(tool, port):
    done = _run(tool, "--target", f"127.0.0.1:{port}", "--sessions", "2", "--mode", "budget", "--ticks", "5",
                "--budget-ms", "4")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert len(out["rtt_ms"]) == 5 and out["tokens"] > 0 and out["noop_ms"] == []
    assert all(r >= h >= e > 0 for r, h, e in zip(out["rtt_ms"], out["handler_ms"], out["engine_ms"]))


def test_errors_are_one_clear_line_and_a_nonzero_exit(tool, port):
    bad = _run(tool, "--target", f"127.0.0.1:{port}", "--mode", "fast")
    assert bad.returncode == 2 and "--mode must be tokens or budget" in bad.stderr
    too_many = _run(tool, "--target", f"127.0.0.1:{port}", "--sessions", "3", "--mode", "tokens")
    assert too_many.returncode == 1 and "the server allows 2 sessions" in too_many.stderr


def test_round_trip_budgets_where_the_core_has_them(tool, port):
    features = json.loads(_run(tool, "--features").stdout)
    args = ("--target", f"127.0.0.1:{port}", "--sessions", "2", "--mode", "budget", "--ticks", "3",
            "--budget-counted", "round-trip")
    done = _run(tool, *args)
    if not features["round_trip_budget"]:   # an npc_core without ClientOptions::round_trip_budget
        assert done.returncode == 2 and "no round-trip budgets" in done.stderr
        return
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["budget_counted"] == "round-trip" and len(out["rtt_ms"]) == 3
