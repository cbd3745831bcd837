"""A real `npcrt serve` process for end-to-end tests and benches: started from this venv on OS-chosen ports
(`--port 0 --http-port 0`, read back from its "listening" line), waited on until gRPC Health and /healthz
answer, probed (`check_alive`: health + one gRPC Tick + one HTTP chat completion), measured (VmRSS from
/proc) and stopped with SIGTERM (`stop()` returns the exit code and the stderr log).

Used by tests/hostile/ and bench/bench_hostile.py, so what the tests assert and what the bench reports come
from the same process wiring."""

from __future__ import annotations

import json
import os
import re
import selectors
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

LISTENING = re.compile(r"listening grpc=(\S+):(\d+) http=(\S+?)(?::(\d+))? ")
START_TIMEOUT_S = 90.0


def npcrt_command() -> list[str]:
    """The venv's `npcrt` (the console script beside this interpreter), else `python -m npc_runtime.cli`."""
    script = Path(sys.executable).with_name("npcrt")
    return [str(script)] if script.exists() else [sys.executable, "-m", "npc_runtime.cli"]


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM it when the process (strictly: the thread) that started it dies, so
    a crashed or killed test run never leaves a server behind. Start servers from a long-lived thread."""
    import ctypes

    PR_SET_PDEATHSIG = 1
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:   # not glibc Linux: the test's own cleanup still stops it
        pass


def rss_kib(pid: int) -> int:
    """Resident set size of `pid` in KiB (VmRSS of /proc/PID/status); 0 when the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


@dataclass
class HttpReply:
    status: int
    body: bytes
    headers: dict = field(default_factory=dict)

    def json(self):
        return json.loads(self.body)


