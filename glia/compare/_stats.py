"""Pure statistics for `glia compare`: bootstrap CIs and simulations-to-threshold.

Kept free of I/O and actors so the numbers in a comparison report can be
hand-checked and property-tested on their own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from glia._errors import InputError


def bootstrap_ci(
    scores: Sequence[float],
    *,
    level: float = 0.9,
    resamples: int = 2000,
    seed: int = 0,
    statistic: Literal["mean", "median"] = "mean",
) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean (or median) of `scores` (seeded, deterministic)."""
    if len(scores) == 0:
        raise InputError("bootstrap_ci needs at least one score; got none (run repeats >= 1)")
    if not 0.0 < level < 1.0:
        raise InputError(f"level must be in (0, 1); got {level} (use e.g. 0.9)")
    data = np.asarray(scores, dtype=np.float64)
    if len(data) == 1:
        # One repeat carries no spread: the interval is the point itself.
        return float(data[0]), float(data[0])
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(data), size=(resamples, len(data)))
    samples = data[idx]
    means = samples.mean(axis=1) if statistic == "mean" else np.median(samples, axis=1)
    tail = (1.0 - level) / 2.0
    lo, hi = np.quantile(means, [tail, 1.0 - tail])
    return float(lo), float(hi)


def sims_to_reach(curve: Sequence[float], target: float) -> int | None:
    """1-based number of simulations after which the best-so-far `curve` reaches `target`.

    Scores are higher-is-better; None when the target is never reached.
    """
    best = -np.inf
    for i, score in enumerate(curve, start=1):
        best = max(best, score)
        if best >= target:
            return i
    return None


def sims_to_reach_cost(curve: Sequence[float | None], best: float, fraction: float) -> int | None:
    """1-based number of simulations after which a best-so-far *cost* `curve` (lower is
    better; None: nothing valid yet) comes within ``1 / fraction`` of `best`, the best cost
    any method found on the same workload: T90 is ``fraction=0.9`` (cost <= best / 0.9), the
    lower-is-better reading of "90 % of the best score" when a score is ``1 / cost``.
    None when never."""
    if not 0.0 < fraction <= 1.0:
        raise InputError(f"fraction must be in (0, 1]; got {fraction} (use e.g. 0.9)")
    target = best / fraction
    for i, cost in enumerate(curve, start=1):
        if cost is not None and cost <= target:
            return i
    return None
