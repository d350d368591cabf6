"""Percentile bootstrap confidence intervals (Efron & Tibshirani, 1993, ch. 13).

Every headline number medlens prints is a mean of per-question values; its 95 % interval is
the 2.5th and 97.5th percentiles of that mean over ``n_boot`` resamples of the questions with
replacement, drawn from a seeded ``numpy.random.Generator`` so that a report is reproducible.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Estimate:
    """A mean with its percentile-bootstrap 95 % interval over ``n`` questions."""

    value: float
    low: float
    high: float
    n: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        return f"{100 * self.value:.1f} [{100 * self.low:.1f}, {100 * self.high:.1f}] (n={self.n})"


def bootstrap_mean(values: Sequence[float], *, n_boot: int = 1000, seed: int = 0) -> Estimate:
    """Mean of ``values`` and its 95 % percentile-bootstrap interval.

    >>> bootstrap_mean([1, 1, 1, 1])
    Estimate(value=1.0, low=1.0, high=1.0, n=4)
    """
    data = np.asarray(values, dtype=float)
    n = int(data.size)
    if n == 0:
        return Estimate(float("nan"), float("nan"), float("nan"), 0)
    mean = float(data.mean())
    if n_boot <= 0 or n == 1:
        return Estimate(mean, mean, mean, n)
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, n, size=(n_boot, n))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return Estimate(mean, float(low), float(high), n)