class ServeProcess:
    """One `npcrt serve` subprocess. Use as a context manager or call start() / stop()."""

    def __init__(self, *, data_dir: str | Path | None = None, token: str | None = None,
                 config: str | None = None, provider_url: str | None = None, models: list[str] | None = None,
                 extra_args: list[str] | None = None, env: dict[str, str] | None = None,
                 workdir: str | Path | None = None) -> None:
        self._tmp = None
        if workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="npcrt-serve-")
            workdir = self._tmp.name
        self.workdir = Path(workdir)
        self.data_dir = Path(data_dir) if data_dir is not None else self.workdir / "data"
        self.token = token
        self.config_text = config
        self.provider_url = provider_url
        self.models = models or []
        self.extra_args = extra_args or []
        self.extra_env = env or {}
        self.proc: subprocess.Popen | None = None
        self.grpc_port = 0
        self.http_port: int | None = None
        self.stdout_lines: list[str] = []
        self._stderr_chunks: list[str] = []
        self._stderr_thread: threading.Thread | None = None
        self._channel = None

    # ---- lifecycle -------------------------------------------------------------------------------------
    def command(self) -> list[str]:
        cmd = [*npcrt_command(), "serve", "--host", "127.0.0.1", "--port", "0", "--http-port", "0",
               "--data-dir", str(self.data_dir), "--grace", "10"]
        for model in self.models:
            cmd += ["--model", str(model)]
        if self.config_text is not None:
            path = self.workdir / "npcrt.toml"
            path.write_text(self.config_text)
            cmd += ["--config", str(path)]
        if self.token is not None:
            cmd += ["--token", self.token]
        if self.provider_url is not None:
            cmd += ["--escalation-provider", "openai"]
        return cmd + self.extra_args

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if k not in ("NPCRT_TOKEN", "OPENAI_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_API_KEY",
                            "NPCRT_ESCALATION_PROVIDER")}
        env.update(PYTHONUNBUFFERED="1", NPCRT_CACHE_DIR=str(self.workdir / "cache"))
        if self.provider_url is not None:    # the OpenAI SDK reads these itself
            env.update(OPENAI_BASE_URL=self.provider_url, OPENAI_API_KEY="sk-test-not-a-real-key")
        env.update(self.extra_env)
        return env

    def start(self, timeout: float = START_TIMEOUT_S) -> "ServeProcess":
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(self.command(), cwd=self.workdir, env=self.environment(),
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     preexec_fn=_die_with_parent)
        self._stderr_thread = threading.Thread(target=self._drain_stderr, daemon=True)
        self._stderr_thread.start()
        deadline = time.monotonic() + timeout
        line = self._read_listening(deadline)
        match = LISTENING.search(line)
        self.grpc_port = int(match.group(2))
        self.http_port = int(match.group(4)) if match.group(4) else None
        self.wait_ready(deadline)
        return self

    def _drain_stderr(self) -> None:
        # the server logs a line per request: a full pipe would block it
        for chunk in iter(self.proc.stderr.readline, ""):
            self._stderr_chunks.append(chunk)

    def _read_listening(self, deadline: float) -> str:
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            if sel.select(timeout=0.2):
                line = self.proc.stdout.readline()
                self.stdout_lines.append(line)
                if LISTENING.search(line):
                    threading.Thread(target=self._drain_stdout, daemon=True).start()
                    return line
        self.kill()
        raise AssertionError(f"npcrt serve did not start (exit {self.proc.returncode}):\n"
                             f"{''.join(self.stdout_lines)}{self.stderr[-4000:]}")

    def _drain_stdout(self) -> None:
        for line in iter(self.proc.stdout.readline, ""):
            self.stdout_lines.append(line)

    def wait_ready(self, deadline: float) -> None:
        """Until gRPC Health says SERVING and /healthz answers 200."""
        last = None
        while time.monotonic() < deadline:
            try:
                if self.grpc_health(timeout=2.0) and (self.http_port is None or self.healthz(timeout=2.0) == 200):
                    return
            except Exception as exc:  # noqa: BLE001 - not up yet
                last = exc
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"npcrt serve not ready ({last!r}):\n{self.stderr[-4000:]}")

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, wait; the exit code (the process is killed, and AssertionError raised, past `timeout`)."""
        # the client channel is closed after the process ends: closing it first would cancel the calls in
        # flight on the client side, and hide what the server does with them
        if self.proc is None or self.proc.poll() is not None:
            self.close_channel()
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"npcrt serve ignored SIGTERM for {timeout:.0f} s:\n{self.stderr[-4000:]}")
        finally:
            self._join_output()
            self.close_channel()

    def kill(self) -> None:
        """SIGKILL (a crash): no shutdown code runs."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._join_output()
        self.close_channel()

    def _join_output(self) -> None:
        """After the process ended: wait for its last log lines."""
        if self._stderr_thread is not None:
            self._stderr_thread.join(timeout=5)

    def cleanup(self) -> None:
        self.kill()
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> "ServeProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.cleanup()

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def stderr(self) -> str:
        return "".join(self._stderr_chunks)

    def rss_kib(self) -> int:
        return rss_kib(self.pid)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    # ---- clients -----------------------------------------------------------------------------------------
    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def metadata(self) -> tuple:
        return (("authorization", f"Bearer {self.token}"),) if self.token else ()

    def channel(self):
        import grpc

        if self._channel is None:
            self._channel = grpc.insecure_channel(self.grpc_target, options=[
                ("grpc.max_send_message_length", 256 * 1024 * 1024),
                ("grpc.max_receive_message_length", 256 * 1024 * 1024)])
        return self._channel

    def close_channel(self) -> None:
        if self._channel is not None:
            self._channel.close()
            self._channel = None

    def runtime_stub(self):
        from npc_proto.v1 import runtime_pb2_grpc

        return runtime_pb2_grpc.NpcRuntimeStub(self.channel())

    def agent_stub(self):
        from npc_proto.v1 import agent_pb2_grpc

        return agent_pb2_grpc.NpcAgentStub(self.channel())

    def grpc_health(self, timeout: float = 5.0) -> bool:
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        reply = health_pb2_grpc.HealthStub(self.channel()).Check(health_pb2.HealthCheckRequest(), timeout=timeout)
        return reply.status == health_pb2.HealthCheckResponse.SERVING

    def http(self, method: str, path: str, body: bytes | dict | None = None, *, headers: dict | None = None,
             auth: bool = True, timeout: float = 60.0) -> HttpReply:
        """One HTTP request; any status (4xx/5xx included) comes back as an HttpReply."""
        data = json.dumps(body).encode() if isinstance(body, dict) else body
        hdrs = {"content-type": "application/json"} if data is not None else {}
        if auth and self.token:
            hdrs["authorization"] = f"Bearer {self.token}"
        hdrs.update(headers or {})
        request = urllib.request.Request(self.http_url + path, data=data, method=method, headers=hdrs)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as reply:
                return HttpReply(reply.status, reply.read(), dict(reply.headers))
        except urllib.error.HTTPError as exc:
            return HttpReply(exc.code, exc.read(), dict(exc.headers))

    def healthz(self, timeout: float = 5.0) -> int:
        return self.http("GET", "/healthz", timeout=timeout).status

    def chat(self, content: str = "Hello there.", *, max_tokens: int = 4, timeout: float = 60.0) -> HttpReply:
        return self.http("POST", "/v1/chat/completions", {
            "messages": [{"role": "user", "content": content}], "max_tokens": max_tokens}, timeout=timeout)

    def tick_once(self, prompt: str = "Hello", *, timeout: float = 30.0, stub=None) -> int:
        """Open a session, Tick it until it yields tokens, close it; the number of tokens decoded. `stub`: a
        runtime stub on a channel of the caller's (default: this helper's shared channel)."""
        from npc_proto.v1 import runtime_pb2 as pb

        stub = stub or self.runtime_stub()
        md = self.metadata()
        sid = stub.OpenSession(pb.OpenSessionRequest(prompt=prompt, limits=pb.SessionLimits(max_new_tokens=4)),
                               metadata=md, timeout=timeout).session_id
        tokens = 0
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                reply = stub.Tick(pb.TickRequest(entries=[pb.TickEntry(session_id=sid, budget_ms=50)]),
                                  metadata=md, timeout=timeout)
                result = reply.results[0]
                if result.error:
                    raise AssertionError(f"Tick failed: {result.error}")
                tokens += len(result.token_ids)
                if result.finished:
                    break
        finally:
            stub.CloseSession(pb.CloseSessionRequest(session_id=sid), metadata=md, timeout=timeout)
        return tokens

    def check_alive(self, *, timeout: float = 30.0) -> None:
        """Health (gRPC and /healthz), one normal gRPC decode and one normal HTTP chat completion succeed."""
        assert self.alive(), f"npcrt serve exited ({self.proc.returncode}):\n{self.stderr[-4000:]}"
        assert self.grpc_health(timeout=timeout), "gRPC health is not SERVING"
        assert self.healthz(timeout=timeout) == 200, "/healthz did not answer 200"
        assert self.tick_once(timeout=timeout) > 0, "a normal Tick decoded no token"
        reply = self.chat(timeout=timeout)
        assert reply.status == 200, f"a normal chat completion got {reply.status}: {reply.body[:500]!r}"
        assert reply.json()["choices"][0]["message"]["role"] == "assistant"
