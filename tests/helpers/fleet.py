"""A fleet on loopback, as deploy/ describes it: N real `npcrt serve` replicas sharing one real PostgreSQL
database, behind a real nginx running the shipped deploy/nginx/nginx.conf (its upstream addresses and listen
ports rewritten to this machine's). Used by tests/fleet/ and bench/bench_fleet.py.

    with Fleet(postgres, replicas=3) as fleet:
        stub = agent_pb2_grpc.NpcAgentStub(grpc.insecure_channel(fleet.grpc_target))
        reply, call = stub.Step.with_call(request, metadata=fleet.route("guard-01"))
        replica_of(call)                       # "r1" / "r2" / "r3": the npcrt-replica metadata
        fleet.kill("r2")                       # SIGKILL, as a crash
"""

from __future__ import annotations

import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from tests.helpers.net import free_port
from tests.helpers.postgres import PostgresServer
from tests.helpers.serve_process import ServeProcess

REPO = Path(__file__).resolve().parents[2]
NGINX_CONF = REPO / "deploy" / "nginx" / "nginx.conf"


def find_nginx() -> str | None:
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if Path(p).exists()), None)



def replica_of(call) -> str:
    """The `npcrt-replica` a gRPC call's initial metadata names ('' when absent)."""
    return next((v for k, v in call.initial_metadata() or () if k == "npcrt-replica"), "")


def nginx_config(grpc_ports: list[int], http_ports: list[int], *, listen_grpc: int, listen_http: int,
                 workdir: Path) -> str:
    """deploy/nginx/nginx.conf with the replicas on loopback: the shipped directives, only addresses changed."""
    text = NGINX_CONF.read_text()

    def servers(block: str, ports: list[int], port_in_file: int) -> str:
        """The upstream's `server replica-N:PORT ...;` lines replaced by one line per loopback port."""
        pattern = re.compile(rf"( *)server replica-\d+:{port_in_file}( [^;]*);\n")
        indent, options = pattern.search(block).groups()
        first = pattern.search(block).start()
        without = pattern.sub("", block)
        lines = "".join(f"{indent}server 127.0.0.1:{p}{options};\n" for p in ports)
        return without[:first] + lines + without[first:]

    text = servers(text, grpc_ports, 50051)
    text = servers(text, http_ports, 8000)
    text = text.replace("listen 50051 http2;", f"listen 127.0.0.1:{listen_grpc} http2;")
    text = text.replace("listen 8000;", f"listen 127.0.0.1:{listen_http};")
    text = text.replace("pid /tmp/npcrt-nginx.pid;", f"pid {workdir / 'nginx.pid'};")
    text = text.replace("worker_processes auto;", "worker_processes 1;")
    temp = "\n".join(f"    {kind}_temp_path {workdir / kind};"
                     for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return text.replace("http {\n", "http {\n" + temp + "\n", 1)


class Fleet:
    def __init__(self, postgres: PostgresServer, *, replicas: int = 3, extra_args: list[str] | None = None):
        self.postgres = postgres
        self.memory_url = postgres.url_for_new_schema()
        self.names = [f"r{i + 1}" for i in range(replicas)]
        self.extra_args = extra_args or []
        self.replicas: dict[str, ServeProcess] = {}
        self.workdir = Path(tempfile.mkdtemp(prefix="npcrt-fleet-"))
        self.grpc_port = free_port()
        self.http_port = free_port()
        self._nginx: subprocess.Popen | None = None

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @staticmethod
    def route(npc_id: str) -> tuple[tuple[str, str], ...]:
        return (("x-npc-id", npc_id),)

    def start(self) -> "Fleet":
        for name in self.names:
            self.replicas[name] = ServeProcess(
                data_dir=self.workdir / name,
                extra_args=["--memory-url", self.memory_url, "--replica", name, *self.extra_args]).start()
        conf = self.workdir / "nginx.conf"
        conf.write_text(nginx_config([r.grpc_port for r in self.replicas.values()],
                                     [r.http_port for r in self.replicas.values()],
                                     listen_grpc=self.grpc_port, listen_http=self.http_port, workdir=self.workdir))
        self._nginx = subprocess.Popen([find_nginx(), "-p", str(self.workdir), "-e", "stderr", "-c", str(conf),
                                        "-g", "daemon off;"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self._nginx.poll() is not None:
                raise AssertionError(f"nginx did not start: {self._nginx.stderr.read().decode()}")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.grpc_port)) == 0:
                    return self
            time.sleep(0.05)
        raise AssertionError("nginx did not listen within 10 s")

    def kill(self, name: str) -> None:
        self.replicas[name].kill()

    def stop(self) -> None:
        if self._nginx is not None and self._nginx.poll() is None:
            self._nginx.send_signal(signal.SIGQUIT)
            try:
                self._nginx.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._nginx.kill()
        for replica in self.replicas.values():
            replica.cleanup()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> "Fleet":
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()
