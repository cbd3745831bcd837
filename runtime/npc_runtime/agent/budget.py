"""Spending limits for escalations: sliding windows per NPC and global, checked BEFORE a call.

Every attempt reserves its worst case (prompt estimate + max output tokens, priced from the price table)
and is refused if any window would go over; after the call the reservation is settled to the real
usage. So a storm of escalations can never spend past the limits, only be refused (and counted).
Time is wall-clock (`time.monotonic`), windows are 60 s (calls, tokens) and 3600 s (cost).
The usage an endpoint reports is untrusted (`sane_usage`): missing, negative or absurd counts settle at the
reservation, so a hostile or broken endpoint can neither free budget nor record a negative cost.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Mapping


@dataclass(frozen=True, kw_only=True)
class BudgetConfig:
    npc_calls_per_min: int = 4
    npc_tokens_per_min: int = 4_000
    global_calls_per_min: int = 60
    global_tokens_per_min: int = 60_000
    global_cost_per_hour_usd: float = 0.50


# model -> (USD per 1M input tokens, USD per 1M output tokens). Unknown models use DEFAULT_PRICE:
# deliberately pricey, so a missing row can only make the budget stricter.
PRICES_PER_MTOK: Mapping[str, tuple[float, float]] = {
    "local": (0.0, 0.0),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4o": (2.50, 10.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "claude-3-5-haiku-latest": (0.80, 4.00),
    "claude-haiku-4-5": (1.00, 5.00),
    "claude-sonnet-4-5": (3.00, 15.00),
}
DEFAULT_PRICE: tuple[float, float] = (5.0, 20.0)


def price_usd(model: str, input_tokens: int, output_tokens: int,
              prices: Mapping[str, tuple[float, float]] = PRICES_PER_MTOK) -> float:
    pin, pout = prices.get(model, DEFAULT_PRICE)
    return (input_tokens * pin + output_tokens * pout) / 1_000_000


# Reported input beyond this is absurd: the estimate is ~4 characters a token, and no tokenizer spends more
# than a few tokens on one character.
ABSURD_INPUT_FACTOR = 8
ABSURD_INPUT_SLACK = 4_096


@dataclass(frozen=True)
class SaneUsage:
    input_tokens: int
    output_tokens: int
    problem: str = ""     # why the reported usage was replaced ("" when it was kept)


def sane_usage(input_tokens: int | None, output_tokens: int | None, *, estimated_input: int,
               max_output: int) -> SaneUsage:
    """The usage to settle a call at. Input missing, negative or beyond ABSURD_INPUT_FACTOR x the estimate
    settles at the estimate (what was reserved); output missing or negative settles at `max_output` (the
    reservation), output beyond it (the endpoint was asked for at most that) at `max_output`."""
    problems = []
    sane_in = input_tokens
    if input_tokens is None or input_tokens < 0:
        problems.append(f"input tokens {input_tokens!r}")
        sane_in = estimated_input
    elif input_tokens > max(ABSURD_INPUT_FACTOR * estimated_input, estimated_input + ABSURD_INPUT_SLACK):
        problems.append(f"input tokens {input_tokens} for a prompt of ~{estimated_input}")
        sane_in = estimated_input
    sane_out = output_tokens
    if output_tokens is None or output_tokens < 0 or output_tokens > max_output:
        problems.append(f"output tokens {output_tokens!r} (max {max_output})")
        sane_out = max_output
    return SaneUsage(int(sane_in), int(sane_out), "; ".join(problems))


@dataclass
class _Entry:
    t: float
    npc_id: str
    tokens: int
    cost: float


@dataclass
class Reservation:
    entry: _Entry


@dataclass
class BudgetSnapshot:
    calls_last_min: int
    tokens_last_min: int
    cost_last_hour_usd: float
    denied: int


@dataclass
class Budget:
    config: BudgetConfig = field(default_factory=BudgetConfig)
    clock: Callable[[], float] = time.monotonic

    def __post_init__(self):
        self._lock = threading.Lock()
        self._minute: deque[_Entry] = deque()
        self._hour: deque[_Entry] = deque()
        self.denied = 0
        self.total_cost_usd = 0.0
        self.total_tokens = 0

    def _expire(self, now: float) -> None:
        while self._minute and now - self._minute[0].t >= 60.0:
            self._minute.popleft()
        while self._hour and now - self._hour[0].t >= 3600.0:
            self._hour.popleft()

    def reserve(self, npc_id: str, tokens: int, cost_usd: float) -> Reservation | str:
        """A Reservation, or the reason (a string) why the call would break a limit."""
        c = self.config
        with self._lock:
            now = self.clock()
            self._expire(now)
            npc = [e for e in self._minute if e.npc_id == npc_id]
            checks = (
                (len(npc) + 1 > c.npc_calls_per_min, f"npc calls/min {c.npc_calls_per_min}"),
                (sum(e.tokens for e in npc) + tokens > c.npc_tokens_per_min, f"npc tokens/min {c.npc_tokens_per_min}"),
                (len(self._minute) + 1 > c.global_calls_per_min, f"global calls/min {c.global_calls_per_min}"),
                (sum(e.tokens for e in self._minute) + tokens > c.global_tokens_per_min,
                 f"global tokens/min {c.global_tokens_per_min}"),
                (sum(e.cost for e in self._hour) + cost_usd > c.global_cost_per_hour_usd + 1e-12,
                 f"global cost/hour ${c.global_cost_per_hour_usd:.2f}"),
            )
            for over, reason in checks:
                if over:
                    self.denied += 1
                    return reason
            entry = _Entry(now, npc_id, tokens, cost_usd)
            self._minute.append(entry)
            self._hour.append(entry)
            return Reservation(entry)

    def settle(self, reservation: Reservation, tokens: int, cost_usd: float) -> None:
        """Replace the worst-case reservation by the real usage. A negative or non-finite figure (a bug
        upstream of `sane_usage`) keeps the reservation's: settling can never free budget."""
        if not (isinstance(tokens, int) and tokens >= 0):
            tokens = reservation.entry.tokens
        if not (math.isfinite(cost_usd) and cost_usd >= 0):
            cost_usd = reservation.entry.cost
        with self._lock:
            reservation.entry.tokens = tokens
            reservation.entry.cost = cost_usd
            self.total_tokens += tokens
            self.total_cost_usd += cost_usd

    def snapshot(self) -> BudgetSnapshot:
        with self._lock:
            now = self.clock()
            self._expire(now)
            return BudgetSnapshot(len(self._minute), sum(e.tokens for e in self._minute),
                                  sum(e.cost for e in self._hour), self.denied)


