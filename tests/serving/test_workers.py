"""The bounded worker pool (npc_runtime.workers) and the prepare step that uses it: heavy per-request work
off the event loop and the engine thread, refused with "server busy" past the queue limit; an empty token
is a startup error."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading

import pytest

from npc_runtime.errors import InvalidArgument, ResourceExhausted, Unavailable
from npc_runtime.sessions.facade import EngineFacade
from npc_runtime.sessions.requests import GenerateRequest, OpenRequest
from npc_runtime.workers import WorkerPool, configure_default_pool, default_pool


async def test_pool_runs_jobs_and_raises_their_errors():
    pool = WorkerPool(threads=2, queue_limit=2)
    try:
        names = await asyncio.gather(*(pool.run(lambda: threading.current_thread().name) for _ in range(4)))
        assert all(name.startswith("npc-worker") for name in names)
        with pytest.raises(ZeroDivisionError):
            await pool.run(lambda: 1 / 0)
        assert pool.call(sum, [1, 2, 3]) == 6
        assert pool.in_flight == 0
    finally:
        pool.shutdown()


async def test_pool_refuses_past_threads_plus_queue():
    pool = WorkerPool(threads=1, queue_limit=1)
    gate = threading.Event()
    try:
        running = asyncio.ensure_future(pool.run(gate.wait, 5))
        queued = asyncio.ensure_future(pool.run(gate.wait, 5))
        await asyncio.sleep(0.05)
        with pytest.raises(ResourceExhausted, match="server busy: 1 worker thread.*1 queued"):
            await pool.run(gate.wait, 5)
        assert pool.refused == 1
        gate.set()
        assert await running and await queued
        assert pool.in_flight == 0
        assert await pool.run(lambda: "again") == "again"   # capacity comes back
    finally:
        gate.set()
        pool.shutdown()
    with pytest.raises(Unavailable):
        await pool.run(lambda: None)


def test_pool_arguments_are_checked():
    with pytest.raises(ValueError):
        WorkerPool(threads=0)
    with pytest.raises(ValueError):
        WorkerPool(queue_limit=-1)


def test_default_pool_is_configurable():
    pool = configure_default_pool(threads=3, queue_limit=5)
    try:
        assert default_pool() is pool and (pool.threads, pool.queue_limit) == (3, 5)
    finally:
        configure_default_pool()


async def test_open_is_prepared_on_the_pool_and_busy_pool_refuses(tiny_package):
    facade = EngineFacade.from_packages([tiny_package])
    pool = WorkerPool(threads=1, queue_limit=0)
    facade.workers = pool
    seen = []
    prepare = facade.engine.prepare_open

    def spy(request):
        seen.append(threading.current_thread().name)
        return prepare(request)

    facade.engine.prepare_open = spy
    gate = threading.Event()
    try:
        opened = await facade.open(OpenRequest(messages=[{"role": "user", "content": "Hello there"}]))
        assert opened.prompt_tokens > 0 and seen == ["npc-worker_0"]
        stream = await facade.generate(GenerateRequest(open=OpenRequest(prompt="Hi")))
        await stream.aclose()
        assert len(seen) == 2
        blocker = asyncio.ensure_future(pool.run(gate.wait, 5))
        await asyncio.sleep(0.05)
        with pytest.raises(ResourceExhausted, match="server busy"):
            await facade.open(OpenRequest(prompt="Hi"))
        gate.set()
        await blocker
        with pytest.raises(InvalidArgument, match="messages is empty"):
            await facade.open(OpenRequest(messages=[]))   # validation runs in the prepare step too
    finally:
        gate.set()
        pool.shutdown()
        await facade.shutdown(drain=False)


@pytest.mark.parametrize("how", ["flag", "env"])
def test_an_empty_token_is_a_startup_error(how, tmp_path):
    import os

    args = [sys.executable, "-m", "npc_runtime.cli", "serve", "--port", "0", "--http-port", "-1",
            "--data-dir", str(tmp_path)]
    env = {k: v for k, v in os.environ.items() if k != "NPCRT_TOKEN"}
    if how == "flag":
        args += ["--token", ""]
    else:
        env["NPCRT_TOKEN"] = ""
    done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "token must not be empty" in lines[0], done.stderr
