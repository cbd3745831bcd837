"""`Engine`: the synchronous, single-threaded decode engine over one or more model packages.

    engine = Engine.from_packages(["pkg/"], config=EngineConfig(max_sessions=64))
    sid = engine.open_session("npc-dialogue", prompt="You are Bram, the blacksmith.\\nPlayer: hi\\nBram:")
    results = engine.tick([TickRequest(sid, budget_ms=2.0, max_tokens=4)])   # once per game frame
    for chunk in engine.generate(sid, "Player: what do you sell?\\nBram:", max_tokens=64): ...

See docs/engine.md. `AsyncEngine` (sessions/async_engine.py) is the thread-safe asyncio facade.
"""

from __future__ import annotations

import math
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from npc_runtime.config import EngineConfig, SessionLimits
from npc_runtime.decode.constraints import Constraint, ConstraintSpec, compile_constraint
from npc_runtime.decode.onnx_model import DecoderModel, DecoderOptions, open_decoder
from npc_runtime.decode.package import ModelPackage, load_package
from npc_runtime.decode.sampling import SamplingParams
from npc_runtime.decode.tokenizer import TextTokenizer
from npc_runtime.errors import (AlreadyExists, FailedPrecondition, InvalidArgument, NotFound,
                                NpcRuntimeError, ResourceExhausted)
from npc_runtime.sessions.cost_model import StepCostModel
from npc_runtime.sessions.prefix_cache import PrefixCache
from npc_runtime.sessions.scheduler import Scheduler
from npc_runtime.sessions.session import FinishReason, Session, SessionStatus

_TOMBSTONES = 4096
_TICK_HISTORY = 2048
_MAX_STARVED_S = 10.0


@dataclass(frozen=True)
class ModelInfo:
    name: str
    path: str
    kind: str
    family: str
    precision: str
    target: str
    vocab_size: int
    context_length: int         # max tokens per session as served (min of package and config)
    kv_layout: str
    max_sessions: int
    kv_bytes_per_token: int
    has_chat_template: bool


@dataclass(slots=True)
class TickRequest:
    session_id: str
    budget_ms: float            # wall time this tick may spend, shared by all sessions in the call
    max_tokens: int             # at most this many new tokens for this session in this tick
    new_input: str | Sequence[int] | None = None   # starts a new turn first (like append_input)
    constraint: ConstraintSpec | Constraint | None = None   # the new turn's constraint (with new_input only)


@dataclass(slots=True)
class TickStats:
    engine_ms: float            # wall time of the whole tick call
    steps: int                  # forward passes this session took part in
    prefill_tokens: int         # input tokens fed this tick
    context_tokens: int         # tokens in the session's context after the tick
    budget_limited: bool        # work remained but the next step was predicted to exceed the budget
    max_batch: int = 0          # largest batch (rows) of the passes this session took part in (prefill: 1)
    pending_prefill_tokens: int = 0   # input tokens still to prefill after the tick


@dataclass(slots=True)
class TickResult:
    session_id: str
    token_ids: list[int]
    text_delta: str
    finished: bool
    finish_reason: str | None   # length | stop | eos | cancelled | evicted | error | context_full
    stats: TickStats
    error: NpcRuntimeError | None = None   # this entry failed alone (nothing of it was applied); others ran
    logprobs: list[float] | None = None    # per token of token_ids, when SamplingParams.logprobs
    choice_probs: list[dict[int, float] | None] | None = None   # per token: allowed alternatives (constrained)


@dataclass(slots=True)
class TokenChunk:
    session_id: str
    token_ids: list[int]
    text_delta: str
    finished: bool
    finish_reason: str | None
    logprobs: list[float] | None = None    # per token of token_ids, when SamplingParams.logprobs
    choice_probs: list[dict[int, float] | None] | None = None   # per token: allowed alternatives (constrained)


@dataclass(frozen=True)
class EngineStats:
    models: int
    sessions_open: int
    sessions_generating: int
    steps: int
    decode_rows: int            # sum of batch sizes of decode passes
    tokens_generated: int
    prefill_tokens: int
    slot_moves: int
    evicted: int
    kv_pool_bytes: int
    prefix_cache_entries: int
    prefix_cache_bytes: int
    prefix_cache_hit_tokens: int
    prefix_cache_miss_tokens: int
    tick_ms_p50: float
    tick_ms_p99: float


