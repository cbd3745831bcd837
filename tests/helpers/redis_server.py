"""A throwaway Redis server for tests (Debian's redis-server on 127.0.0.1, a free port, no persistence).
Without the binary `find_redis()` is None and the Redis cases skip, unless NPCRT_REQUIRE_SERVICES=1 (set by
`.ci/run`, which installs it)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time

from tests.helpers.net import free_port


def find_redis() -> str | None:
    return shutil.which("redis-server")



class RedisServer:
    def __init__(self) -> None:
        self.port = free_port()
        self.dir = tempfile.TemporaryDirectory(prefix="npcrt-redis-")
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> "RedisServer":
        self.proc = subprocess.Popen([find_redis(), "--port", str(self.port), "--bind", "127.0.0.1",
                                      "--save", "", "--appendonly", "no", "--dir", self.dir.name],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            time.sleep(0.05)
        self.stop()
        raise AssertionError("redis-server did not listen within 10 s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.dir.cleanup()
