"""Offline for real: `npcrt demo` and `npcrt serve` make no network attempt beyond loopback, and no DNS.

Each command runs in a network namespace with only loopback (`unshare -n`, `ip link set lo up`) under
`strace -f -e trace=connect,sendto,sendmsg`; every address in the trace is checked. A namespace without a
route makes a lookup fail fast instead of hanging, and the trace still records the attempt.

Why the processes live TELEMETRY_WINDOW_S: onnxruntime 1.32's telemetry resolves
mobile.events.data.microsoft.com about 9 s after `import onnxruntime` (measured: 9.1 s; a process that
exits sooner never sends anything), so a 3-second run would pass even with telemetry on. Without
ORT_DISABLE_TELEMETRY both runs below fail: the trace shows a connect() to the resolver on port 53 (and
nscd socket probes) from an onnxruntime thread.

Needs root (CI runs as root), strace and iproute2 (.ci/run installs them); skipped with the reason otherwise.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

TELEMETRY_WINDOW_S = 15.0      # > the 9 s after which onnxruntime's telemetry first resolves its host
START_TIMEOUT_S = 120.0        # serve: from launch to its "listening" line on a busy 2-core machine

pytestmark = pytest.mark.slow

# Unix sockets that mean a name lookup (glibc's nscd cache, systemd-resolved's varlink / D-Bus resolver).
DNS_UNIX_PATHS = ("/var/run/nscd/", "/run/nscd/", "/run/systemd/resolve/", "/var/run/systemd/resolve/")
_INET = re.compile(r'sa_family=AF_INET, sin_port=htons\((\d+)\), sin_addr=inet_addr\("([^"]+)"\)')
_INET6 = re.compile(r'sa_family=AF_INET6, sin6_port=htons\((\d+)\),.*?inet_pton\(AF_INET6, "([^"]+)"')
_UNIX = re.compile(r'sa_family=AF_UNIX, sun_path=(@?)"([^"]*)"')


def _is_loopback(address: str) -> bool:
    return address.startswith("127.") or address in ("::1", "::") or address.startswith("::ffff:127.")


def network_attempts(trace: str) -> list[str]:
    """The trace lines that reach past loopback or look a name up (port 53, resolver / nscd sockets)."""
    bad = []
    for line in trace.splitlines():
        for port, address in [*_INET.findall(line), *_INET6.findall(line)]:
            if not _is_loopback(address) or int(port) == 53:
                bad.append(line.strip())
        for abstract, path in _UNIX.findall(line):
            if not abstract and path.startswith(DNS_UNIX_PATHS):
                bad.append(line.strip())
    return list(dict.fromkeys(bad))


def test_trace_parser_flags_dns_and_remote_addresses():
    trace = "\n".join([
        '7 connect(8, {sa_family=AF_INET, sin_port=htons(53), sin_addr=inet_addr("10.255.255.53")}, 16) = 0',
        '7 connect(8, {sa_family=AF_INET, sin_port=htons(443), sin_addr=inet_addr("13.89.178.26")}, 16) = -1',
        '7 connect(8, {sa_family=AF_UNIX, sun_path="/var/run/nscd/socket"}, 110) = -1 ENOENT',
        '7 connect(9, {sa_family=AF_INET6, sin6_port=htons(443), sin6_flowinfo=htonl(0), '
        'inet_pton(AF_INET6, "2603:1030::1", &sin6_addr), sin6_scope_id=0}, 28) = -1',
        '7 connect(9, {sa_family=AF_INET, sin_port=htons(50051), sin_addr=inet_addr("127.0.0.1")}, 16) = 0',
        '7 connect(9, {sa_family=AF_INET6, sin6_port=htons(8000), sin6_flowinfo=htonl(0), '
        'inet_pton(AF_INET6, "::1", &sin6_addr), sin6_scope_id=0}, 28) = 0',
        '7 connect(5, {sa_family=AF_UNIX, sun_path="/tmp/x/grpc.sock"}, 110) = 0',
        '7 sendto(3, "x", 1, 0, {sa_family=AF_NETLINK, nl_pid=0, nl_groups=00000000}, 12) = 1',
    ])
    bad = network_attempts(trace)
    assert len(bad) == 4
    assert "10.255.255.53" in bad[0] and "13.89.178.26" in bad[1] and "nscd" in bad[2] and "2603:1030" in bad[3]


def _skip_reason() -> str | None:
    if sys.platform != "linux":
        return "network namespaces are Linux only"
    if os.geteuid() != 0:
        return "needs root for `unshare -n` (CI runs as root)"
    missing = [tool for tool in ("unshare", "nsenter", "strace", "ip") if shutil.which(tool) is None]
    if missing:
        return f"missing {', '.join(missing)} (apt-get install strace iproute2 util-linux)"
    probe = subprocess.run(["unshare", "-n", "--", "sh", "-c", "ip link set lo up"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"cannot make a network namespace here: {probe.stderr.strip()}"
    return None


def _npcrt() -> list[str]:
    return [sys.executable, "-m", "npc_runtime.cli"]


def _offline(cmd: list[str], trace: Path) -> list[str]:
    """`cmd` in a fresh loopback-only network namespace, traced (strace output in `trace`)."""
    return ["unshare", "-n", "--", "sh", "-c", 'ip link set lo up && exec "$@"', "sh",
            "strace", "-f", "-qq", "-e", "trace=connect,sendto,sendmsg", "-o", str(trace), "--", *cmd]


def _env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("ORT_DISABLE_TELEMETRY", None)        # the project must set it itself
    env.update(NPCRT_CACHE_DIR=str(tmp_path / "cache"), NPCRT_DATA_DIR=str(tmp_path / "data"),
               NPCRT_ESCALATION_PROVIDER="local", PYTHONUNBUFFERED="1")
    for key in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY"):
        env.pop(key, None)
    return env


def _demo_flags(env: dict[str, str]) -> list[str]:
    """Output flags the demo has now (its CLI is evolving): no live view, no export, JSON on stdout."""
    help_text = subprocess.run([*_npcrt(), "demo", "--help"], capture_output=True, text=True, env=env).stdout
    return [flag for flag in ("--no-live", "--no-export", "--json") if flag in help_text]


def _assert_offline(trace: Path, what: str) -> None:
    text = trace.read_text(errors="replace")
    bad = network_attempts(text)
    assert not bad, f"{what} tried the network / DNS ({len(bad)} attempts):\n" + "\n".join(bad[:20])


@pytest.fixture(scope="module")
def namespace():
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)


def test_demo_stays_offline(namespace, tmp_path):
    env = _env(tmp_path)
    trace = tmp_path / "demo.strace"
    cmd = [*_npcrt(), "demo", "--seconds", str(int(TELEMETRY_WINDOW_S)), *_demo_flags(env)]
    proc = subprocess.run(_offline(cmd, trace), cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=TELEMETRY_WINDOW_S + 240)
    assert proc.returncode == 0, f"npcrt demo failed offline:\n{proc.stderr[-3000:]}"
    if "--json" in cmd:
        assert json.loads(proc.stdout)["decisions"] > 0
    _assert_offline(trace, "npcrt demo")


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _read_line(proc: subprocess.Popen, prefix: str, deadline: float) -> str:
    """The first stdout line starting with `prefix` (stdout is line-buffered text)."""
    import selectors

    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        if sel.select(timeout=0.5):
            line = proc.stdout.readline()
            if line.startswith(prefix):
                return line.strip()
    raise AssertionError(f"no '{prefix}' line (exit {proc.poll()}):\n{proc.stderr.read()[-3000:] if proc.poll() is not None else ''}")


def _in_namespace(pid: int, code: str) -> subprocess.CompletedProcess:
    """Run python `code` inside the network namespace of `pid` (not traced: its loopback calls are ours)."""
    return subprocess.run(["nsenter", "-t", str(pid), "-n", sys.executable, "-c", code],
                          capture_output=True, text=True, timeout=60)


def test_serve_stays_offline(namespace, tmp_path):
    env = _env(tmp_path)
    trace = tmp_path / "serve.strace"
    from npc_runtime.builtin_packages import package_dir

    dialogue = package_dir("npc-dialogue")
    assert dialogue is not None, "the shipped npc-dialogue package is missing from this installation"
    cmd = [*_npcrt(), "serve", "--model", str(dialogue), "--host", "127.0.0.1", "--port", "0", "--http-port", "0"]
    started = time.monotonic()
    proc = subprocess.Popen(_offline(cmd, trace), cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        line = _read_line(proc, "npcrt serve: listening", started + START_TIMEOUT_S)
        listening = time.monotonic()      # onnxruntime was imported before this (the models are loaded)
        http = re.search(r"http=([^\s]+)", line)
        server_pid = _children(proc.pid)[0]     # unshare exec'd sh exec'd strace (proc.pid) -> npcrt serve
        if http and not http.group(1).endswith(("off", "-1", "None")):
            url = f"http://{http.group(1)}"
            check = _in_namespace(server_pid, (
                "import json, urllib.request as u\n"
                f"print(u.urlopen('{url}/healthz', timeout=30).status)\n"
                f"r = u.Request('{url}/v1/chat/completions', method='POST', headers={{'content-type': 'application/json'}},"
                " data=json.dumps({'messages': [{'role': 'user', 'content': 'Hello there.'}], 'max_tokens': 8}).encode())\n"
                "print(u.urlopen(r, timeout=60).status)\n"))
            assert check.stdout.split() == ["200", "200"], f"serve did not answer in its namespace: {check.stderr[-2000:]}"
        # keep it up past the moment onnxruntime's telemetry would look its host up
        time.sleep(max(0.0, TELEMETRY_WINDOW_S - (time.monotonic() - listening)))
        assert proc.poll() is None, f"npcrt serve exited early:\n{proc.stderr.read()[-3000:]}"
        os.kill(server_pid, signal.SIGTERM)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            for pid in _children(proc.pid):
                os.kill(pid, signal.SIGKILL)
            proc.kill()
            proc.wait()
    _assert_offline(trace, "npcrt serve")


def test_http_app_turns_fastapi_telemetry_off(monkeypatch):
    """FastAPI's own OpenTelemetry instrumentation (when the installed FastAPI has it) is off whatever the
    environment says: FASTAPI_OTEL_AUTO_CONFIGURE=true would otherwise add OTLP exporters."""
    import inspect

    from fastapi import FastAPI

    from npc_runtime.serving import http_api

    monkeypatch.setenv("FASTAPI_OTEL_AUTO_CONFIGURE", "true")
    app = http_api._fastapi()
    if "telemetry" not in inspect.signature(FastAPI.__init__).parameters:
        pytest.skip("this FastAPI has no telemetry option")
    assert all(app._telemetry[key] is False for key in http_api.NO_TELEMETRY)