@dataclass
class _Model:
    package: ModelPackage
    decoder: DecoderModel
    tokenizer: TextTokenizer
    scheduler: Scheduler
    prefix_cache: PrefixCache | None
    capacity: int
    constraints: dict = field(default_factory=dict)   # ConstraintSpec -> compiled Constraint


@dataclass(slots=True)
class _Work:
    """What one session may still do in the current tick / step call."""
    session: Session
    allowance: int
    tokens: list[int] = field(default_factory=list)
    steps: int = 0
    prefill_tokens: int = 0
    max_batch: int = 0
    limited: bool = False
    logprobs: list[float] | None = None
    choice_probs: list[dict[int, float] | None] | None = None


class Engine:
    def __init__(self, models: dict[str, _Model], *, config: EngineConfig) -> None:
        self.config = config
        self._models = models
        self._sessions: dict[str, Session] = {}
        self._gone: OrderedDict[str, str] = OrderedDict()   # session id -> why it is gone (evicted)
        self._tick_ms: deque[float] = deque(maxlen=_TICK_HISTORY)
        self._tick_overhead_s = 0.0
        self._prefill_tokens = 0
        self._evicted = 0
        # per model: budget (s) of consecutive ticks in which nothing fit; spent on one single-row step (see tick)
        self._starved_s: dict[str, float] = {}

    # -- construction -------------------------------------------------------------------------------------
    @classmethod
    def from_packages(cls, paths: Sequence[str | Path], *, config: EngineConfig = EngineConfig()) -> "Engine":
        config.validate()
        if not paths:
            raise InvalidArgument("give at least one model package directory")
        models: dict[str, _Model] = {}
        for path in paths:
            package = load_package(path, verify_hashes=config.verify_hashes)
            if package.kind != "causal-lm":
                raise InvalidArgument(f"{path}: kind {package.kind!r} cannot be served by the decode engine")
            if package.name in models:
                raise AlreadyExists(f"two packages are named {package.name!r}; rename one in its manifest")
            decoder = open_decoder(package, DecoderOptions(max_slots=config.max_sessions,
                                                           capacity=config.max_context,
                                                           intra_op_threads=config.intra_op_threads,
                                                           spinning=config.intra_op_spinning,
                                                           flush_denormals=config.flush_denormals))
            models[package.name] = cls._wrap(package, decoder, config)
        engine = cls(models, config=config)
        if config.warmup:
            engine.warmup()
        return engine

    @classmethod
    def from_decoder(cls, name: str, decoder: DecoderModel, tokenizer: TextTokenizer | None, *,
                     config: EngineConfig = EngineConfig(), eos_ids: Sequence[int] = ()) -> "Engine":
        """An engine over any `DecoderModel` (tests use a fake one); tokenizer None: token ids only."""
        config.validate()
        cache = (PrefixCache(max_bytes=config.prefix_cache_bytes, block_tokens=config.prefix_block_tokens)
                 if config.prefix_cache_bytes else None)
        scheduler = Scheduler(decoder, max_prefill_chunk=config.max_prefill_chunk,
                              sliding_window=config.sliding_window, prefix_cache=cache,
                              eos_ids=eos_ids, cost_model=StepCostModel())
        model = _Model(package=None, decoder=decoder, tokenizer=tokenizer, scheduler=scheduler,
                       prefix_cache=cache, capacity=min(config.max_context, decoder.capacity))
        return cls({name: model}, config=config)

    @staticmethod
    def _wrap(package: ModelPackage, decoder: DecoderModel, config: EngineConfig) -> _Model:
        tokenizer = TextTokenizer.from_package(package)
        cache = (PrefixCache(max_bytes=config.prefix_cache_bytes, block_tokens=config.prefix_block_tokens)
                 if config.prefix_cache_bytes else None)
        scheduler = Scheduler(decoder, max_prefill_chunk=config.max_prefill_chunk,
                              sliding_window=config.sliding_window, prefix_cache=cache,
                              eos_ids=package.special_tokens.eos, cost_model=StepCostModel())
        return _Model(package=package, decoder=decoder, tokenizer=tokenizer, scheduler=scheduler,
                      prefix_cache=cache, capacity=min(config.max_context, decoder.capacity))

    def warmup(self, *, repeats: int = 3) -> None:
        """Run decode passes at batch sizes 1, 2, 4, ... and prefill chunks 16, 32, ... on empty slots to seed
        the step cost model (frame slicing needs a prediction before the first real step)."""
        for model in self._models.values():
            decoder, costs = model.decoder, model.scheduler.costs
            if model.scheduler.free_slots != decoder.max_slots:
                continue
            chunk = 16
            while chunk <= min(self.config.max_prefill_chunk, model.capacity - 1):
                ids = np.ones(chunk, np.int64)
                for r in range(repeats):
                    t0 = time.perf_counter()
                    decoder.prefill(0, ids, 0)
                    if r:
                        costs.record_prefill(chunk, time.perf_counter() - t0)
                chunk *= 2
            batch = 1
            while True:
                ids = np.ones(batch, np.int64)
                lens = np.full(batch, min(32, model.capacity - 2), np.int64)
                for r in range(repeats + 1):
                    t0 = time.perf_counter()
                    logits = decoder.decode(0, ids, lens)
                    np.argmax(logits, axis=-1)
                    if r:
                        costs.record_decode(batch, time.perf_counter() - t0)
                if batch == decoder.max_slots:
                    break
                batch = min(batch * 2, decoder.max_slots)

    # -- models and sessions ------------------------------------------------------------------------------
    @property
    def open_sessions(self) -> int:
        """Open sessions. Safe from any thread (one atomic read, no engine state is walked)."""
        return len(self._sessions)

    def list_models(self) -> list[ModelInfo]:
        infos = []
        for name, m in self._models.items():
            pkg = m.package
            arch = pkg.architecture if pkg else None
            infos.append(ModelInfo(
                name=name, path=str(pkg.path) if pkg else "", kind=pkg.kind if pkg else "causal-lm",
                family=arch.family if arch else "", precision=pkg.precision if pkg else "",
                target=pkg.target if pkg else "", vocab_size=m.decoder.vocab_size, context_length=m.capacity,
                kv_layout=pkg.kv_cache.layout if pkg else "", max_sessions=m.decoder.max_slots,
                kv_bytes_per_token=m.decoder.kv_bytes_per_token,
                has_chat_template=bool(pkg and pkg.chat_template)))
        return infos

    def tokenizer(self, model: str) -> TextTokenizer:
        return self._model(model).tokenizer

    def apply_chat_template(self, model: str, messages: list[dict], *, add_generation_prompt: bool = True) -> str:
        """The package's chat template (sandboxed jinja2) applied to [{"role": ..., "content": ...}, ...]."""
        tokenizer = self._model(model).tokenizer
        if tokenizer is None:
            raise InvalidArgument(f"model {model!r} has no tokenizer")
        return tokenizer.apply_chat_template(messages, add_generation_prompt=add_generation_prompt)

    def _model(self, name: str) -> _Model:
        model = self._models.get(name)
        if model is None:
            raise NotFound(f"unknown model {name!r}; served models: {sorted(self._models)}")
        return model

    def _session(self, session_id: str) -> Session:
        session = self._sessions.get(session_id)
        if session is None:
            why = self._gone.get(session_id)
            if why is not None:
                raise FailedPrecondition(f"session {session_id!r} was {why}; open a new session")
            raise NotFound(f"unknown session {session_id!r}")
        return session

    def _encode(self, model: _Model, text: str | Sequence[int], *, first: bool) -> list[int]:
        if isinstance(text, str):
            if model.tokenizer is None:
                raise InvalidArgument("this model has no tokenizer: give token ids")
            return model.tokenizer.encode(text, add_special_tokens=first)
        try:
            ids = [int(t) for t in text]
        except (TypeError, ValueError) as exc:
            raise InvalidArgument("input must be a string or a list of token ids") from exc
        if any(t < 0 or t >= model.decoder.vocab_size for t in ids):
            raise InvalidArgument(f"token ids must be in [0, {model.decoder.vocab_size})")
        return ids

    def _constraint(self, model: _Model, spec: ConstraintSpec | Constraint | None) -> Constraint | None:
        if spec is None or isinstance(spec, Constraint):
            return spec
        if not isinstance(spec, ConstraintSpec):
            raise InvalidArgument("constraint must be a ConstraintSpec (one_of / json) or None")
        if model.tokenizer is None:
            raise InvalidArgument("constraints need a model with a tokenizer")
        compiled = model.constraints.get(spec)
        if compiled is None:
            compiled = compile_constraint(spec, model.tokenizer, vocab_size=model.decoder.vocab_size)
            if len(model.constraints) > 256:
                model.constraints.clear()
            model.constraints[spec] = compiled
        return compiled

    def open_session(self, model: str, *, npc_id: str = "", prompt: str | Sequence[int] = "",
                     sampling: SamplingParams | None = None, limits: SessionLimits | None = None,
                     constraint: ConstraintSpec | Constraint | None = None, session_id: str | None = None) -> str:
        """A new session whose first turn is `prompt` (generation starts on the next tick / generate)."""
        m = self._model(model)
        sampling = (sampling or self.config.default_sampling).validate()
        limits = (limits or self.config.default_limits).validate()
        if not isinstance(npc_id, str):
            raise InvalidArgument("npc_id must be a string")
        if session_id is not None:
            if not isinstance(session_id, str) or not session_id or len(session_id) > 128:
                raise InvalidArgument("session_id must be a non-empty string of at most 128 characters")
            if session_id in self._sessions:
                raise AlreadyExists(f"session {session_id!r} already exists")
        sid = session_id or uuid.uuid4().hex
        tokens = self._encode(m, prompt, first=True)
        bos = m.package.special_tokens.bos if m.package else None
        if not tokens:
            if bos is None:
                raise InvalidArgument("empty prompt and the model has no BOS token: give a prompt")
            tokens = [bos]
        capacity = min(limits.max_context or self.config.max_context, m.capacity)
        if len(tokens) >= capacity:
            if not self.config.sliding_window:
                raise ResourceExhausted(f"prompt has {len(tokens)} tokens; max context is {capacity} "
                                        "(shorten it, or enable sliding_window)")
            tokens = tokens[-max(1, capacity // 2):]
        if m.scheduler.free_slots == 0:
            self.evict_idle()
        session = Session(id=sid, model=model, npc_id=npc_id, sampling=sampling, limits=limits,
                          capacity=capacity, rng=np.random.default_rng(sampling.seed))
        m.scheduler.admit(session)   # ResourceExhausted when every slot is taken
        session.detokenizer = m.tokenizer.detokenizer() if m.tokenizer else None
        try:
            session.start_turn(tokens, self._constraint(m, constraint))
        except Exception:
            m.scheduler.release(session)
            raise
        session.prefix_insert_upto = len(tokens)
        # the prefix cache is consulted now (KV copied into the slot), so session_info reports the hit at open
        m.scheduler.prepare_prefill(session)
        self._sessions[sid] = session
        self._gone.pop(sid, None)
        return sid

    def append_input(self, session_id: str, text: str | Sequence[int], *,
                     constraint: ConstraintSpec | Constraint | None = None) -> None:
        """A new turn: its tokens are prefilled after what the session already holds (nothing is re-read)."""
        session = self._session(session_id)
        m = self._models[session.model]
        new = self._encode(m, text, first=False)
        compiled = self._constraint(m, constraint)
        if len(session.tokens) + len(new) >= session.capacity:
            if not self.config.sliding_window:
                raise ResourceExhausted(
                    f"context full: session {session_id!r} holds {len(session.tokens)} tokens, the input has "
                    f"{len(new)}, max context is {session.capacity} (open a new session or enable sliding_window)")
            session.tokens.extend(new)
            new = []
            m.scheduler.slide(session)
        session.detokenizer = m.tokenizer.detokenizer() if m.tokenizer else None
        session.text_out = ""
        session.start_turn(new, compiled)
        session.touch()

    def cancel(self, session_id: str) -> None:
        """Ends the session's current turn (finish_reason cancelled); the session stays open."""
        session = self._session(session_id)
        self._models[session.model].scheduler.cancel(session)
        session.touch()

    def end_turn(self, session_id: str, reason: FinishReason = FinishReason.LENGTH) -> str:
        """Ends the current turn with `reason`; returns text held back until then (e.g. a partial stop match)."""
        session = self._session(session_id)
        self._models[session.model].scheduler.cancel(session, reason)
        return session.take_text()

    def close_session(self, session_id: str) -> None:
        session = self._session(session_id)
        self._drop(session, SessionStatus.CLOSED)

    def _drop(self, session: Session, status: SessionStatus) -> None:
        self._models[session.model].scheduler.release(session)
        session.status = status
        del self._sessions[session.id]

    def evict_idle(self, now: float | None = None) -> list[str]:
        """Evict sessions idle longer than their idle timeout; later calls on them answer FailedPrecondition."""
        now = time.monotonic() if now is None else now
        evicted = []
        for session in list(self._sessions.values()):
            timeout = session.limits.idle_timeout_s or self.config.idle_timeout_s
            if now - session.last_active > timeout:
                session.finish_reason = FinishReason.EVICTED
                self._drop(session, SessionStatus.EVICTED)
                self._gone[session.id] = f"evicted after {timeout:g} s idle"
                while len(self._gone) > _TOMBSTONES:
                    self._gone.popitem(last=False)
                evicted.append(session.id)
        self._evicted += len(evicted)
        return evicted

    def session_info(self, session_id: str) -> dict:
        s = self._session(session_id)
        return {"session_id": s.id, "model": s.model, "npc_id": s.npc_id, "status": s.status.value,
                "finish_reason": s.finish_reason.value if s.finish_reason else None,
                "context_tokens": len(s.tokens), "max_context": s.capacity, "generated_total": s.generated_total,
                "prefix_hit_tokens": s.prefix_hit_tokens,
                "pending_prefill_tokens": s.pending if s.pending > 1 and s.has_work else 0}

    # -- running ------------------------------------------------------------------------------------------
    def _run(self, works: list[_Work], *, deadline: float | None, max_rounds: int | None,
             must_progress: bool = False, credit_s: dict[str, float] | None = None) -> None:
        """Steps until no work is left, the next step would pass `deadline`, or after `max_rounds` rounds.
        A round gives every model one step (one forward pass). `credit_s[model]`: time saved up by earlier
        ticks that could fit nothing; the first step may spend it on the whole batch."""
        by_model: dict[str, list[_Work]] = {}
        for w in works:
            by_model.setdefault(w.session.model, []).append(w)
        credit_s = dict(credit_s or {})
        rounds, progressed = 0, False
        while max_rounds is None or rounds < max_rounds:
            stepped = False
            for name, group in by_model.items():
                ready = [w for w in group if w.allowance > 0 and w.session.has_work]
                if not ready:
                    continue
                remaining = None if deadline is None else deadline - time.perf_counter()
                scheduler = self._models[name].scheduler
                plan = scheduler.schedule([w.session for w in ready], remaining_s=remaining,
                                          must_progress=must_progress and not progressed,
                                          credit_s=credit_s.pop(name, 0.0))
                if plan is None:
                    for w in ready:
                        w.limited = True
                    continue
                result = scheduler.step(plan)
                stepped = progressed = True
                index = {id(w.session): w for w in ready}
                if plan.prefill is not None:
                    w = index[id(plan.prefill)]
                    w.steps += 1
                    w.max_batch = max(w.max_batch, 1)
                    w.prefill_tokens += result.batch
                    self._prefill_tokens += result.batch
                else:
                    rows = len(plan.decode)
                    for s in plan.decode:
                        w = index[id(s)]
                        w.steps += 1
                        w.max_batch = max(w.max_batch, rows)
                for k, (s, token) in enumerate(zip(result.sessions, result.tokens)):
                    w = index[id(s)]
                    w.tokens.append(token)
                    w.allowance -= 1
                    if result.logprobs is not None and result.logprobs[k] is not None:
                        if w.logprobs is None:
                            w.logprobs, w.choice_probs = [], []
                        w.logprobs.append(result.logprobs[k])
                        w.choice_probs.append(result.choice_probs[k])
            rounds += 1
            if not stepped:
                break

    def _works(self, requests: Sequence) -> list[_Work]:
        seen: set[str] = set()
        return [_Work(session=self._entry_session(r, seen), allowance=r.max_tokens) for r in requests]

    def _entry_session(self, r, seen: set[str]) -> Session:
        """The checks every tick/step entry shares: max_tokens, no duplicate, a known session."""
        if isinstance(r.max_tokens, bool) or not isinstance(r.max_tokens, int) or r.max_tokens < 0:
            raise InvalidArgument(f"max_tokens of session {r.session_id!r} must be an integer >= 0")
        if r.session_id in seen:
            raise InvalidArgument(f"session {r.session_id!r} appears twice in one tick")
        seen.add(r.session_id)
        return self._session(r.session_id)

    def _tick_entry(self, r: TickRequest, seen: set[str]) -> _Work:
        """Checks one entry and applies its new input; raises (with nothing of the entry applied) if bad."""
        if (isinstance(r.budget_ms, bool) or not isinstance(r.budget_ms, (int, float))
                or not math.isfinite(r.budget_ms) or r.budget_ms < 0):
            raise InvalidArgument(f"budget_ms of session {r.session_id!r} must be a finite number >= 0")
        session = self._entry_session(r, seen)
        if r.new_input is not None:
            self.append_input(r.session_id, r.new_input, constraint=r.constraint)   # all checks before any change
        elif r.constraint is not None:
            raise InvalidArgument(f"session {r.session_id!r}: a constraint comes with new_input (a new turn)")
        elif session.status is not SessionStatus.GENERATING:
            raise FailedPrecondition(
                f"session {r.session_id!r} finished its turn ({session.finish_reason.value}); "
                "send new_input to start the next turn")
        return _Work(session=session, allowance=r.max_tokens)

    def tick(self, requests: Sequence[TickRequest]) -> list[TickResult]:
        """Frame slicing: steps for the requested sessions until the next step is predicted to exceed the
        budget (or every session reached its max_tokens / finished); the rest stays for the next tick.

        An entry that fails (unknown / evicted session, finished turn without new_input, bad values, input
        over the context) gets `TickResult.error` and nothing of it is applied; the other entries run.
        Starvation guard: when no step fits a tick's budget, the budget is saved up; once the savings of
        consecutive starved ticks cover the smallest next step (one session's decode, rotating, or a minimal
        prefill chunk), that step runs: every session progresses, the time spent stays within the sum of
        the budgets, and no tick overruns by more than one single-row step."""
        t0 = time.perf_counter()
        seen: set[str] = set()
        entries: list[_Work | NpcRuntimeError] = []
        for r in requests:
            try:
                entries.append(self._tick_entry(r, seen))
            except NpcRuntimeError as exc:
                entries.append(exc)
        works = [e for e in entries if isinstance(e, _Work)]
        budget_s = min((r.budget_ms for r, e in zip(requests, entries) if isinstance(e, _Work)),
                       default=0.0) / 1000.0
        deadline = t0 + budget_s - self._tick_overhead_s
        t_run = time.perf_counter()
        self._run(works, deadline=deadline, max_rounds=None, must_progress=self.config.tick_min_progress,
                  credit_s={} if self.config.tick_strict_budget else self._starved_s)
        if not self.config.tick_strict_budget:
            self._account_starvation(works, budget_s)
        t_after = time.perf_counter()
        done = iter(self._results(works, engine_ms=(t_after - t0) * 1000.0))
        results = [next(done) if isinstance(e, _Work) else self._error_result(r.session_id, e)
                   for r, e in zip(requests, entries)]
        t_end = time.perf_counter()
        # overhead outside the steps' own predictions (validation before, results after) is reserved
        self._tick_overhead_s = 0.8 * self._tick_overhead_s + 0.2 * ((t_run - t0) + (t_end - t_after))
        self._tick_ms.append((t_end - t0) * 1000.0)
        return results

    def _account_starvation(self, works: list[_Work], budget_s: float) -> None:
        models: dict[str, list[_Work]] = {}
        for w in works:
            models.setdefault(w.session.model, []).append(w)
        for name, group in models.items():
            if any(w.steps for w in group):
                self._starved_s.pop(name, None)
            elif any(w.allowance > 0 and w.session.has_work for w in group):
                # nothing fit: save the budget up for one single-row step later, and shrink the uncertainty
                # margins so a prediction inflated by a noisy measurement does not keep the step out either
                self._starved_s[name] = min(self._starved_s.get(name, 0.0) + budget_s, _MAX_STARVED_S)
                self._models[name].scheduler.costs.relax()

    @staticmethod
    def _error_result(session_id: str, error: NpcRuntimeError) -> TickResult:
        return TickResult(session_id=session_id, token_ids=[], text_delta="", finished=False, finish_reason=None,
                          stats=TickStats(0.0, 0, 0, 0, False), error=error)

    def _results(self, works: list[_Work], *, engine_ms: float) -> list[TickResult]:
        now = time.monotonic()
        out = []
        for w in works:
            s = w.session
            s.touch(now)
            finished = s.status is not SessionStatus.GENERATING
            out.append(TickResult(
                session_id=s.id, token_ids=w.tokens, text_delta=s.take_text(), finished=finished,
                finish_reason=s.finish_reason.value if finished and s.finish_reason else None,
                stats=TickStats(engine_ms, w.steps, w.prefill_tokens, len(s.tokens),
                                w.limited and not finished and w.allowance > 0, max_batch=w.max_batch,
                                pending_prefill_tokens=s.pending if s.pending > 1 and s.has_work else 0),
                logprobs=w.logprobs if w.logprobs is not None or not s.sampling.logprobs else [],
                choice_probs=w.choice_probs if w.choice_probs is not None or not s.sampling.logprobs else []))
        return out

    def step(self, requests: Sequence[TickRequest]) -> list[TickResult]:
        """One round (one forward pass per model) for the requested sessions, no budget. Used by AsyncEngine
        to batch many concurrent streams; `max_tokens` bounds each session's tokens in this round."""
        works = self._works(requests)
        self._run(works, deadline=None, max_rounds=1)
        return self._results(works, engine_ms=0.0)

    def generate(self, session_id: str, text: str | Sequence[int] | None = None, *,
                 max_tokens: int) -> Iterator[TokenChunk]:
        """Streams the session's turn (starting a new one with `text` if given) until it finishes or
        `max_tokens` are produced (then the turn ends with finish_reason "length")."""
        if not isinstance(max_tokens, int) or max_tokens < 1:
            raise InvalidArgument("max_tokens must be an integer >= 1")
        if text is not None:
            self.append_input(session_id, text)
        session = self._session(session_id)
        if session.status is not SessionStatus.GENERATING:
            raise FailedPrecondition(f"session {session_id!r} finished its turn "
                                     f"({session.finish_reason.value}); give text to start the next one")
        return self._generate(session, max_tokens)

    def _generate(self, session: Session, max_tokens: int) -> Iterator[TokenChunk]:
        produced = 0
        while True:
            if session.status is SessionStatus.GENERATING and produced >= max_tokens:
                self._models[session.model].scheduler.cancel(session, FinishReason.LENGTH)
            if session.slot is None and session.status is SessionStatus.GENERATING:
                return   # closed or evicted meanwhile
            work = _Work(session=session, allowance=max_tokens - produced)
            if session.status is SessionStatus.GENERATING:
                self._run([work], deadline=None, max_rounds=1)
            produced += len(work.tokens)
            (result,) = self._results([work], engine_ms=0.0)
            if result.token_ids or result.text_delta or result.finished:
                yield TokenChunk(session.id, result.token_ids, result.text_delta, result.finished,
                                 result.finish_reason, result.logprobs, result.choice_probs)
            if result.finished:
                return

    # -- stats --------------------------------------------------------------------------------------------
    def stats(self) -> EngineStats:
        schedulers = [m.scheduler for m in self._models.values()]
        caches = [m.prefix_cache for m in self._models.values() if m.prefix_cache is not None]
        ticks = np.asarray(self._tick_ms) if self._tick_ms else np.zeros(1)
        pools = sum(getattr(m.decoder, "pool_bytes", 0) for m in self._models.values())
        return EngineStats(
            models=len(self._models), sessions_open=len(self._sessions),
            sessions_generating=sum(s.status is SessionStatus.GENERATING for s in self._sessions.values()),
            steps=sum(s.steps for s in schedulers), decode_rows=sum(s.decode_rows for s in schedulers),
            tokens_generated=sum(s.generated_total for s in self._sessions.values()),
            prefill_tokens=self._prefill_tokens, slot_moves=sum(s.swaps for s in schedulers),
            evicted=self._evicted, kv_pool_bytes=pools,
            prefix_cache_entries=sum(len(c) for c in caches), prefix_cache_bytes=sum(c.bytes for c in caches),
            prefix_cache_hit_tokens=sum(c.hits for c in caches),
            prefix_cache_miss_tokens=sum(c.misses for c in caches),
            tick_ms_p50=float(np.percentile(ticks, 50)), tick_ms_p99=float(np.percentile(ticks, 99)))