@dataclass
class CircuitBreaker:
    """Opens after `failures` consecutive provider failures; after `cooldown_s` lets one trial call through."""

    failures: int = 5
    cooldown_s: float = 10.0
    clock: Callable[[], float] = time.monotonic

    def __post_init__(self):
        self._lock = threading.Lock()
        self._consecutive = 0
        self._opened_at: float | None = None
        self._trial_in_flight = False
        self.opened_count = 0

    @property
    def state(self) -> str:
        with self._lock:
            return self._state_locked()

    def _state_locked(self) -> str:
        if self._opened_at is None:
            return "closed"
        return "half_open" if self.clock() - self._opened_at >= self.cooldown_s else "open"

    def allow(self) -> bool:
        with self._lock:
            state = self._state_locked()
            if state == "closed":
                return True
            if state == "half_open" and not self._trial_in_flight:
                self._trial_in_flight = True
                return True
            return False

    def record_success(self) -> None:
        with self._lock:
            self._consecutive = 0
            self._opened_at = None
            self._trial_in_flight = False

    def record_failure(self) -> None:
        with self._lock:
            self._consecutive += 1
            if self._trial_in_flight or self._consecutive >= self.failures:
                if self._opened_at is None or self._trial_in_flight:
                    self.opened_count += 1
                self._opened_at = self.clock()
            self._trial_in_flight = False
