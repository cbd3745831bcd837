"""`Engine`: the synchronous, single-threaded decode engine over one or more model packages.

    engine = Engine.from_packages(["pkg/"], config=EngineConfig(max_sessions=64))
    sid = engine.open_session("npc-dialogue", prompt="You are Bram, the blacksmith.\\nPlayer: hi\\nBram:")
    results = engine.tick([TickRequest(sid, budget_ms=2.0, max_tokens=4)])   # once per game frame
    for chunk in engine.generate(sid, "Player: what do you sell?\\nBram:", max_tokens=64): ...

Every request is validated once, here (`sessions/requests.py`). See docs/engine.md. `EngineFacade`
(sessions/facade.py) owns an `Engine` on one thread for the servers and the agent.
"""

from __future__ import annotations

import math
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from npc_runtime.config import EngineConfig, SessionLimits
from npc_runtime.decode.constraints import Constraint, ConstraintSpec, compile_constraint
from npc_runtime.decode.onnx_model import DecoderModel, DecoderOptions, open_decoder
from npc_runtime.decode.package import ModelPackage, load_package
from npc_runtime.decode.sampling import SamplingParams, StopMatcher
from npc_runtime.decode.tokenizer import TextTokenizer
from npc_runtime.errors import (AlreadyExists, DeadlineExceeded, FailedPrecondition, InvalidArgument, NotFound,
                                InternalError, NpcRuntimeError, RequestTooLarge, ResourceExhausted)
from npc_runtime.sessions.cost_model import StepCostModel
from npc_runtime.sessions.prefix_cache import PrefixCache
from npc_runtime.sessions.requests import (UNBOUNDED_TOKENS, GenerateRequest, OpenedSession, OpenRequest,
                                           RequestLimits, TickRequest, Turn, check_constraint, check_generate, check_open, check_tick_entry,
                                           check_tick_size, prompt_chars, session_id as check_session_id, text_or_ids)
from npc_runtime.sessions import snapshot
from npc_runtime.sessions.parking import DISK as DISK_TIER, HOST as HOST_TIER, ParkingLot
from npc_runtime.sessions.snapshot_store import SnapshotStore, SnapshotWriter
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
    batch_invariant: bool = True  # greedy output identical batched or alone (False: int8 MatMulInteger)


@dataclass(slots=True)
class TickStats:
    engine_ms: float            # wall time of the whole tick call
    steps: int                  # forward passes this session took part in
    prefill_tokens: int         # input tokens fed this tick
    context_tokens: int         # tokens in the session's context after the tick
    budget_limited: bool        # work remained but the next step was predicted to exceed the budget
    max_batch: int = 0          # largest batch (rows) of the passes this session took part in (prefill: 1)
    pending_prefill_tokens: int = 0   # input tokens still to prefill after the tick
    restore_ms: float = 0.0     # the session was parked (tiered KV) and restored for this tick, milliseconds
    restored_from: str = ""     # "host" or "disk" when restored, else ""


@dataclass(slots=True)
class TickResult:
    session_id: str
    token_ids: list[int]
    text_delta: str
    finished: bool
    finish_reason: FinishReason | None   # set when finished
    stats: TickStats
    error: NpcRuntimeError | None = None   # this entry failed alone (nothing of it was applied); others ran
    logprobs: list[float] | None = None    # per token of token_ids, when SamplingParams.logprobs
    choice_probs: list[dict[int, float] | None] | None = None   # per token: allowed alternatives (constrained)


@dataclass(slots=True)
class TokenChunk:
    session_id: str
    token_ids: list[int]
    text_delta: str
    finished: bool                         # the turn ended (with this chunk)
    finish_reason: FinishReason | None
    logprobs: list[float] | None = None    # per token of token_ids, when SamplingParams.logprobs
    choice_probs: list[dict[int, float] | None] | None = None   # per token: allowed alternatives (constrained)
    turn: int = 0                          # index of the GenerateRequest turn this chunk belongs to


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


@dataclass(frozen=True)
class PreparedOpen:
    """An OpenRequest made ready off the engine thread (`Engine.prepare_open`, on a worker): validated, its
    prompt rendered and tokenized, its constraint compiled. `open` / `start` take it instead of the request,
    so the engine thread only admits the session."""
    request: OpenRequest
    tokens: list[int]
    constraint: Constraint | None


@dataclass
class _Model:
    package: ModelPackage
    decoder: DecoderModel
    tokenizer: TextTokenizer
    scheduler: Scheduler
    prefix_cache: PrefixCache | None
    capacity: int
    constraints: dict = field(default_factory=dict)   # ConstraintSpec -> compiled Constraint


