"""Predicts the wall time of the next step from measured ones (frame slicing).

Decode steps: an EWMA of mean and variance per batch size; unmeasured sizes interpolate linearly between the
nearest measured ones (per-row cost beyond the largest). Prefill chunks: the same, per chunk length.
A prediction is mean + `sigmas` standard deviations, so a tick rarely overruns its budget.
"""

from __future__ import annotations

import bisect
import math


class _Ewma:
    __slots__ = ("mean", "var", "count")

    def __init__(self, value: float) -> None:
        self.mean, self.var, self.count = value, (0.1 * value) ** 2, 1

    def add(self, value: float, alpha: float) -> None:
        if self.count >= 3:   # one OS hiccup must not freeze frame slicing: clip outliers at 4x the mean
            value = min(value, 4.0 * self.mean)
        delta = value - self.mean
        self.mean += alpha * delta
        self.var = (1 - alpha) * (self.var + alpha * delta * delta)
        self.count += 1


class _Curve:
    """cost(x) for integer x (batch size or chunk length)."""

    def __init__(self, alpha: float, sigmas: float) -> None:
        self.alpha, self.sigmas = alpha, sigmas
        self.points: dict[int, _Ewma] = {}
        self._keys: list[int] = []

    def add(self, x: int, seconds: float) -> None:
        point = self.points.get(x)
        if point is None:
            self.points[x] = _Ewma(seconds)
            bisect.insort(self._keys, x)
        else:
            point.add(seconds, self.alpha)

    def _at(self, x: int) -> float:
        p = self.points[x]
        return p.mean + self.sigmas * math.sqrt(max(p.var, 0.0))

    def relax(self, factor: float) -> None:
        for point in self.points.values():
            point.var *= factor

    def predict(self, x: int) -> float | None:
        if not self._keys:
            return None
        if x in self.points:
            return self._at(x)
        i = bisect.bisect_left(self._keys, x)
        if i == 0:
            return self._at(self._keys[0])               # smaller than anything measured: at most that
        if i == len(self._keys):
            last = self._keys[-1]
            return self._at(last) * x / last             # beyond: per-row cost of the largest
        lo, hi = self._keys[i - 1], self._keys[i]
        w = (x - lo) / (hi - lo)
        return (1 - w) * self._at(lo) + w * self._at(hi)


class StepCostModel:
    def __init__(self, *, alpha: float = 0.2, sigmas: float = 2.0) -> None:
        self.decode = _Curve(alpha, sigmas)
        self.prefill = _Curve(alpha, sigmas)

    def predict_decode(self, batch: int) -> float:
        value = self.decode.predict(batch)
        return 0.0 if value is None else value

    def predict_prefill(self, tokens: int) -> float:
        value = self.prefill.predict(tokens)
        return 0.0 if value is None else value

    def relax(self, factor: float = 0.5) -> None:
        """Shrink the variance terms (called when a tick could fit nothing)."""
        self.decode.relax(factor)
        self.prefill.relax(factor)

    def record_decode(self, batch: int, seconds: float) -> None:
        self.decode.add(batch, seconds)

    def record_prefill(self, tokens: int, seconds: float) -> None:
        self.prefill.add(tokens, seconds)
