"""The scheduler: which sessions prefill, which decode; one step = one forward pass.

    plan = scheduler.schedule(sessions, remaining_s=...)   # StepPlan or None (nothing fits / no work)
    result = scheduler.step(plan)                          # one forward pass, sampling, session updates

* A prefill is its own pass over one session's slot (`pool[i:i+1]`), chunked when long; its first chunk
  first reuses cached prefix KV. A decode step is ONE pass over every session in the plan, which always
  occupy a contiguous slot range: sessions that can decode are kept in slots [0, n) by swapping KV on
  join/leave only, never per step.
* Given `remaining_s`, the plan is the largest piece of work predicted (by `StepCostModel`) to fit: a
  smaller prefill chunk or a sub-batch (a rotating window of the decode slots, so nobody starves).
* Sessions join and leave between steps; the model does not care which sessions are in a pass, so greedy
  output is identical batched or alone.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from npc_runtime.decode.onnx_model import DecoderModel
from npc_runtime.decode.sampling import sample_batch, token_logprobs
from npc_runtime.errors import ResourceExhausted
from npc_runtime.sessions.cost_model import StepCostModel
from npc_runtime.sessions.prefix_cache import PrefixCache
from npc_runtime.sessions.session import FinishReason, Session, SessionStatus

MIN_PREFILL_CHUNK = 16


@dataclass
class StepPlan:
    prefill: Session | None = None     # a prefill pass over this session ...
    chunk: int = 0                     # ... feeding this many of its pending tokens
    decode: list[Session] = field(default_factory=list)   # or a decode pass, one token each
    start_slot: int = 0                # decode rows are slots start_slot .. start_slot + len(decode) - 1
    predicted_s: float = 0.0

    @property
    def kind(self) -> str:
        return "prefill" if self.prefill is not None else "decode"


@dataclass
class StepResult:
    kind: str
    sessions: list[Session]            # sessions that received a token, in order
    tokens: list[int]
    seconds: float
    batch: int                         # rows in the pass (decode) or tokens fed (prefill)
    logprobs: list[float | None] | None = None            # per token, for sessions that asked (else None)
    choice_probs: list[dict[int, float] | None] | None = None   # per token: constrained alternatives


class Scheduler:
    def __init__(self, model: DecoderModel, *, max_prefill_chunk: int, sliding_window: bool = False,
                 prefix_cache: PrefixCache | None = None, eos_ids: Sequence[int] = (),
                 cost_model: StepCostModel | None = None) -> None:
        self.model = model
        self.max_prefill_chunk = max_prefill_chunk
        self.sliding_window = sliding_window
        self.prefix_cache = prefix_cache
        self.eos_ids = frozenset(int(e) for e in eos_ids)
        self.costs = cost_model or StepCostModel()
        self.slots: list[Session | None] = [None] * model.max_slots
        self._rotation = 0
        self.swaps = 0
        self.steps = 0
        self.decode_rows = 0

    # -- slots --------------------------------------------------------------------------------------------
    def admit(self, session: Session) -> None:
        for k, occupant in enumerate(self.slots):
            if occupant is None:
                self.slots[k] = session
                session.slot = k
                return
        raise ResourceExhausted(f"all {len(self.slots)} session slots of model {session.model!r} are in use; "
                                "close sessions or raise max_sessions")

    def release(self, session: Session) -> None:
        if session.slot is not None and self.slots[session.slot] is session:
            self.slots[session.slot] = None
        session.slot = None

    @property
    def free_slots(self) -> int:
        return sum(s is None for s in self.slots)

    def _arrange(self, sessions: list[Session]) -> None:
        """Move `sessions` into slots [0, n) (KV copies only for those outside)."""
        n = len(sessions)
        outside = [s for s in sessions if s.slot >= n]
        if not outside:
            return
        inside = {s.slot for s in sessions if s.slot < n}
        targets = [k for k in range(n) if k not in inside]
        for session, k in zip(outside, targets):
            other, old = self.slots[k], session.slot
            if other is None:
                self.model.move(old, k, session.kv_len)
                self.slots[old] = None
            else:
                self.model.swap(old, session.kv_len, k, other.kv_len)
                other.slot = old
                self.slots[old] = other
            self.slots[k] = session
            session.slot = k
            self.swaps += 1

    # -- planning -----------------------------------------------------------------------------------------
    def prepare_prefill(self, session: Session) -> None:
        """First prefill of a prompt: copy the KV of its longest cached prefix into the slot (once; the engine
        calls it at open_session so the hit is known then)."""
        if session.kv_len != 0 or self.prefix_cache is None or session.prefix_looked_up:
            return
        session.prefix_looked_up = True
        blocks = self.prefix_cache.lookup(session.tokens)
        if not blocks:
            return
        size = self.prefix_cache.block_tokens
        for b, block in enumerate(blocks):
            self.model.write_kv(session.slot, b * size, block)
        session.kv_len = min(len(blocks) * size, len(session.tokens) - 1)   # keep one token to get logits from
        session.prefix_hit_tokens += session.kv_len

    def schedule(self, sessions: Sequence[Session], *, remaining_s: float | None = None,
                 must_progress: bool = False, credit_s: float = 0.0) -> StepPlan | None:
        """The next step for `sessions` (those allowed to advance), or None. When nothing fits `remaining_s`,
        `credit_s` (budget saved up by starved ticks) may pay for the SMALLEST next step (one session's
        decode, rotating, or a minimal prefill chunk), never a bigger one: a tick then overruns its budget by
        at most one single-row step, not by a whole batch (a game frame must not hitch for a batch)."""
        prefills: list[Session] = []
        decodes: list[Session] = []
        for session in sessions:   # one pass: this runs before every step
            if session.status is not SessionStatus.GENERATING:
                continue
            pending = len(session.tokens) - session.kv_len
            if pending > 1:
                self.prepare_prefill(session)   # a prefix-cache hit may leave one token: then it decodes
                pending = len(session.tokens) - session.kv_len
            if pending > 1:
                prefills.append(session)
            elif pending == 1:
                decodes.append(session)
        if not prefills and not decodes:
            return None
        if prefills:
            session = prefills[0]
            chunk = min(session.pending, self.max_prefill_chunk)
            plan = self._fit_prefill(session, chunk, remaining_s)
            if plan is not None:
                return plan
        if decodes:
            plan = self._fit_decode(decodes, remaining_s)
            if plan is not None:
                return plan
        if credit_s > 0.0 and remaining_s is not None:
            plan = self._smallest_step(prefills, decodes)
            if plan.predicted_s <= remaining_s + credit_s:
                return plan
        return self._smallest_step(prefills, decodes) if must_progress else None

    def _smallest_step(self, prefills: list[Session], decodes: list[Session]) -> StepPlan:
        """One session's decode (a rotating window of one) or a minimal prefill chunk."""
        if decodes:
            return self._fit_decode(decodes, None, batch=1)
        session = prefills[0]
        chunk = min(session.pending, MIN_PREFILL_CHUNK)
        return StepPlan(prefill=session, chunk=chunk, predicted_s=self.costs.predict_prefill(chunk))

    def _fit_prefill(self, session: Session, chunk: int, remaining_s: float | None) -> StepPlan | None:
        if remaining_s is None:
            return StepPlan(prefill=session, chunk=chunk, predicted_s=self.costs.predict_prefill(chunk))
        while True:
            cost = self.costs.predict_prefill(chunk)
            if cost <= remaining_s:
                return StepPlan(prefill=session, chunk=chunk, predicted_s=cost)
            if chunk <= MIN_PREFILL_CHUNK:
                return None
            chunk = max(MIN_PREFILL_CHUNK, 1 << ((chunk - 1).bit_length() - 1))   # next lower power of two

    def _fit_decode(self, decodes: list[Session], remaining_s: float | None,
                    batch: int | None = None) -> StepPlan | None:
        n = len(decodes)
        predicted = None
        if batch is None:
            batch = n
            if remaining_s is not None and (predicted := self.costs.predict_decode(n)) > remaining_s:
                lo, hi = 0, n          # largest b with predicted cost <= remaining
                while lo < hi:
                    mid = (lo + hi + 1) // 2
                    lo, hi = (mid, hi) if self.costs.predict_decode(mid) <= remaining_s else (lo, mid - 1)
                # sub-batches are powers of two: sizes the cost model has measured (warm-up), so the
                # prediction of the step that runs is not an interpolation
                batch = 1 << (lo.bit_length() - 1) if lo else 0
                predicted = None
            if batch == 0:
                return None
        self._arrange(decodes)
        by_slot = sorted(decodes, key=lambda s: s.slot)
        start = 0
        if batch < n:   # a rotating window of the slots, so every session gets its turn
            start = self._rotation % n
            start = min(start, n - batch)
            self._rotation = (start + batch) % n
        chosen = by_slot[start:start + batch]
        if predicted is None:
            predicted = self.costs.predict_decode(batch)
        return StepPlan(decode=chosen, start_slot=start, predicted_s=predicted)

    # -- running ------------------------------------------------------------------------------------------
    def step(self, plan: StepPlan) -> StepResult:
        t0 = time.perf_counter()
        if plan.prefill is not None:
            result = self._prefill(plan.prefill, plan.chunk)
            result.seconds = time.perf_counter() - t0
            self.costs.record_prefill(plan.chunk, result.seconds)
        else:
            result = self._decode(plan.decode, plan.start_slot)
            result.seconds = time.perf_counter() - t0
            self.costs.record_decode(len(plan.decode), result.seconds)
            self.decode_rows += len(plan.decode)
        self.steps += 1
        return result

    def _prefill(self, session: Session, chunk: int) -> StepResult:
        start = session.kv_len
        ids = np.asarray(session.tokens[start:start + chunk], dtype=np.int64)
        logits = self.model.prefill(session.slot, ids, start)
        session.kv_len += len(ids)
        if session.kv_len < len(session.tokens):
            return StepResult("prefill", [], [], 0.0, len(ids))
        self._fill_prefix_cache(session)
        tokens, logprobs, choices = self._sample([session], logits[None, :])
        token = int(tokens[0])
        self._accept(session, token)
        return StepResult("prefill", [session], [token], 0.0, len(ids), logprobs, choices)

    def _decode(self, sessions: list[Session], start_slot: int) -> StepResult:
        ids = np.fromiter((s.tokens[s.kv_len] for s in sessions), dtype=np.int64, count=len(sessions))
        lens = np.fromiter((s.kv_len for s in sessions), dtype=np.int64, count=len(sessions))
        logits = self.model.decode(start_slot, ids, lens)
        tokens, logprobs, choices = self._sample(sessions, logits)
        tokens = tokens.tolist()
        for session, token in zip(sessions, tokens):
            session.kv_len += 1
            self._accept(session, token)
        return StepResult("decode", list(sessions), tokens, 0.0, len(sessions), logprobs, choices)

    def _sample(self, sessions: list[Session], logits: np.ndarray):
        """(tokens [B], logprobs or None, choice_probs or None): the last two only when a session asked."""
        masks = [s.constraint.allowed_token_mask(s.constraint_state) if s.constraint is not None else None
                 for s in sessions]
        tokens = sample_batch(logits, [s.sampling for s in sessions], [s.rng for s in sessions],
                              [s.tokens for s in sessions], masks)
        wanted = [b for b, s in enumerate(sessions) if s.sampling.logprobs]
        if not wanted:
            return tokens, None, None
        chosen, alternatives = token_logprobs(logits, tokens, masks, wanted,
                                              [sessions[b].sampling.top_logprobs for b in wanted])
        logprobs: list[float | None] = [None] * len(sessions)
        choices: list[dict[int, float] | None] = [None] * len(sessions)
        for k, b in enumerate(wanted):
            logprobs[b], choices[b] = chosen[k], alternatives[k]
        return tokens, logprobs, choices

    def _fill_prefix_cache(self, session: Session) -> None:
        cache = self.prefix_cache
        upto = min(session.prefix_insert_upto, session.kv_len)
        session.prefix_insert_upto = 0
        if cache is None or upto < cache.block_tokens:
            return
        size = cache.block_tokens
        for b, key in cache.missing_blocks(session.tokens, upto):
            cache.insert(key, self.model.read_kv(session.slot, b * size, (b + 1) * size))

    def _accept(self, session: Session, token: int) -> None:
        """Append a sampled token; text, stop sequences, constraint, limits."""
        session.tokens.append(token)
        session.turn_tokens += 1
        session.generated_total += 1
        if token in self.eos_ids and not session.sampling.ignore_eos:
            return self._finish(session, FinishReason.EOS)
        if session.detokenizer is not None:
            delta = session.detokenizer.push(token)
            if session.stop_matcher is not None:
                delta, stopped = session.stop_matcher.feed(delta)
                session.text_out += delta
                if stopped:
                    return self._finish(session, FinishReason.STOP, flush=False)
            else:
                session.text_out += delta
        if session.constraint is not None:
            session.constraint_state = session.constraint.advance(session.constraint_state, token)
            if session.constraint.is_complete(session.constraint_state):
                return self._finish(session, FinishReason.STOP)
        if session.turn_tokens >= session.limits.max_new_tokens:
            return self._finish(session, FinishReason.LENGTH)
        if len(session.tokens) >= session.capacity:   # no room to feed the token just sampled
            if self.sliding_window:
                self.slide(session)
            else:
                self._finish(session, FinishReason.CONTEXT_FULL)

    def slide(self, session: Session) -> None:
        """Sliding window: keep the last capacity/2 tokens; they are re-prefilled (positions restart)."""
        keep = max(1, session.capacity // 2)
        session.tokens = session.tokens[-keep:]
        session.kv_len = 0
        session.prefix_insert_upto = 0
        session.prefix_looked_up = True   # the window's tokens are no shared prefix

    def _finish(self, session: Session, reason: FinishReason, *, flush: bool = True) -> None:
        if flush and session.detokenizer is not None:
            tail = session.detokenizer.flush()
            if session.stop_matcher is not None:
                tail, stopped = session.stop_matcher.feed(tail)
                if not stopped:
                    tail += session.stop_matcher.flush()
            session.text_out += tail
        session.finish(reason)

    def cancel(self, session: Session, reason: FinishReason = FinishReason.CANCELLED) -> None:
        if session.status is SessionStatus.GENERATING:
            self._finish(session, reason)