class Engine:
    def __init__(self, models: dict[str, _Model], *, config: EngineConfig,
                 limits: RequestLimits = RequestLimits()) -> None:
        self.config = config
        self.limits = limits        # request size policy (the server's), read by every validation
        self._models = models
        self._default_model = next(iter(models))
        self._sessions: dict[str, Session] = {}
        self._gone: OrderedDict[str, str] = OrderedDict()   # session id -> why it is gone (evicted)
        self._tick_ms: deque[float] = deque(maxlen=_TICK_HISTORY)
        self._tick_overhead_s = 0.0
        self._prefill_tokens = 0
        self._evicted = 0
        # per model: budget (s) of consecutive ticks in which nothing fit; spent on one single-row step (see tick)
        self._starved_s: dict[str, float] = {}
        # tiered KV: sessions out of the pool (sessions/parking.py); restore cost reported in the next TickStats
        self._parking = ParkingLot(host_bytes=config.park_host_bytes, directory=config.park_dir) \
            if config.park_after_s > 0 else None
        self._restored: dict[str, tuple[float, str]] = {}
        self._pinned: set[str] = set()   # sessions of the tick / step in progress: never parked under it
        self._snapshots: SnapshotStore | None = None      # fleet takeover (attach_snapshot_store)
        self._snapshot_writer: SnapshotWriter | None = None
        # True (the facade): snapshots of turns that ended are taken by write_deferred_snapshots(), after the
        # caller has its answer, so copying a finished session's KV never makes that Tick late
        self.defer_snapshots = False
        self._deferred_snapshots: list[str] = []
        self._fingerprints: dict[str, str] = {}

    # -- construction -------------------------------------------------------------------------------------
    @classmethod
    def from_packages(cls, paths: Sequence[str | Path], *, config: EngineConfig = EngineConfig(),
                      limits: RequestLimits = RequestLimits()) -> "Engine":
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
                                                           spinning=config.spin_policy,
                                                           flush_denormals=config.flush_denormals,
                                                           small_batch_threads=config.small_batch_threads,
                                                           small_batch_max=config.small_batch_max))
            models[package.name] = cls._wrap(package, decoder, config)
        engine = cls(models, config=config, limits=limits)
        if config.warmup:
            engine.warmup()
        return engine

    @classmethod
    def from_decoder(cls, name: str, decoder: DecoderModel, tokenizer: TextTokenizer | None, *,
                     config: EngineConfig = EngineConfig(), eos_ids: Sequence[int] = (),
                     limits: RequestLimits = RequestLimits()) -> "Engine":
        """An engine over any `DecoderModel` (tests use a fake one); tokenizer None: token ids only."""
        config.validate()
        cache = (PrefixCache(max_bytes=config.prefix_cache_bytes, block_tokens=config.prefix_block_tokens)
                 if config.prefix_cache_bytes else None)
        scheduler = Scheduler(decoder, max_prefill_chunk=config.max_prefill_chunk,
                              sliding_window=config.sliding_window, prefix_cache=cache,
                              eos_ids=eos_ids, cost_model=StepCostModel())
        model = _Model(package=None, decoder=decoder, tokenizer=tokenizer, scheduler=scheduler,
                       prefix_cache=cache, capacity=min(config.max_context, decoder.capacity))
        return cls({name: model}, config=config, limits=limits)

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
            if getattr(decoder, "tune_pending", False):
                decoder.tune_threads()   # which batch sizes run on the small-batch session (fewer threads)
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
                has_chat_template=bool(pkg and pkg.chat_template),
                batch_invariant=pkg.batch_invariant if pkg else True))
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
        if session is None and self._parking is not None and session_id in self._parking:
            session = self._unpark(session_id)
        if session is None and self._snapshots is not None and session_id not in self._gone:
            session = self._take_over(session_id)
        if session is None:
            why = self._gone.get(session_id)
            if why is not None:
                raise FailedPrecondition(f"session {session_id!r} was {why}; open a new session")
            raise NotFound(f"unknown session {session_id!r}")
        return session

    def _encode(self, model: _Model, text: str | Sequence[int], *, first: bool) -> list[int]:
        """Text or token ids (their type checked by the request's validation) -> ids in the model's range."""
        if isinstance(text, str):
            if model.tokenizer is None:
                raise InvalidArgument("this model has no tokenizer: give token ids")
            return model.tokenizer.encode(text, add_special_tokens=first)
        ids = [int(t) for t in text]
        if any(t < 0 or t >= model.decoder.vocab_size for t in ids):
            raise InvalidArgument(f"token ids must be in [0, {model.decoder.vocab_size})")
        return ids

    def _constraint(self, model: _Model, spec: ConstraintSpec | None) -> Constraint | None:
        if spec is None:
            return None
        if model.tokenizer is None:
            raise InvalidArgument("constraints need a model with a tokenizer")
        compiled = model.constraints.get(spec)
        if compiled is None:
            compiled = compile_constraint(spec, model.tokenizer, vocab_size=model.decoder.vocab_size)
            if len(model.constraints) > 256:
                model.constraints.clear()
            model.constraints[spec] = compiled
        return compiled

    # -- opening ------------------------------------------------------------------------------------------
    def open(self, request: OpenRequest | PreparedOpen) -> OpenedSession:
        """A new session whose first turn is the request's prompt (generation starts on the next tick /
        generate step). The prefix cache is consulted now, so `cached_prefix_tokens` is known at open."""
        if not isinstance(request, PreparedOpen):
            check_open(request, self.limits)
        return self._open(request)

    def prepare_open(self, r: OpenRequest) -> PreparedOpen:
        """The per-request heavy part of `open`, safe on any thread (it reads only what is fixed after load;
        the constraint cache is a dict of immutable values): validation, the cheap context bound, chat
        template, tokenizing, constraint compiling. Raises what `open` would for the same request."""
        check_open(r, self.limits)
        name = r.model or self._default_model
        m = self._model(name)
        tokens = self._prompt_tokens(name, m, r)
        return PreparedOpen(request=r, tokens=tokens, constraint=self._constraint(m, r.constraint))

    def _prompt_tokens(self, name: str, m: _Model, r: OpenRequest) -> list[int]:
        """The prompt's token ids. A prompt that cannot fit the context is refused from its length alone,
        before rendering or tokenizing (tokens >= characters / the tokenizer's max characters per token;
        docs/limits.md), unless sliding_window keeps its tail."""
        limits = r.limits or self.config.default_limits
        capacity = min(limits.max_context or self.config.max_context, m.capacity)
        per_token = m.tokenizer.max_chars_per_token() if m.tokenizer is not None else None
        if per_token and not self.config.sliding_window:
            chars = prompt_chars(r)
            if chars >= capacity * per_token:
                raise RequestTooLarge(
                    f"prompt of {chars} characters is at least {math.ceil(chars / per_token)} tokens (this "
                    f"model's tokens hold at most {per_token} characters); max context is {capacity} "
                    "(shorten it, or enable sliding_window)")
        return self._encode(m, self._prompt_text(name, r), first=True)

    def open_session(self, model: str = "", *, npc_id: str = "", prompt: str | Sequence[int] = "",
                     sampling: SamplingParams | None = None, limits: SessionLimits | None = None,
                     constraint: ConstraintSpec | None = None, session_id: str | None = None) -> str:
        """`open(OpenRequest(...)).session_id`, for direct callers (tests, benchmarks)."""
        return self.open(OpenRequest(model=model, npc_id=npc_id, prompt=prompt, sampling=sampling, limits=limits,
                                     constraint=constraint, session_id=session_id)).session_id

    def _open(self, r: OpenRequest | PreparedOpen) -> OpenedSession:
        """`open` of a validated (or prepared) request."""
        prepared = r if isinstance(r, PreparedOpen) else None
        r = prepared.request if prepared is not None else r
        name = r.model or self._default_model
        m = self._model(name)
        sampling = r.sampling or self.config.default_sampling
        limits = r.limits or self.config.default_limits
        if r.session_id is not None and r.session_id in self._sessions:
            raise AlreadyExists(f"session {r.session_id!r} already exists")
        sid = r.session_id or uuid.uuid4().hex
        tokens = list(prepared.tokens) if prepared is not None else self._prompt_tokens(name, m, r)
        bos = m.package.special_tokens.bos if m.package else None
        if not tokens:
            if bos is None:
                raise InvalidArgument("empty prompt and the model has no BOS token: give a prompt")
            tokens = [bos]
        capacity = min(limits.max_context or self.config.max_context, m.capacity)
        if len(tokens) >= capacity:
            if not self.config.sliding_window:
                raise RequestTooLarge(f"prompt has {len(tokens)} tokens; max context is {capacity} "
                                      "(shorten it, or enable sliding_window)")
            tokens = tokens[-max(1, capacity // 2):]
        self._make_room(m)
        session = Session(id=sid, model=name, npc_id=r.npc_id, sampling=sampling, limits=limits,
                          capacity=capacity, rng=np.random.default_rng(sampling.seed))
        m.scheduler.admit(session)   # ResourceExhausted when every slot is taken
        session.detokenizer = m.tokenizer.detokenizer() if m.tokenizer else None
        try:
            session.start_turn(tokens, prepared.constraint if prepared is not None else self._constraint(m, r.constraint))
        except Exception:
            m.scheduler.release(session)
            raise
        session.prefix_insert_upto = len(tokens)
        # the prefix cache is consulted now (KV copied into the slot), so the hit is reported at open
        m.scheduler.prepare_prefill(session)
        self._sessions[sid] = session
        self._gone.pop(sid, None)
        return OpenedSession(session_id=sid, model=name, prompt_tokens=len(session.tokens),
                             cached_prefix_tokens=session.prefix_hit_tokens)

    def _prompt_text(self, model: str, r: OpenRequest) -> str | Sequence[int]:
        if r.messages is not None:
            return self.apply_chat_template(model, list(r.messages), add_generation_prompt=True)
        if r.apply_chat_template:
            messages = ([{"role": "system", "content": r.prefix}] if r.prefix else []) + \
                       [{"role": "user", "content": r.prompt}]
            return self.apply_chat_template(model, messages, add_generation_prompt=True)
        return r.prefix + r.prompt if r.prefix else r.prompt

    # -- turns --------------------------------------------------------------------------------------------
    def append_input(self, session_id: str, text: str | Sequence[int], *,
                     constraint: ConstraintSpec | None = None) -> None:
        """A new turn: its tokens are prefilled after what the session already holds (nothing is re-read)."""
        check_session_id(session_id)
        text_or_ids(text, "input", self.limits)
        if constraint is not None:
            check_constraint(constraint, self.limits)
        self._new_turn(self._session(session_id), text, constraint)

    def _new_turn(self, session: Session, text: str | Sequence[int], constraint: ConstraintSpec | None) -> None:
        """Starts a turn of validated input; raises (with nothing changed) when it does not fit."""
        m = self._models[session.model]
        per_token = m.tokenizer.max_chars_per_token() if m.tokenizer is not None and isinstance(text, str) else None
        room = session.capacity - len(session.tokens)
        if per_token and not self.config.sliding_window and len(text) >= room * per_token:
            # cannot fit, known from its length: not tokenized (this runs on the engine thread)
            raise ResourceExhausted(
                f"context full: session {session.id!r} holds {len(session.tokens)} tokens, the input of {len(text)} "
                f"characters is at least {math.ceil(len(text) / per_token)} tokens, max context is "
                f"{session.capacity} (open a new session or enable sliding_window)")
        new = self._encode(m, text, first=False)
        compiled = self._constraint(m, constraint)
        if len(session.tokens) + len(new) >= session.capacity:
            if not self.config.sliding_window:
                raise ResourceExhausted(
                    f"context full: session {session.id!r} holds {len(session.tokens)} tokens, the input has "
                    f"{len(new)}, max context is {session.capacity} (open a new session or enable sliding_window)")
            session.tokens.extend(new)
            new = []
            m.scheduler.slide(session)
        session.detokenizer = m.tokenizer.detokenizer() if m.tokenizer else None
        session.text_out = ""
        session.start_turn(new, compiled)
        session.touch()

    def begin(self, session_id: str, turn: Turn) -> None:
        """Starts `turn` of a validated GenerateRequest: its input as a new turn, or (no input) checks a turn
        is in progress."""
        session = self._session(session_id)
        if turn.input is not None:
            self._new_turn(session, turn.input, turn.constraint)
        elif session.status is not SessionStatus.GENERATING:
            raise FailedPrecondition(f"session {session_id!r} finished its turn ({session.finish_reason.value}); "
                                     "give input to start the next one")

    def cancel(self, session_id: str) -> bool:
        """Ends the session's current turn (finish_reason cancelled); the session stays open. True when a turn
        was in progress."""
        session = self._session(check_session_id(session_id))
        running = session.status is SessionStatus.GENERATING
        self._models[session.model].scheduler.cancel(session)
        session.touch()
        return running

    def end_turn(self, session_id: str, reason: FinishReason = FinishReason.LENGTH) -> str:
        """Ends the current turn with `reason`; returns text held back until then (e.g. a partial stop match)."""
        session = self._session(session_id)
        self._models[session.model].scheduler.cancel(session, reason)
        return session.take_text()

    def close_session(self, session_id: str) -> int:
        """Closes the session; returns its context tokens."""
        session = self._session(check_session_id(session_id))
        self._drop(session, SessionStatus.CLOSED)
        if self._snapshot_writer is not None and session.snapshots:
            self._snapshot_writer.delete(session.id)
        return len(session.tokens)

    def without_snapshots(self, session_id: str) -> None:
        """The session lives for one request (e.g. a stream that opened it closes it when it ends): no takeover
        snapshot is written when its turns end, none deleted when it closes (nobody could take it over)."""
        self._session(session_id).snapshots = False

    def truncate(self, session_id: str, keep: int) -> int:
        """Between turns: keeps the first `keep` tokens of the session, their KV included, so the next turn
        continues from there (llama-server's `cache_prompt` reuses a slot's common prefix this way). The last
        kept token is fed again, so the next turn always has work. Returns the tokens whose KV is kept."""
        session = self._session(check_session_id(session_id))
        if session.status is SessionStatus.GENERATING:
            raise FailedPrecondition(f"session {session_id!r} is in a turn; truncate it between turns")
        if isinstance(keep, bool) or not isinstance(keep, int) or not 1 <= keep <= len(session.tokens):
            raise InvalidArgument(f"keep must be an integer in [1, {len(session.tokens)}] (got {keep!r})")
        del session.tokens[keep:]
        session.kv_len = min(session.kv_len, keep - 1)
        session.prefix_insert_upto = 0
        session.touch()
        return session.kv_len

    def _drop(self, session: Session, status: SessionStatus) -> None:
        self._models[session.model].scheduler.release(session)
        session.status = status
        del self._sessions[session.id]

    def evict_idle(self, now: float | None = None) -> list[str]:
        """Evict sessions idle longer than their idle timeout; later calls on them answer FailedPrecondition.
        With tiered KV, first park those idle `park_after_s` and spill long-parked ones to disk."""
        now = time.monotonic() if now is None else now
        evicted = self._expire_parked(now) if self._parking is not None else []
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
        if self._snapshot_writer is not None:
            for sid in evicted:
                self._snapshot_writer.delete(sid)
        return evicted

    # -- tiered KV (sessions/parking.py) ---------------------------------------------------------------------
    def _parkable(self, session: Session) -> bool:
        """Any session but those of the tick / step being prepared and those decoding under a constraint (not
        snapshotted). A session parked mid-turn resumes on its next tick as if never parked."""
        return session.id not in self._pinned and not (session.status is SessionStatus.GENERATING
                                                        and session.constraint is not None)

    def _park(self, session: Session) -> None:
        # the host tier keeps the state itself (KV arrays copied out of the pool): no encoding, no checksum
        self._parking.park(session.id, self._capture(session, include_kv=True), last_active=session.last_active)
        self._models[session.model].scheduler.release(session)
        del self._sessions[session.id]

    def _make_room(self, m: _Model) -> None:
        """A free slot for a new or returning session: evict expired sessions, then (tiered KV) park the least
        recently used idle one. Nothing to do when a slot is free; admit() refuses when none could be made."""
        if m.scheduler.free_slots:
            return
        if self._parking is None:
            self.evict_idle()
            return
        # tiered KV: no full sweep here (it walks every parked session and may spill to disk): the idle sweep
        # runs every few seconds; the request path only parks the least recently used session
        idle = [s for s in self._sessions.values() if s.slot is not None and s.model in self._models
                and self._models[s.model] is m and self._parkable(s)]
        if idle:
            self._park(min(idle, key=lambda s: s.last_active))

    def _unpark(self, session_id: str) -> Session:
        started = time.perf_counter()
        state, tier, last_active = self._parking.take(session_id)
        try:
            self._restore(state)
        except NpcRuntimeError:
            # no slot for it now (every session busy): keep it parked, the caller gets the error
            self._parking.park(session_id, state, last_active=last_active)
            raise
        session = self._sessions[session_id]
        session.last_active = last_active
        self._restored[session_id] = ((time.perf_counter() - started) * 1000.0, tier)
        return session

    def _expire_parked(self, now: float) -> list[str]:
        """Park sessions idle park_after_s, spill old parked ones to disk, drop parked ones past their idle
        timeout (as eviction does for resident ones)."""
        lot = self._parking
        for session in list(self._sessions.values()):
            if now - session.last_active > self.config.park_after_s and self._parkable(session):
                self._park(session)
        lot.spill(older_than_s=self.config.park_disk_after_s, now=now)
        lot.fit_budget()
        expired = lot.expired(self.config.idle_timeout_s, now)
        for sid in expired:
            lot.discard(sid)
            self._restored.pop(sid, None)
            self._gone[sid] = f"evicted after {self.config.idle_timeout_s:g} s idle (parked)"
        while len(self._gone) > _TOMBSTONES:
            self._gone.popitem(last=False)
        return expired

    @property
    def parked_sessions(self) -> dict[str, int]:
        """Parked sessions per tier ({"host": n, "disk": m}); empty without tiered KV."""
        if self._parking is None:
            return {}
        return {HOST_TIER: self._parking.count(HOST_TIER), DISK_TIER: self._parking.count(DISK_TIER)}

    # -- fleet takeover (sessions/snapshot_store.py) -----------------------------------------------------------
    def attach_snapshot_store(self, store: SnapshotStore, *, include_kv: bool = True,
                              max_pending: int = 1024) -> SnapshotWriter:
        """From now on a session's snapshot is written behind when one of its turns ends, deleted when it is
        closed, and a request for a session this engine does not hold restores it from `store` (another
        replica's session, or this one's before a restart). `include_kv`: the snapshot carries the KV, so the
        takeover continues exactly (without it, one re-prefill: the recomputed cache can differ in the last
        bits, so a near-tie can decode differently). Returns the writer (flush / close / counters)."""
        self._snapshots = store
        self._snapshot_kv = include_kv
        self._snapshot_writer = SnapshotWriter(store, max_pending=max_pending)
        return self._snapshot_writer

    def _write_finished_turns(self, results: Sequence[TickResult]) -> None:
        finished = [r.session_id for r in results if r.finished and r.error is None]
        if self.defer_snapshots:
            self._deferred_snapshots += finished
            return
        self._snapshot_sessions(finished)

    def write_deferred_snapshots(self) -> None:
        """Takes the snapshots `defer_snapshots` held back. Call it before anything else can touch those
        sessions (the facade: right after handing each command's answer back, and after each stream step)."""
        if self._deferred_snapshots:
            finished, self._deferred_snapshots = self._deferred_snapshots, []
            self._snapshot_sessions(finished)

    def _snapshot_sessions(self, session_ids: Sequence[str]) -> None:
        for sid in session_ids:
            session = self._sessions.get(sid)
            if session is not None and session.snapshots and session.status is not SessionStatus.GENERATING:
                # the KV is copied here (the slot may be reused next); encoding and the checksum run on the writer
                self._snapshot_writer.put(session.id, self._capture(session, include_kv=self._snapshot_kv))

    def _take_over(self, session_id: str) -> Session | None:
        """The session from the snapshot store (a replica that held it is gone), or None when it has none."""
        try:
            check_session_id(session_id)
        except InvalidArgument:
            return None
        started = time.perf_counter()
        data = self._snapshots.get(session_id)
        if data is None:
            return None
        self.restore_session(data, session_id=session_id)
        self._restored[session_id] = ((time.perf_counter() - started) * 1000.0, "store")
        return self._sessions[session_id]

    # -- snapshots (sessions/snapshot.py) -------------------------------------------------------------------
    def save_session(self, session_id: str, *, include_kv: bool = False) -> bytes:
        """The session as bytes (it stays open). `include_kv`: the KV cache too, so a restore continues
        without re-prefilling (exact continuation); without it the snapshot is a few bytes per token."""
        return snapshot.encode(self._capture(self._session(check_session_id(session_id)), include_kv=include_kv))

    def _capture(self, session: Session, *, include_kv: bool) -> snapshot.SessionState:
        """The session's state (KV arrays copied out of the pool when `include_kv`)."""
        if session.status is SessionStatus.GENERATING and session.constraint is not None:
            raise FailedPrecondition(f"session {session.id!r} is decoding under a constraint; snapshot it after "
                                     "the turn ends")
        m = self._models[session.model]
        kv_len = min(session.kv_len, len(session.tokens))
        kv = m.decoder.read_kv(session.slot, 0, kv_len) if include_kv and kv_len else []
        return snapshot.SessionState(
            model=session.model, model_sha256=self._fingerprint(session.model), session_id=session.id,
            npc_id=session.npc_id, tokens=list(session.tokens), kv_len=kv_len if kv else 0,
            finished=session.status is not SessionStatus.GENERATING,
            finish_reason=session.finish_reason.value if session.finish_reason else None,
            turn_tokens=session.turn_tokens, generated_total=session.generated_total, text_out=session.text_out,
            sampling=session.sampling, limits=session.limits, capacity=session.capacity,
            rng_state=session.rng.bit_generator.state, kv=kv)

    def restore_session(self, data: bytes, *, session_id: str | None = None) -> OpenedSession:
        """A session rebuilt from `save_session` bytes (this process or another), under `session_id` (default:
        the snapshot's id). INVALID_ARGUMENT for corrupt / foreign bytes, FAILED_PRECONDITION for a snapshot
        of another model, ALREADY_EXISTS when the id is taken."""
        return self._restore(snapshot.decode(data), session_id=session_id)

    def _restore(self, state: snapshot.SessionState, *, session_id: str | None = None) -> OpenedSession:
        m = self._models.get(state.model)
        if m is None or self._fingerprint(state.model) != state.model_sha256:
            raise FailedPrecondition(f"the snapshot is of model {state.model!r} (sha256 {state.model_sha256[:12]}"
                                     "...), which this server does not serve; restore it where that model runs")
        sid = check_session_id(session_id or state.session_id)
        if sid in self._sessions:
            raise AlreadyExists(f"session {sid!r} already exists")
        capacity = min(state.capacity, m.capacity)
        vocab = m.decoder.vocab_size
        if len(state.tokens) >= capacity + 1 or any(t >= vocab for t in state.tokens):
            raise InvalidArgument(f"snapshot tokens do not fit this model (vocab {vocab}, context {capacity})")
        self._make_room(m)
        session = Session(id=sid, model=state.model, npc_id=state.npc_id, sampling=state.sampling,
                          limits=state.limits, capacity=capacity, rng=snapshot.restore_rng(state.rng_state))
        m.scheduler.admit(session)   # ResourceExhausted when every slot is taken
        session.tokens = list(state.tokens)
        session.turn_tokens, session.generated_total = state.turn_tokens, state.generated_total
        session.text_out = state.text_out
        session.detokenizer = m.tokenizer.detokenizer() if m.tokenizer else None
        session.stop_matcher = StopMatcher(session.sampling.stop) if session.sampling.stop else None
        session.prefix_looked_up = True      # the KV comes from the snapshot or from one re-prefill
        if state.kv:
            layout = [(a.shape[0], a.shape[2], a.dtype) for a in m.decoder.read_kv(session.slot, 0, 0)]
            if layout != [(a.shape[0], a.shape[2], a.dtype) for a in state.kv]:
                m.scheduler.release(session)
                raise InvalidArgument("snapshot KV arrays do not match this model's KV cache layout")
            m.decoder.write_kv(session.slot, 0, [np.ascontiguousarray(a) for a in state.kv])
            session.kv_len = state.kv_len
        if state.finished:
            session.status = SessionStatus.FINISHED
            session.finish_reason = FinishReason(state.finish_reason) if state.finish_reason else None
        self._sessions[sid] = session
        self._gone.pop(sid, None)
        return OpenedSession(session_id=sid, model=state.model, prompt_tokens=len(session.tokens),
                             cached_prefix_tokens=session.kv_len)

    def _fingerprint(self, model: str) -> str:
        """The model identity snapshots are bound to (hashed once per model: every turn end writes one)."""
        found = self._fingerprints.get(model)
        if found is None:
            m = self._models[model]
            found = self._fingerprints[model] = snapshot.fingerprint(
                m.package.manifest if m.package is not None else None,
                f"decoder:{model}:{m.decoder.vocab_size}:{m.capacity}")
        return found

    def session_info(self, session_id: str) -> dict:
        s = self._session(check_session_id(session_id))
        return {"session_id": s.id, "model": s.model, "npc_id": s.npc_id, "status": s.status.value,
                "finish_reason": s.finish_reason.value if s.finish_reason else None,
                "context_tokens": len(s.tokens), "max_context": s.capacity, "generated_total": s.generated_total,
                "prefix_hit_tokens": s.prefix_hit_tokens,
                "pending_prefill_tokens": s.pending if s.pending > 1 and s.has_work else 0}

    # -- running ------------------------------------------------------------------------------------------
    # One entry of a tick / step while it runs: (session, token cap, its result, filled in as steps run).
    # The result IS the accumulator: no separate work record.

    @staticmethod
    def _new_result(session_id: str) -> TickResult:
        return TickResult(session_id=session_id, token_ids=[], text_delta="", finished=False, finish_reason=None,
                          stats=TickStats(0.0, 0, 0, 0, False))

    def _run(self, entries: list[tuple[Session, int, TickResult]], *, deadline: float | None,
             max_rounds: int | None, must_progress: bool = False, credit_s: dict[str, float] | None = None) -> None:
        """Steps until no work is left, the next step would pass `deadline`, or after `max_rounds` rounds.
        A round gives every model one step (one forward pass). `credit_s[model]`: time saved up by earlier
        ticks that could fit nothing; the first step may spend it on the smallest step."""
        by_model: dict[str, list[tuple[Session, int, TickResult]]] = {}
        for e in entries:
            by_model.setdefault(e[0].model, []).append(e)
        credit_s = dict(credit_s or {})
        rounds, progressed = 0, False
        while max_rounds is None or rounds < max_rounds:
            stepped = False
            for name, group in by_model.items():
                ready = [(s, r) for s, cap, r in group if len(r.token_ids) < cap and s.has_work]
                if not ready:
                    continue
                remaining = None if deadline is None else deadline - time.perf_counter()
                scheduler = self._models[name].scheduler
                plan = scheduler.schedule([s for s, _ in ready], remaining_s=remaining,
                                          must_progress=must_progress and not progressed,
                                          credit_s=credit_s.pop(name, 0.0))
                if plan is None:
                    for _, r in ready:
                        r.stats.budget_limited = True
                    continue
                result = scheduler.step(plan)
                stepped = progressed = True
                index = {id(s): r for s, r in ready}
                if plan.prefill is not None:
                    stats = index[id(plan.prefill)].stats
                    stats.steps += 1
                    stats.max_batch = max(stats.max_batch, 1)
                    stats.prefill_tokens += result.batch
                    self._prefill_tokens += result.batch
                else:
                    rows = len(plan.decode)
                    for s in plan.decode:
                        stats = index[id(s)].stats
                        stats.steps += 1
                        stats.max_batch = max(stats.max_batch, rows)
                for k, (s, token) in enumerate(zip(result.sessions, result.tokens)):
                    r = index[id(s)]
                    r.token_ids.append(token)
                    if result.logprobs is not None and result.logprobs[k] is not None:
                        if r.logprobs is None:
                            r.logprobs, r.choice_probs = [], []
                        r.logprobs.append(result.logprobs[k])
                        r.choice_probs.append(result.choice_probs[k])
            rounds += 1
            if not stepped:
                break

    @staticmethod
    def _complete(session: Session, cap: int, r: TickResult, engine_ms: float, now: float) -> TickResult:
        """Fills in what is known when the call ends: text, finish state, stats."""
        s = session
        s.touch(now)
        finished = s.status is not SessionStatus.GENERATING
        r.text_delta = s.take_text()
        r.finished = finished
        r.finish_reason = s.finish_reason if finished else None
        st = r.stats
        st.engine_ms = engine_ms
        st.context_tokens = len(s.tokens)
        st.budget_limited = st.budget_limited and not finished and len(r.token_ids) < cap
        st.pending_prefill_tokens = s.pending if s.pending > 1 and s.has_work else 0
        if r.logprobs is None and s.sampling.logprobs:
            r.logprobs, r.choice_probs = [], []
        return r

    def _tick_entry(self, r: TickRequest, field: str, seen: set[str]) -> tuple[Session, int, TickResult, float]:
        """Validates one entry (once) and applies its new input; raises with nothing of the entry applied."""
        budget_ms, cap = check_tick_entry(r, self.limits, field)
        if r.session_id in seen:
            raise InvalidArgument(f"{field}.session_id {r.session_id!r} appears twice in one tick")
        seen.add(r.session_id)
        session = self._session(r.session_id)
        restored = self._restored.pop(session.id, None)
        if r.new_input is not None:
            self._new_turn(session, r.new_input, r.constraint)   # all checks before any change
        elif session.status is not SessionStatus.GENERATING:
            raise FailedPrecondition(
                f"session {r.session_id!r} finished its turn ({session.finish_reason.value}); "
                "send new_input to start the next turn")
        result = self._new_result(session.id)
        if restored is not None:
            result.stats.restore_ms, result.stats.restored_from = restored
        return session, cap, result, budget_ms

    def tick(self, requests: Sequence[TickRequest], *, deadline: float | None = None) -> list[TickResult]:
        """Frame slicing: steps for the requested sessions until the next step is predicted to exceed the
        budget (or every session reached its max_tokens / finished); the rest stays for the next tick.

        An entry that fails (bad field, unknown / evicted session, finished turn without new input, input
        over the context) gets `TickResult.error` and nothing of it is applied; the other entries run.
        `deadline` (a `time.perf_counter()` value): the budget is capped to end by then, measured when the
        tick starts; past it, every entry fails with DeadlineExceeded and nothing runs.
        Starvation guard: when no step fits a tick's budget, the budget is saved up; once the savings of
        consecutive starved ticks cover the smallest next step (one session's decode, rotating, or a minimal
        prefill chunk), that step runs: every session progresses, the time spent stays within the sum of
        the budgets, and no tick overruns by more than one single-row step."""
        t0 = time.perf_counter()
        check_tick_size(len(requests), self.limits)
        left_ms = math.inf if deadline is None else (deadline - t0) * 1000.0
        if left_ms <= 0:
            late = DeadlineExceeded("the call's deadline passed while the Tick waited for the engine")
            return [self._error_result(getattr(r, "session_id", ""), late) for r in requests]
        seen: set[str] = set()
        self._pinned = seen
        entries: list[tuple[Session, int, TickResult, float] | NpcRuntimeError] = []
        for i, r in enumerate(requests):
            try:
                entries.append(self._tick_entry(r, f"entries[{i}]", seen))
            except NpcRuntimeError as exc:
                entries.append(exc)
            except Exception as exc:  # noqa: BLE001 - a bug preparing one entry fails that entry (INTERNAL), not the tick
                failure = InternalError(f"entries[{i}]: {type(exc).__name__} while preparing the entry")
                failure.__cause__ = exc   # the servicer logs the traceback once, with this cause
                entries.append(failure)
        self._pinned = set()
        runs = [e[:3] for e in entries if not isinstance(e, NpcRuntimeError)]
        budget_s = min(min((e[3] for e in entries if not isinstance(e, NpcRuntimeError)), default=0.0),
                       left_ms) / 1000.0
        deadline = t0 + budget_s - self._tick_overhead_s
        t_run = time.perf_counter()
        self._run(runs, deadline=deadline, max_rounds=None, must_progress=self.config.tick_min_progress,
                  credit_s={} if self.config.tick_strict_budget else self._starved_s)
        if not self.config.tick_strict_budget:
            self._account_starvation(runs, budget_s)
        t_after = time.perf_counter()
        engine_ms, now = (t_after - t0) * 1000.0, time.monotonic()
        results = [self._error_result(getattr(r, "session_id", ""), e) if isinstance(e, NpcRuntimeError)
                   else self._complete(*e[:3], engine_ms, now) for r, e in zip(requests, entries)]
        if self._snapshot_writer is not None:
            self._write_finished_turns(results)
        t_end = time.perf_counter()
        # overhead outside the steps' own predictions (validation before, results after) is reserved
        self._tick_overhead_s = 0.8 * self._tick_overhead_s + 0.2 * ((t_run - t0) + (t_end - t_after))
        self._tick_ms.append((t_end - t0) * 1000.0)
        return results

    def _account_starvation(self, runs: list[tuple[Session, int, TickResult]], budget_s: float) -> None:
        models: dict[str, list[tuple[Session, int, TickResult]]] = {}
        for e in runs:
            models.setdefault(e[0].model, []).append(e)
        for name, group in models.items():
            if any(r.stats.steps for _, _, r in group):
                self._starved_s.pop(name, None)
            elif any(len(r.token_ids) < cap and s.has_work for s, cap, r in group):
                # nothing fit: save the budget up for one single-row step later, and shrink the uncertainty
                # margins so a prediction inflated by a noisy measurement does not keep the step out either
                self._starved_s[name] = min(self._starved_s.get(name, 0.0) + budget_s, _MAX_STARVED_S)
                self._models[name].scheduler.costs.relax()

    @staticmethod
    def _error_result(session_id: str, error: NpcRuntimeError) -> TickResult:
        result = Engine._new_result(session_id)
        result.error = error
        return result

    def step(self, caps: Mapping[str, int]) -> list[TickResult]:
        """One round (one forward pass per model), no budget, for sessions in progress: {session id: most
        tokens this round}. A session that is gone gets a result with `error`. The facade steps every open
        generate stream together with it."""
        entries: list[tuple[Session, int, TickResult]] = []
        results = []
        self._pinned = set(caps)
        for sid, cap in caps.items():
            result = self._new_result(sid)
            results.append(result)
            try:
                entries.append((self._session(sid), cap, result))
            except NpcRuntimeError as exc:
                result.error = exc
        self._pinned = set()
        self._run(entries, deadline=None, max_rounds=1)
        now = time.monotonic()
        for e in entries:
            self._complete(*e, 0.0, now)
        if self._snapshot_writer is not None:
            self._write_finished_turns(results)
        return results

    def start(self, request: GenerateRequest, prepared: PreparedOpen | None = None) -> OpenedSession:
        """Validates a generate request (all its turns), opens its session (`request.open`, or `prepared`:
        `prepare_open(request.open)`, made on a worker) and starts its first turn. On failure nothing stays open."""
        check_generate(request, self.limits)
        if request.open is None:
            session = self._session(request.session_id)
            self.begin(session.id, request.turns[0])
            return OpenedSession(session_id=session.id, model=session.model, prompt_tokens=len(session.tokens),
                                 cached_prefix_tokens=session.prefix_hit_tokens)
        opened = self._open(prepared if prepared is not None and prepared.request is request.open else request.open)
        try:
            self.begin(opened.session_id, request.turns[0])
        except Exception:
            self.close_session(opened.session_id)
            raise
        return opened

    def generate(self, session_id: str, text: str | Sequence[int] | None = None, *, max_tokens: int | None = None,
                 constraint: ConstraintSpec | None = None) -> Iterator[TokenChunk]:
        """Streams the session's turn (starting a new one with `text` if given) until it finishes or
        `max_tokens` are produced (then the turn ends with finish_reason LENGTH). Synchronous, one session;
        `EngineFacade.generate` batches concurrent streams."""
        opened = self.start(GenerateRequest(session_id=session_id,
                                            turns=(Turn(input=text, constraint=constraint, max_tokens=max_tokens),)))
        return self._generate(self._session(opened.session_id), max_tokens or UNBOUNDED_TOKENS)

    def _generate(self, session: Session, cap: int) -> Iterator[TokenChunk]:
        produced = 0
        while True:
            if session.status is SessionStatus.GENERATING and produced >= cap:
                self._models[session.model].scheduler.cancel(session, FinishReason.LENGTH)
            if session.slot is None and session.status is SessionStatus.GENERATING:
                return   # closed or evicted meanwhile
            entry = (session, cap - produced, self._new_result(session.id))
            if session.status is SessionStatus.GENERATING:
                self._run([entry], deadline=None, max_rounds=1)
            r = self._complete(*entry, 0.0, time.monotonic())
            produced += len(r.token_ids)
            if r.token_ids or r.text_delta or r.finished:
                yield TokenChunk(session.id, r.token_ids, r.text_delta, r.finished, r.finish_reason,
                                 r.logprobs, r.choice_probs)
            if r.finished:
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
