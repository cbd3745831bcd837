"""`AsyncEngine`: the thread-safe asyncio facade the servers use.

One background thread owns the `Engine` (which is single-threaded). Calls become commands on a queue;
their results come back as asyncio futures. Every `generate` stream registers with the thread, which steps
ALL open streams together (`Engine.step`: one forward pass for all of them per round), so many concurrent
generates share the same forward passes. A consumer that stops iterating (client disconnect) cancels its
session's turn, freeing its place in the batch.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, replace
from typing import TypeVar

from npc_runtime.errors import FailedPrecondition, InvalidArgument, NpcRuntimeError, Unavailable
from npc_runtime.sessions.engine import Engine, EngineStats, ModelInfo, TickRequest, TickResult, TokenChunk
from npc_runtime.sessions.session import FinishReason, SessionStatus

_IDLE_WAIT_S = 0.05


@dataclass
class _Stream:
    session_id: str
    remaining: int
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue


_END = object()
T = TypeVar("T")


class AsyncEngine:
    def __init__(self, engine: Engine, *, evict_every_s: float = 5.0) -> None:
        self.engine = engine
        self._commands: queue.SimpleQueue = queue.SimpleQueue()
        self._streams: dict[str, _Stream] = {}
        self._accepting = True
        self._stopping = False
        self._drain = True
        self._evict_every_s = evict_every_s
        self._thread = threading.Thread(target=self._loop, name="npc-engine", daemon=True)
        self._thread.start()

    # -- plumbing -----------------------------------------------------------------------------------------
    async def _call(self, fn: Callable, *args, **kwargs):
        if not self._accepting:
            raise Unavailable("the engine is shutting down")
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._commands.put((fn, args, kwargs, loop, future))
        return await future

    @staticmethod
    def _resolve(loop: asyncio.AbstractEventLoop, future: asyncio.Future, result=None, error=None) -> None:
        def settle() -> None:
            if future.done():
                return
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(result)
        loop.call_soon_threadsafe(settle)

    def _loop(self) -> None:
        import time
        next_evict = time.monotonic() + self._evict_every_s
        while True:
            try:
                item = self._commands.get(timeout=0 if self._streams else _IDLE_WAIT_S)
            except queue.Empty:
                item = None
            while item is not None:
                fn, args, kwargs, loop, future = item
                try:
                    result, error = fn(*args, **kwargs), None
                except Exception as exc:  # every failure goes back to the awaiting caller
                    result, error = None, exc
                if future is not None:   # None: fire and forget (e.g. a stream closed by its consumer)
                    self._resolve(loop, future, result=result, error=error)
                try:
                    item = self._commands.get_nowait()
                except queue.Empty:
                    item = None
            if self._streams:
                self._step_streams()
            elif self._stopping:
                return
            if time.monotonic() >= next_evict:
                next_evict = time.monotonic() + self._evict_every_s
                for sid in self.engine.evict_idle():
                    self._end_stream(sid, error=FailedPrecondition(f"session {sid!r} was evicted (idle)"))

    def _push(self, stream: _Stream, item) -> None:
        stream.loop.call_soon_threadsafe(stream.queue.put_nowait, item)

    def _end_stream(self, session_id: str, *, error: Exception | None = None) -> None:
        stream = self._streams.pop(session_id, None)
        if stream is not None:
            self._push(stream, error if error is not None else _END)

    def _step_streams(self) -> None:
        requests = [TickRequest(sid, 0.0, st.remaining) for sid, st in self._streams.items()]
        try:
            results = self.engine.step(requests)
        except NpcRuntimeError:
            results = []   # a session vanished (closed/evicted): step them one by one to find it
            for request in requests:
                try:
                    results += self.engine.step([request])
                except NpcRuntimeError as exc:
                    self._end_stream(request.session_id, error=exc)
        for r in results:
            stream = self._streams.get(r.session_id)
            if stream is None:
                continue
            stream.remaining -= len(r.token_ids)
            finished, reason = r.finished, r.finish_reason
            if not finished and stream.remaining <= 0:
                extra = self.engine.end_turn(r.session_id, FinishReason.LENGTH)
                finished, reason = True, FinishReason.LENGTH.value
                r = replace(r, text_delta=r.text_delta + extra, finished=True, finish_reason=reason)
            if r.token_ids or r.text_delta or finished:
                self._push(stream, TokenChunk(r.session_id, r.token_ids, r.text_delta, finished, reason,
                                              r.logprobs, r.choice_probs))
            if finished:
                self._end_stream(r.session_id)

    # -- streams (run on the engine thread) ---------------------------------------------------------------
    def _start_stream(self, session_id: str, text, max_tokens: int, loop, q) -> None:
        if session_id in self._streams:
            raise FailedPrecondition(f"session {session_id!r} already has a generate stream")
        if text is not None:
            self.engine.append_input(session_id, text)
        info = self.engine.session_info(session_id)
        if info["status"] != SessionStatus.GENERATING.value:
            raise FailedPrecondition(f"session {session_id!r} finished its turn "
                                     f"({info['finish_reason']}); give text to start the next one")
        self._streams[session_id] = _Stream(session_id, max_tokens, loop, q)

    def _stop_stream(self, session_id: str) -> None:
        if self._streams.pop(session_id, None) is not None:
            try:
                self.engine.cancel(session_id)
            except NpcRuntimeError:
                pass

    # -- public API ---------------------------------------------------------------------------------------
    async def run(self, fn: Callable[[Engine], T]) -> T:
        """Runs `fn(engine)` on the engine thread between steps and returns its result (its exception is
        raised here). One thread hop; atomic with respect to every other call, so composite operations
        (open a session and read its info, several appends) need no locking. `fn` must not block."""
        return await self._call(fn, self.engine)

    async def list_models(self) -> list[ModelInfo]:
        return await self._call(self.engine.list_models)

    async def open_session(self, model: str, **kwargs) -> str:
        return await self._call(self.engine.open_session, model, **kwargs)

    async def append_input(self, session_id: str, text, **kwargs) -> None:
        return await self._call(self.engine.append_input, session_id, text, **kwargs)

    async def tick(self, requests: Sequence[TickRequest]) -> list[TickResult]:
        return await self._call(self.engine.tick, list(requests))

    async def cancel(self, session_id: str) -> None:
        await self._call(self._cancel, session_id)

    def _cancel(self, session_id: str) -> None:
        self.engine.cancel(session_id)
        stream = self._streams.pop(session_id, None)
        if stream is not None:
            self._push(stream, TokenChunk(session_id, [], "", True, FinishReason.CANCELLED.value))
            self._push(stream, _END)

    async def close_session(self, session_id: str) -> None:
        await self._call(self._close, session_id)

    def _close(self, session_id: str) -> None:
        self.engine.close_session(session_id)
        self._end_stream(session_id, error=FailedPrecondition(f"session {session_id!r} was closed"))

    async def evict_idle(self) -> list[str]:
        return await self._call(self.engine.evict_idle)

    async def stats(self) -> EngineStats:
        return await self._call(self.engine.stats)

    async def session_info(self, session_id: str) -> dict:
        return await self._call(self.engine.session_info, session_id)

    async def generate(self, session_id: str, text=None, *, max_tokens: int) -> AsyncIterator[TokenChunk]:
        """Streams token chunks; stopping iteration early (disconnect) cancels the session's turn."""
        if not isinstance(max_tokens, int) or max_tokens < 1:
            raise InvalidArgument("max_tokens must be an integer >= 1")
        q: asyncio.Queue = asyncio.Queue()
        await self._call(self._start_stream, session_id, text, max_tokens, asyncio.get_running_loop(), q)
        done = False
        try:
            while True:
                item = await q.get()
                if item is _END:
                    done = True
                    return
                if isinstance(item, Exception):
                    done = True
                    raise item
                yield item
        finally:
            if not done:
                self._commands.put((self._stop_stream, (session_id,), {}, None, None))

    async def shutdown(self, *, drain: bool = True) -> None:
        """Stop accepting calls; with drain, let open streams finish, else cancel them; stop the thread."""
        self._accepting = False
        if not drain:
            loop = asyncio.get_running_loop()
            future = loop.create_future()
            self._commands.put((self._cancel_all, (), {}, loop, future))
            await future
        self._stopping = True
        await asyncio.get_running_loop().run_in_executor(None, self._thread.join)

    def _cancel_all(self) -> None:
        for sid in list(self._streams):
            self._cancel(sid)
