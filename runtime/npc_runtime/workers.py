"""`WorkerPool`: a bounded pool of threads for heavy per-request work (chat-template rendering, tokenizing,
constraint / JSON-schema compiling, FSM YAML parsing).

    pool = WorkerPool(threads=2, queue_limit=64)
    value = await pool.run(fn, *args, **kwargs)     # from the event loop; fn runs on a worker thread
    value = pool.call(fn, *args, **kwargs)          # from any other thread (blocks that thread)
    pool.shutdown()

Why: such work is CPU-bound and its cost grows with what a client sends. Run on the asyncio loop it stalls
every other client (health probes included); run on the engine thread it stalls every session's decoding.
On a few bounded threads it competes for the CPU like any thread, but the loop and the engine thread keep
their turns (the GIL switches every few ms), so liveness holds while one maximal request is prepared.

Bounded: at most `threads` jobs run and at most `queue_limit` wait; one more is refused at once with
`ResourceExhausted("server busy ...")` (gRPC RESOURCE_EXHAUSTED / HTTP 429) instead of queueing without
limit. The pool never swallows an exception: `run`/`call` raise what `fn` raised.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from npc_runtime.errors import ResourceExhausted, Unavailable

T = TypeVar("T")

DEFAULT_THREADS = 2
DEFAULT_QUEUE_LIMIT = 64


class WorkerPool:
    """`threads` worker threads; at most `threads + queue_limit` jobs admitted at once."""

    def __init__(self, *, threads: int = DEFAULT_THREADS, queue_limit: int = DEFAULT_QUEUE_LIMIT,
                 name: str = "npc-worker") -> None:
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        if queue_limit < 0:
            raise ValueError(f"queue_limit must be >= 0, got {queue_limit}")
        self.threads = threads
        self.queue_limit = queue_limit
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=name)
        self._lock = threading.Lock()
        self._admitted = 0          # running + waiting
        self._closed = False
        self.refused = 0            # jobs refused because the pool was full (for metrics / tests)

    @property
    def capacity(self) -> int:
        return self.threads + self.queue_limit

    @property
    def in_flight(self) -> int:
        """Jobs running or waiting now."""
        return self._admitted

    def submit(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> Future:
        """Admits one job or raises `ResourceExhausted` at once when `capacity` jobs are already in."""
        with self._lock:
            if self._closed:
                raise Unavailable("the server is shutting down")
            if self._admitted >= self.capacity:
                self.refused += 1
                raise ResourceExhausted(
                    f"server busy: {self.threads} worker thread(s) and {self.queue_limit} queued request(s) in "
                    "use ([server] worker_threads / worker_queue); retry later")
            self._admitted += 1
        try:
            future = self._executor.submit(fn, *args, **kwargs)
        except RuntimeError as exc:  # executor shut down between the check and the submit
            self._release(None)
            raise Unavailable("the server is shutting down") from exc
        future.add_done_callback(self._release)
        return future

    def _release(self, _future: Future | None) -> None:
        with self._lock:
            self._admitted -= 1

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Runs `fn(*args, **kwargs)` on a worker thread and awaits its result (or its exception).
        Cancelling the awaiting task does not interrupt a job already running; it still counts until done."""
        return await asyncio.wrap_future(self.submit(fn, *args, **kwargs))

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Blocking form of `run` for code on other threads. Never call it from a worker thread (it could
        wait on itself) nor from the event loop (it would block it)."""
        return self.submit(fn, *args, **kwargs).result()

    def shutdown(self, *, wait: bool = False, cancel_queued: bool = True) -> None:
        """Refuses new jobs; running ones finish; queued ones are cancelled (their callers get CancelledError),
        or with cancel_queued=False run first."""
        with self._lock:
            self._closed = True
        self._executor.shutdown(wait=wait, cancel_futures=cancel_queued)


_default: WorkerPool | None = None
_default_lock = threading.Lock()


def default_pool() -> WorkerPool:
    """The process-wide pool, created with the defaults on first use unless `configure_default_pool` ran
    first (assembly/serve configures it from [server] worker_threads / worker_queue)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = WorkerPool()
        return _default


def configure_default_pool(*, threads: int = DEFAULT_THREADS, queue_limit: int = DEFAULT_QUEUE_LIMIT) -> WorkerPool:
    """Replaces the process-wide pool (the old one finishes the jobs it admitted, then its threads end)."""
    global _default
    with _default_lock:
        old, _default = _default, WorkerPool(threads=threads, queue_limit=queue_limit)
    if old is not None:
        old.shutdown(wait=False, cancel_queued=False)
    return _default
