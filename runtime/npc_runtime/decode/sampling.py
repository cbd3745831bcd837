"""Sampling: greedy, temperature, top-k, top-p, repetition penalty, seeded per-session RNG, stop sequences.

Rows of a batch are sampled with each row's own parameters and numpy Generator, so a session draws the same
tokens batched or alone. Greedy rows without penalties (the common case) are one vectorised argmax.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from npc_runtime.errors import InvalidArgument


MAX_TOP_LOGPROBS = 20   # as OpenAI's API


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 0.0          # 0: greedy
    top_k: int = 0                    # 0: off
    top_p: float = 1.0                # 1.0: off
    repetition_penalty: float = 1.0   # 1.0: off; >1 discourages tokens already in the session
    seed: int | None = None           # None: a random seed per session
    stop: tuple[str, ...] = field(default_factory=tuple)   # stop sequences, matched on text
    ignore_eos: bool = False
    logprobs: bool = False            # report each token's log-probability (+ constrained alternatives)
    top_logprobs: int = 0             # with logprobs: also the k most likely tokens at each step (0-20)

    def __post_init__(self) -> None:
        object.__setattr__(self, "stop", tuple(self.stop or ()))

    @property
    def is_greedy(self) -> bool:
        return self.temperature <= 0.0

    def validate(self) -> "SamplingParams":
        checks = [
            (self.temperature >= 0.0 and np.isfinite(self.temperature), "temperature must be >= 0"),
            (isinstance(self.top_k, int) and self.top_k >= 0, "top_k must be an integer >= 0"),
            (0.0 < self.top_p <= 1.0, "top_p must be in (0, 1]"),
            (self.repetition_penalty > 0.0 and np.isfinite(self.repetition_penalty),
             "repetition_penalty must be > 0"),
            (self.seed is None or (isinstance(self.seed, int) and self.seed >= 0), "seed must be an integer >= 0"),
            (all(isinstance(s, str) and s for s in self.stop), "stop sequences must be non-empty strings"),
            (len(self.stop) <= 16, "at most 16 stop sequences"),
            (isinstance(self.logprobs, bool), "logprobs must be a boolean"),
            (isinstance(self.top_logprobs, int) and 0 <= self.top_logprobs <= MAX_TOP_LOGPROBS,
             f"top_logprobs must be an integer in [0, {MAX_TOP_LOGPROBS}]"),
            (not self.top_logprobs or self.logprobs, "top_logprobs needs logprobs"),
        ]
        for ok, message in checks:
            if not ok:
                raise InvalidArgument(f"sampling: {message}")
        return self


def apply_repetition_penalty(logits: np.ndarray, history: Sequence[int], penalty: float) -> np.ndarray:
    """CTRL-style: divide positive logits of seen tokens by `penalty`, multiply negative ones."""
    if penalty == 1.0 or not history:
        return logits
    seen = np.unique(np.asarray(history, dtype=np.int64))
    seen = seen[(seen >= 0) & (seen < logits.shape[-1])]
    values = logits[seen]
    logits = logits.copy()
    logits[seen] = np.where(values > 0, values / penalty, values * penalty)
    return logits


def sample_row(logits: np.ndarray, params: SamplingParams, rng: np.random.Generator) -> int:
    """One token from logits [vocab] (already penalised and masked)."""
    if params.is_greedy:
        return int(np.argmax(logits))
    scaled = logits.astype(np.float64) / params.temperature
    if 0 < params.top_k < scaled.shape[0]:
        kth = np.partition(scaled, -params.top_k)[-params.top_k]
        scaled = np.where(scaled < kth, -np.inf, scaled)
    scaled -= scaled.max()
    probs = np.exp(scaled)
    probs /= probs.sum()
    if params.top_p < 1.0:
        order = np.argsort(-probs, kind="stable")
        cumulative = np.cumsum(probs[order])
        keep = order[: int(np.searchsorted(cumulative, params.top_p) + 1)]
        trimmed = np.zeros_like(probs)
        trimmed[keep] = probs[keep]
        probs = trimmed / trimmed.sum()
    # one uniform draw per token: the stream of draws is the same whatever else is in the batch
    cdf = np.cumsum(probs)
    return int(min(np.searchsorted(cdf, rng.random() * cdf[-1], side="right"), len(cdf) - 1))


def sample_batch(logits: np.ndarray, params: Sequence[SamplingParams], rngs: Sequence[np.random.Generator],
                 histories: Sequence[Sequence[int]], masks: Sequence[np.ndarray | None]) -> np.ndarray:
    """Tokens [B] from logits [B, vocab]; masks[b] is a boolean allowed-token mask or None."""
    batch = logits.shape[0]
    if all(m is None and p.temperature <= 0.0 and p.repetition_penalty == 1.0 for p, m in zip(params, masks)):
        return np.argmax(logits, axis=-1)   # all greedy: one vectorised argmax
    out = np.empty(batch, dtype=np.int64)
    simple = [b for b in range(batch)
              if params[b].is_greedy and params[b].repetition_penalty == 1.0 and masks[b] is None]
    if simple:
        out[simple] = np.argmax(logits[simple], axis=-1)
    for b in sorted(set(range(batch)) - set(simple)):
        row = apply_repetition_penalty(logits[b], histories[b], params[b].repetition_penalty)
        if masks[b] is not None:
            row = np.where(masks[b], row, -np.inf)
        out[b] = sample_row(row, params[b], rngs[b])
    return out


MAX_CHOICE_ALTERNATIVES = 64   # a constrained step with more allowed tokens reports no alternatives


def token_logprobs(logits: np.ndarray, tokens: np.ndarray, masks: Sequence[np.ndarray | None],
                   rows: Sequence[int], top_k: Sequence[int] = ()) -> tuple[list[float], list[dict[int, float] | None]]:
    """For batch rows `rows` of logits [B, vocab] and the sampled tokens [B]: the chosen token's
    log-probability under the model's own distribution (log-softmax of the raw logits, before temperature,
    penalties and masks; one vectorised pass over the rows), and for rows with a constraint mask allowing at
    most MAX_CHOICE_ALTERNATIVES tokens, {token: probability} over the allowed tokens, renormalised over that
    set (what a constrained choice step chose between); for other rows with `top_k[k]` > 0 (top_logprobs),
    {token: probability} of the top_k[k] most likely tokens under the model's own distribution. Else None."""
    index = np.asarray(rows, dtype=np.int64)
    sub = logits[index]                                           # [R, vocab]
    top = sub.max(axis=1, keepdims=True)
    log_z = np.log(np.exp(sub - top).sum(axis=1)) + top[:, 0]     # [R]
    chosen = np.asarray(tokens, dtype=np.int64)[index]
    logprobs = (sub[np.arange(len(index)), chosen] - log_z).astype(np.float64).tolist()
    alternatives: list[dict[int, float] | None] = []
    for k, b in enumerate(rows):
        mask = masks[b]
        allowed = np.flatnonzero(mask) if mask is not None else None
        if allowed is None or not 0 < len(allowed) <= MAX_CHOICE_ALTERNATIVES:
            want = int(top_k[k]) if k < len(top_k) else 0
            if want <= 0:
                alternatives.append(None)
                continue
            best = np.argpartition(-sub[k], want - 1)[:want]                 # the k largest, unordered
            best = best[np.argsort(-sub[k, best], kind="stable")]
            alternatives.append(dict(zip(best.tolist(), np.exp(sub[k, best] - log_z[k]).astype(np.float64).tolist())))
            continue
        values = sub[k, allowed].astype(np.float64)
        probs = np.exp(values - values.max())
        probs /= probs.sum()
        alternatives.append(dict(zip(allowed.tolist(), probs.tolist())))
    return logprobs, alternatives


class StopMatcher:
    """Finds stop sequences in streamed text, across token boundaries.

    `feed(delta)` returns (text safe to emit, stopped). Text that could be the start of a stop sequence is
    held back until it is known not to be; on a match, the text before the stop sequence is emitted and the
    stop sequence itself is dropped.
    """

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = tuple(stops)
        self._held = ""

    def feed(self, delta: str) -> tuple[str, bool]:
        if not self.stops:
            return delta, False
        text = self._held + delta
        hits = [i for i in (text.find(s) for s in self.stops) if i >= 0]
        if hits:
            self._held = ""
            return text[: min(hits)], True
        hold = 0
        for stop in self.stops:   # longest suffix of text that is a proper prefix of a stop sequence
            for k in range(min(len(stop) - 1, len(text)), 0, -1):
                if text.endswith(stop[:k]):
                    hold = max(hold, k)
                    break
        self._held = text[len(text) - hold:] if hold else ""
        return text[: len(text) - hold], False

    def flush(self) -> str:
        held, self._held = self._held, ""
        return held
