"""`EngineFacade`: the one boundary between the servers / the agent and the engine thread.

    facade = EngineFacade.from_packages(["pkg/"], config=EngineConfig(max_sessions=64))   # or EngineFacade(engine)
    opened = await facade.open(OpenRequest(prompt="You are Bram.\\nPlayer: hi\\nBram:"))
    results = await facade.tick([TickRequest(opened.session_id, budget_ms=2.0, max_tokens=4)])
    stream = await facade.generate(GenerateRequest(session_id=opened.session_id, turns=(Turn(input="Hi"),)))
    async for chunk in stream: ...
    await facade.shutdown()

One background thread owns the `Engine` (single-threaded). Every operation is ONE submission to that thread
(one thread hop): its request is validated there once (`sessions/requests.py`), composite work (open + first
turn, a stream's later turns, closing the session a stream opened) happens there too. `submissions` counts
the hops per operation. Every open generate stream is stepped together (`Engine.step`: one forward pass for
all of them per round), so concurrent generates share forward passes. Chunks go back with no further hop and
one loop wake-up per step for ALL streams of that loop (`_Outbox`: one `call_soon_threadsafe` per step, not one
per token); a consumer takes everything that arrived since its last wake-up as one chunk, so a stream whose
consumer is busy (network writes, JSON) catches up with the engine instead of falling behind it. With
`stream_interval_s` (the server's stream_interval_ms) a consumer also waits that long between chunks, except
for the first one and one that ends a turn, so fast steps are written as fewer, larger messages. A consumer
that stops early (`aclose()`, disconnect, garbage collection) cancels its turn, or closes the session its
stream opened, without waiting.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
import weakref
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from npc_runtime.config import EngineConfig
from npc_runtime.decode.tokenizer import TextTokenizer
from npc_runtime.errors import FailedPrecondition, InternalError, NpcRuntimeError, Unavailable
from npc_runtime.sessions.engine import Engine, EngineStats, ModelInfo, PreparedOpen, TickResult, TokenChunk
from npc_runtime.sessions.requests import (UNBOUNDED_TOKENS, GenerateRequest, OpenedSession, OpenRequest,
                                           RequestLimits, TickRequest)
from npc_runtime.sessions.session import FinishReason
from npc_runtime.workers import WorkerPool, default_pool

log = logging.getLogger("npc_runtime.sessions.facade")
_IDLE_WAIT_S = 0.05
_HOP_EWMA = 0.1          # weight of the newest reply hop in its running estimate
_MIN_TICK_S = 0.0001     # what a tick whose budget was spent before it started still gets: nothing fits it
DEFAULT_EVICT_EVERY_S = 5.0
_END = object()


class _Sink:
    """One stream's items on its event loop: filled by the loop's delivery callback, drained by the consumer.
    `take` returns every chunk of the current turn that arrived since the last call as ONE chunk."""

    __slots__ = ("items", "waiter")

    def __init__(self) -> None:
        self.items: deque = deque()
        self.waiter: asyncio.Future | None = None

    def put(self, item) -> None:   # the loop's thread
        self.items.append(item)
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def take(self, hold_until: float = 0.0):
        """`hold_until` (loop time): tokens that arrive earlier wait for it and come out as one chunk, unless
        an item that ends something (a finished chunk, an error, the end) arrives: then at once."""
        loop = asyncio.get_running_loop()
        while not self.items or (hold_until and self._held(hold_until, loop)):   # (0: no pacing, nothing held)
            self.waiter = loop.create_future()
            timer = loop.call_at(hold_until, _wake, self.waiter) if self.items else None
            try:
                await self.waiter
            finally:
                self.waiter = None
                if timer is not None:
                    timer.cancel()
        first = self.items.popleft()
        while (isinstance(first, TokenChunk) and not first.finished and self.items
               and isinstance(self.items[0], TokenChunk) and self.items[0].turn == first.turn):
            _merge(first, self.items.popleft())
        return first

    def _held(self, hold_until: float, loop: asyncio.AbstractEventLoop) -> bool:
        last = self.items[-1]
        ends = not isinstance(last, TokenChunk) or last.finished
        return not ends and hold_until > loop.time()


def _wake(waiter: asyncio.Future) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _merge(into: TokenChunk, more: TokenChunk) -> None:
    """Appends `more` (the next chunk of the same turn) to `into`: tokens, text, per-token data, the end."""
    into.token_ids.extend(more.token_ids)
    into.text_delta += more.text_delta
    into.finished, into.finish_reason = more.finished, more.finish_reason
    if more.logprobs is not None:
        into.logprobs = (into.logprobs or []) + more.logprobs
    if more.choice_probs is not None:
        into.choice_probs = (into.choice_probs or []) + more.choice_probs


class _Outbox:
    """What the engine thread sends to one event loop. Items of a whole step are added at once; when the loop
    has taken everything before, ONE `call_soon_threadsafe` wakes it, else the pending wake-up takes them too
    (a busy loop gets several steps' tokens in one wake-up)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._lock = threading.Lock()
        self._items: list[tuple[_Sink, object]] = []

    def add(self, items: list[tuple[_Sink, object]]) -> None:   # the engine thread
        with self._lock:
            wake = not self._items
            self._items.extend(items)
        if wake:
            try:
                self.loop.call_soon_threadsafe(self._deliver)
            except RuntimeError:   # the loop is closed: nobody is left to read these streams
                with self._lock:
                    self._items.clear()

    def _deliver(self) -> None:   # the loop's thread
        with self._lock:
            items, self._items = self._items, []
        for sink, item in items:
            sink.put(item)


@dataclass
class _Stream:
    """A generate stream, as the engine thread keeps it."""
    request: GenerateRequest
    outbox: _Outbox
    sink: _Sink
    owned: bool                 # the stream opened the session: it closes it when it ends
    turn: int = 0
    remaining: int = UNBOUNDED_TOKENS


class GenerateStream:
    """The chunks of one generate call (an async iterator). `opened` names the session (with the prompt's
    token count when the stream opened it). Each chunk holds every token that arrived since the previous
    one (one or more engine steps). Leaving early: `await stream.aclose()` (or `async with`)."""

    def __init__(self, facade: "EngineFacade", opened: OpenedSession, sink: _Sink) -> None:
        self.opened = opened
        self._facade = facade
        self._sink = sink
        self._done = False
        self._interval = facade.stream_interval_s
        self._next = 0.0   # loop time before which tokens are held back (0: the first chunk goes at once)

    def __aiter__(self) -> "GenerateStream":
        return self

    async def __anext__(self) -> TokenChunk:
        if self._done:
            raise StopAsyncIteration
        item = await self._sink.take(self._next)
        if self._interval:   # pacing: fewer, larger messages when steps are fast (EngineFacade.stream_interval_s)
            self._next = asyncio.get_running_loop().time() + self._interval
        if item is _END:
            self._done = True
            raise StopAsyncIteration
        if isinstance(item, BaseException):
            self._done = True
            raise item
        return item

    async def aclose(self) -> None:
        """Stops the stream: its turn is cancelled (or its own session closed). Returns at once."""
        self._abandon()

    def _abandon(self) -> None:
        if not self._done:
            self._done = True
            self._facade._abandon(self.opened.session_id, self._sink)

    async def __aenter__(self) -> "GenerateStream":
        return self

    async def __aexit__(self, *exc) -> None:
        self._abandon()

    def __del__(self) -> None:   # a consumer that neither finished nor closed the stream (disconnect)
        self._abandon()


class EngineFacade:
    def __init__(self, engine: Engine, *, limits: RequestLimits | None = None,
                 evict_every_s: float = DEFAULT_EVICT_EVERY_S) -> None:
        """Takes ownership of `engine`: from now on only the facade's thread touches it. `limits`: the
        request size policy (else the engine's)."""
        self.engine = engine
        engine.defer_snapshots = True   # a finished turn's snapshot is taken after its caller has the answer
        if limits is not None:
            engine.limits = limits
        self.submissions: Counter[str] = Counter()   # engine-thread submissions (thread hops) per operation
        self.rounds = 0                              # engine steps that advanced the open streams together
        self.reply_hop_s = 0.0                       # running estimate: engine thread done -> caller resumed
        # streams opened from now on hand out at most one chunk per this many seconds, except the first one
        # and one that ends the turn (both at once); 0: one per engine step. [server] stream_interval_ms.
        self.stream_interval_s = 0.0
        self._default_model = engine.list_models()[0].name
        self._commands: queue.SimpleQueue = queue.SimpleQueue()
        self._streams: dict[str, _Stream] = {}
        self._outboxes: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()   # loop -> _Outbox
        self._pending: dict[_Outbox, list[tuple[_Sink, object]]] = {}   # engine thread: not yet sent
        self._accepting = True
        self._stopping = False
        self._evict_every_s = evict_every_s
        # renders, tokenizes and compiles open requests before their engine submission (None: default_pool())
        self.workers: WorkerPool | None = None
        self._thread = threading.Thread(target=self._loop, name="npc-engine", daemon=True)
        self._thread.start()

    @classmethod
    def from_packages(cls, paths: Sequence[str | Path], *, config: EngineConfig = EngineConfig(),
                      limits: RequestLimits = RequestLimits()) -> "EngineFacade":
        return cls(Engine.from_packages(paths, config=config, limits=limits))

    # -- facts, from any thread (nothing here walks engine state) ------------------------------------------
    @property
    def limits(self) -> RequestLimits:
        return self.engine.limits

    @limits.setter
    def limits(self, limits: RequestLimits) -> None:
        self.engine.limits = limits   # one reference swap; each request reads it once

    @property
    def default_model(self) -> str:
        return self._default_model

    @property
    def max_sessions(self) -> int:
        return int(self.engine.config.max_sessions)

    @property
    def sliding_window(self) -> bool:
        return bool(self.engine.config.sliding_window)

    def active_sessions(self) -> int:
        """Open sessions (an atomic read; for metrics scrapes)."""
        return self.engine.open_sessions

    def list_models_now(self) -> list[ModelInfo]:
        """The served models (fixed after construction)."""
        return self.engine.list_models()

    def tokenizer(self, model: str = "") -> TextTokenizer | None:
        """A model's tokenizer (read-only after load, safe from any thread)."""
        return self.engine.tokenizer(model or self._default_model)

    # -- operations: each is one submission to the engine thread -------------------------------------------
    async def list_models(self) -> list[ModelInfo]:
        return await self._submit("list_models", self.engine.list_models)

    async def stats(self) -> EngineStats:
        return await self._submit("stats", self.engine.stats)

    async def session_info(self, session_id: str) -> dict:
        return await self._submit("session_info", self.engine.session_info, session_id)

    async def open(self, request: OpenRequest) -> OpenedSession:
        return await self._submit("open", self.engine.open, await self._prepare(request))

    async def _prepare(self, request: OpenRequest) -> PreparedOpen | OpenRequest:
        """The request's heavy part (validation, context bound, chat template, tokenizing, constraint) on the
        bounded worker pool, so neither the event loop nor the engine thread runs it (a full pool raises
        ResourceExhausted "server busy"). A request that is no OpenRequest goes on as is: the engine's one
        validation names what is wrong with it."""
        if not isinstance(request, OpenRequest):
            return request
        if not self._accepting:
            raise Unavailable("the engine is shutting down")
        return await (self.workers or default_pool()).run(self.engine.prepare_open, request)

    async def tick(self, entries: Sequence[TickRequest], *, deadline: float | None = None,
                   received: float | None = None, reply_s: float = 0.0) -> list[TickResult]:
        """Frame-sliced tick; a bad entry fails alone (`TickResult.error`). `deadline`: a
        `time.perf_counter()` value, measured when the engine thread starts the tick (time queued counts);
        past it every entry fails with DeadlineExceeded.
        `received` (a `time.perf_counter()` value: when the caller got the request): the budget then counts
        from there, not from the engine's start, and ends early enough for the reply to get back: the thread
        hop back (measured here) and `reply_s` (the caller's own reply cost, e.g. encoding and sending). A hop
        that ate the budget leaves the tick a minimal budget, never an error."""
        items = list(entries)
        results, ended = await self._submit("tick", self._tick, items, deadline, received, reply_s)
        hop = time.perf_counter() - ended
        self.reply_hop_s += _HOP_EWMA * (hop - self.reply_hop_s)
        return results

    async def generate(self, request: GenerateRequest) -> GenerateStream:
        """Validates the request, opens its session (`open=`) and starts its first turn, in one hop; a bad
        request raises here, before any chunk. Then iterate the stream."""
        loop = asyncio.get_running_loop()
        outbox = self._outboxes.get(loop)
        if outbox is None:
            outbox = self._outboxes.setdefault(loop, _Outbox(loop))
        sink = _Sink()
        prepared = await self._prepare(request.open) if isinstance(request, GenerateRequest) and request.open else None
        opened = await self._submit("generate", self._start, request, outbox, sink, prepared)
        return GenerateStream(self, opened, sink)

    async def cancel(self, session_id: str) -> bool:
        """Ends the session's turn (CANCELLED; its stream, if any, ends with that chunk). True when a turn
        was in progress."""
        return await self._submit("cancel", self._cancel, session_id)

    async def close(self, session_id: str) -> int:
        """Closes the session (its stream, if any, fails with FailedPrecondition); returns its context tokens."""
        return await self._submit("close", self._close, session_id)

    async def save_session(self, session_id: str, *, include_kv: bool = False) -> bytes:
        """A snapshot of the session (it stays open); see `Engine.save_session` and sessions/snapshot.py."""
        return await self._submit("save", self.engine.save_session, session_id, include_kv=include_kv)

    async def restore_session(self, data: bytes, *, session_id: str | None = None) -> OpenedSession:
        """A session rebuilt from a snapshot (this process or another); see `Engine.restore_session`."""
        return await self._submit("restore", self.engine.restore_session, data, session_id=session_id)

    async def truncate(self, session_id: str, keep: int) -> int:
        """Between turns: keeps the session's first `keep` tokens (KV included); see `Engine.truncate`."""
        return await self._submit("truncate", self.engine.truncate, session_id, keep)

    async def shutdown(self, *, drain: bool = True) -> None:
        """Stops accepting calls; with drain, open streams finish, else they are cancelled; stops the thread."""
        if not drain and self._accepting:
            await self._submit("shutdown", self._cancel_all)
        self._accepting = False
        self._stopping = True
        await asyncio.get_running_loop().run_in_executor(None, self._thread.join)

    # -- plumbing -----------------------------------------------------------------------------------------
    async def _submit(self, op: str, fn: Callable, *args, **kwargs):
        if not self._accepting:
            raise Unavailable("the engine is shutting down")
        self.submissions[op] += 1
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._commands.put((fn, args, kwargs, loop, future))
        return await future

    def _abandon(self, session_id: str, sink: _Sink) -> None:
        """Fire and forget (any thread, also a finalizer): stop a stream whose consumer went away. `sink`
        (the stream's inbox) names the stream: a later stream on the same session is left alone."""
        self.submissions["abandon"] += 1
        self._commands.put((self._stop_stream, (session_id, sink), {}, None, None))

    @staticmethod
    def _settle(future: asyncio.Future, result, error) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

    def _loop(self) -> None:
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
                if future is not None:   # None: fire and forget
                    try:
                        loop.call_soon_threadsafe(self._settle, future, result, error)
                    except RuntimeError:   # the caller's event loop is closed: nobody is left to answer
                        log.debug("engine thread: an answer for a closed event loop was dropped")
                self._write_snapshots()   # after the answer, before the next command can touch the session
                try:
                    item = self._commands.get_nowait()
                except queue.Empty:
                    item = None
            self._flush()
            if self._streams:
                self._guarded(self._step_streams)
                self._flush()
                self._write_snapshots()
            elif self._stopping:
                return
            if time.monotonic() >= next_evict:
                next_evict = time.monotonic() + self._evict_every_s
                self._guarded(self._evict)
                self._flush()

    def _evict(self) -> None:
        for sid in self.engine.evict_idle():
            self._end(sid, FailedPrecondition(f"session {sid!r} was evicted (idle)"))

    def _write_snapshots(self) -> None:
        """Takeover snapshots of the turns that just ended (engine.defer_snapshots). A failure loses that
        snapshot only (logged): the session itself, its answer and the streams are untouched."""
        try:
            self.engine.write_deferred_snapshots()
        except Exception:  # noqa: BLE001 - a snapshot is best effort; the engine thread must go on
            log.exception("engine thread: writing a session snapshot failed")

    def _guarded(self, work: Callable[[], None]) -> None:
        """Runs engine-thread work that no caller awaits (stepping the streams, the idle sweep). A bug in it
        must not kill the engine thread (every later request would hang): it is logged once with its
        traceback, the streams it was stepping end with INTERNAL, and the loop goes on."""
        try:
            work()
        except Exception as exc:  # noqa: BLE001 - see the docstring: the thread must survive a bug
            log.exception("engine thread: %s failed", getattr(work, "__name__", "work"))
            failure = InternalError(f"the engine failed while decoding ({type(exc).__name__}); the stream was "
                                    "ended, the server goes on")
            failure.__cause__ = exc
            for sid in list(self._streams):
                self._end(sid, failure)

    # -- ticks (engine thread) ----------------------------------------------------------------------------
    def _tick(self, entries: list[TickRequest], deadline: float | None, received: float | None,
              reply_s: float) -> tuple[list[TickResult], float]:
        if received is not None:
            budget_end = received + self._least_budget_s(entries) - reply_s - self.reply_hop_s
            budget_end = max(budget_end, time.perf_counter() + _MIN_TICK_S)
            deadline = budget_end if deadline is None else min(deadline, budget_end)
        return self.engine.tick(entries, deadline=deadline), time.perf_counter()

    def _least_budget_s(self, entries: list[TickRequest]) -> float:
        """The smallest budget among the entries (the tick's own), seconds; an entry whose budget the engine
        will refuse is left out (it fails alone with its own message)."""
        limits = self.engine.limits
        least = None
        for e in entries:
            budget = getattr(e, "budget_ms", None)
            if budget is None:
                budget = limits.default_budget_ms
            if isinstance(budget, (int, float)) and 0 <= budget <= limits.max_budget_ms:
                least = budget if least is None else min(least, budget)
        return (limits.max_budget_ms if least is None else least) / 1000.0

    # -- streams (engine thread) --------------------------------------------------------------------------
    def _push(self, stream: _Stream, item) -> None:
        """Queues an item for the stream's consumer; `_flush` sends it (once per step for every stream)."""
        pending = self._pending.get(stream.outbox)
        if pending is None:
            pending = self._pending[stream.outbox] = []
        pending.append((stream.sink, item))

    def _flush(self) -> None:
        if self._pending:
            pending, self._pending = self._pending, {}
            for outbox, items in pending.items():
                outbox.add(items)

    def _start(self, request: GenerateRequest, outbox: _Outbox, sink: _Sink,
               prepared: PreparedOpen | None = None) -> OpenedSession:
        if request.open is None and request.session_id in self._streams:
            raise FailedPrecondition(f"session {request.session_id!r} already has a generate stream")
        opened = self.engine.start(request, prepared if isinstance(prepared, PreparedOpen) else None)
        stream = _Stream(request, outbox, sink, owned=request.open is not None)
        if stream.owned:   # closed by the stream when it ends: a takeover snapshot would be written for nobody
            self.engine.without_snapshots(opened.session_id)
        stream.remaining = request.turns[0].max_tokens or UNBOUNDED_TOKENS
        self._streams[opened.session_id] = stream
        return opened

    def _end(self, session_id: str, last=None) -> None:
        """Removes a stream: closes the session it opened, then ends its queue (with `last`: an error)."""
        stream = self._streams.pop(session_id, None)
        if stream is None:
            return
        if stream.owned:
            try:
                self.engine.close_session(session_id)
            except NpcRuntimeError:
                pass   # already gone (evicted, closed)
        self._push(stream, _END if last is None else last)

    def _step_streams(self) -> None:
        self.rounds += 1
        results = self.engine.step({sid: st.remaining for sid, st in self._streams.items()})
        for r in results:
            stream = self._streams.get(r.session_id)
            if stream is None:
                continue
            if r.error is not None:
                self._end(r.session_id, r.error)
                continue
            stream.remaining -= len(r.token_ids)
            finished, reason, text = r.finished, r.finish_reason, r.text_delta
            if not finished and stream.remaining <= 0:   # the turn's own max_tokens
                text += self.engine.end_turn(r.session_id, FinishReason.LENGTH)
                finished, reason = True, FinishReason.LENGTH
            if r.token_ids or text or finished:
                self._push(stream, TokenChunk(r.session_id, r.token_ids, text, finished, reason, r.logprobs,
                                              r.choice_probs, stream.turn))
            if finished:
                self._next_turn(stream, r.session_id)

    def _next_turn(self, stream: _Stream, session_id: str) -> None:
        turns = stream.request.turns
        if stream.turn + 1 >= len(turns):
            self._end(session_id)
            return
        stream.turn += 1
        turn = turns[stream.turn]
        try:
            self.engine.begin(session_id, turn)   # validated with the request; may not fit the context
        except NpcRuntimeError as exc:
            self._end(session_id, exc)
            return
        stream.remaining = turn.max_tokens or UNBOUNDED_TOKENS

    def _stop_stream(self, session_id: str, sink: _Sink) -> None:
        stream = self._streams.get(session_id)
        if stream is None or stream.sink is not sink:
            return   # it ended already (a new stream may have started on the session since)
        if not stream.owned:
            try:
                self.engine.cancel(session_id)
            except NpcRuntimeError:
                pass
        self._end(session_id)

    def _cancel(self, session_id: str) -> bool:
        running = self.engine.cancel(session_id)
        stream = self._streams.get(session_id)
        if stream is not None:
            self._push(stream, TokenChunk(session_id, [], "", True, FinishReason.CANCELLED, turn=stream.turn))
            self._end(session_id)
        return running

    def _close(self, session_id: str) -> int:
        tokens = self.engine.close_session(session_id)
        self._end(session_id, FailedPrecondition(f"session {session_id!r} was closed"))
        return tokens

    def _cancel_all(self) -> None:
        for sid in list(self._streams):
            self._cancel(sid)
