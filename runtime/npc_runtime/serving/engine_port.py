"""What the serving layer needs from the engine, in one adapter over `sessions.AsyncEngine`.

Servicers and the HTTP app call only this class. Composite operations (open a session and report its prompt
size, a Tick whose bad entries fail alone) run as ONE command on the engine thread, so they are atomic with
respect to other requests and cost one thread hop.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
import time
from dataclasses import dataclass, replace
from typing import Any

from npc_runtime.config import SessionLimits
from npc_runtime.decode.constraints import ConstraintSpec
from npc_runtime.decode.sampling import SamplingParams
from npc_runtime.errors import DeadlineExceeded, NpcRuntimeError
from npc_runtime.sessions.async_engine import AsyncEngine
from npc_runtime.sessions.engine import Engine, ModelInfo, TickRequest, TickResult, TokenChunk

# Generate with max_tokens 0 runs until the session's own max_new_tokens ends the turn.
UNBOUNDED_TOKENS = 1 << 30


@dataclass(frozen=True)
class OpenedSession:
    session_id: str
    model: str
    prompt_tokens: int          # tokens of the first turn (prefix + prompt)
    cached_prefix_tokens: int   # of those, whose KV came from the prefix cache (looked up at open)


@dataclass(frozen=True)
class TickEntryError:
    session_id: str
    error: NpcRuntimeError


@dataclass(frozen=True, kw_only=True)
class TickItem:
    session_id: str
    budget_ms: float
    max_tokens: int                 # 0 = no limit but the budget
    new_input: str | None = None
    constraint: ConstraintSpec | None = None


class EnginePort:
    def __init__(self, engine: AsyncEngine) -> None:
        self._async = engine
        self._engine: Engine = engine.engine
        self._default_model = self._engine.list_models()[0].name

    @classmethod
    def from_engine(cls, engine: Engine | AsyncEngine | "EnginePort") -> "EnginePort":
        if isinstance(engine, EnginePort):
            return engine
        if isinstance(engine, Engine):
            engine = AsyncEngine(engine)
        return cls(engine)

    async def _on_engine_thread(self, fn, *args, **kwargs) -> Any:
        # AsyncEngine runs `fn` on its thread between steps: atomic, one thread hop
        return await self._async.run(lambda _engine: fn(*args, **kwargs))

    @property
    def async_engine(self) -> AsyncEngine:
        """The engine's asyncio facade (for services beside NpcRuntime, e.g. the agent's dialogue model)."""
        return self._async

    @property
    def default_model(self) -> str:
        return self._default_model

    # -- facts --------------------------------------------------------------------------------------------
    @property
    def max_sessions(self) -> int:
        return int(self._engine.config.max_sessions)

    @property
    def sliding_window(self) -> bool:
        return bool(self._engine.config.sliding_window)

    def active_sessions(self) -> int:
        """Open sessions (any thread; read at metrics scrape time)."""
        return self._engine.open_sessions

    def list_models_now(self) -> list[ModelInfo]:
        return self._engine.list_models()

    async def list_models(self) -> list[ModelInfo]:
        return await self._async.list_models()

    async def stats(self):
        return await self._async.stats()

    def _model_name(self, model: str) -> str:
        return model or self._default_model

    # -- sessions -----------------------------------------------------------------------------------------
    async def open_session(self, model: str, *, npc_id: str = "", prefix: str = "", prompt: str = "",
                           apply_chat_template: bool = False, sampling: SamplingParams | None = None,
                           limits: SessionLimits | None = None,
                           constraint: ConstraintSpec | None = None) -> OpenedSession:
        model = self._model_name(model)

        def run() -> OpenedSession:
            if apply_chat_template:
                messages = ([{"role": "system", "content": prefix}] if prefix else []) + \
                           [{"role": "user", "content": prompt}]
                text = self._engine.apply_chat_template(model, messages, add_generation_prompt=True)
            else:
                text = prefix + prompt
            return self._open(model, text, npc_id=npc_id, sampling=sampling, limits=limits, constraint=constraint)

        return await self._on_engine_thread(run)

    async def open_chat(self, model: str, *, messages: list[dict], npc_id: str = "",
                        sampling: SamplingParams | None = None,
                        limits: SessionLimits | None = None) -> OpenedSession:
        model = self._model_name(model)

        def run() -> OpenedSession:
            text = self._engine.apply_chat_template(model, messages, add_generation_prompt=True)
            return self._open(model, text, npc_id=npc_id, sampling=sampling, limits=limits, constraint=None)

        return await self._on_engine_thread(run)

    def _open(self, model: str, text: str, **kwargs) -> OpenedSession:
        sid = self._engine.open_session(model, prompt=text, **kwargs)
        info = self._engine.session_info(sid)
        return OpenedSession(session_id=sid, model=model, prompt_tokens=int(info["context_tokens"]),
                             cached_prefix_tokens=int(info.get("prefix_hit_tokens") or 0))

    async def append_input(self, session_id: str, text: str, *, constraint: ConstraintSpec | None = None) -> None:
        await self._async.append_input(session_id, text, constraint=constraint)

    async def cancel(self, session_id: str) -> bool:
        """True when a turn was in progress."""
        info = await self._async.session_info(session_id)
        await self._async.cancel(session_id)
        return info.get("status") == "generating"

    async def close_session(self, session_id: str) -> int:
        """The session's context tokens when closed."""
        info = await self._async.session_info(session_id)
        await self._async.close_session(session_id)
        return int(info.get("context_tokens") or 0)

    # -- decoding -----------------------------------------------------------------------------------------
    async def tick(self, items: Sequence[TickItem], *,
                   deadline: float | None = None) -> list[TickResult | TickEntryError]:
        """One engine tick over every entry that is valid; an entry that fails (unknown session, finished
        turn without new input, input over the context) gets a TickEntryError and the others go on.
        `deadline` (a `time.perf_counter()` value): budgets are capped to end by then, measured when the
        engine thread starts the tick; past it, every entry fails with DeadlineExceeded."""
        return await self._on_engine_thread(self._tick, list(items), deadline)

    def _tick(self, items: list[TickItem], deadline: float | None) -> list[TickResult | TickEntryError]:
        if deadline is not None:
            left_ms = (deadline - time.perf_counter()) * 1000.0
            if left_ms <= 0:
                late = DeadlineExceeded("the call's deadline passed while the Tick waited for the engine")
                return [TickEntryError(item.session_id, late) for item in items]
            items = [replace(item, budget_ms=min(item.budget_ms, left_ms)) for item in items]
        # the engine fails bad entries alone (TickResult.error), applying nothing of them
        results = self._engine.tick([TickRequest(item.session_id, item.budget_ms,
                                                 item.max_tokens or UNBOUNDED_TOKENS,
                                                 new_input=item.new_input, constraint=item.constraint)
                                     for item in items])
        return [TickEntryError(r.session_id, r.error) if r.error is not None else r for r in results]

    def generate(self, session_id: str, text: str | None = None, *,
                 max_tokens: int = 0) -> AsyncIterator[TokenChunk]:
        """Chunks of the session's turn; closing the iterator early cancels the turn (frees its batch place)."""
        return self._async.generate(session_id, text, max_tokens=max_tokens or UNBOUNDED_TOKENS)

    async def shutdown(self, *, drain: bool = True) -> None:
        await self._async.shutdown(drain=drain)
