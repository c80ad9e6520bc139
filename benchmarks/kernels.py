"""Kernel throughput: compiled vs the pure-Python source vs numpy.

Usage: python benchmarks/kernels.py

* batched latency: iterations per second of ``iteration_times`` (numba) against the same
  function uncompiled;
* decode fast-forward: decode iterations per second of ``decode_run`` compiled and uncompiled
  (a 128-sequence batch running 100,000 iterations with no event).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

import glia
from glia.kernels import decode_run, iteration_times, select


def _best(fn: Callable[[], object], repeats: int = 5) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    cluster, _ = glia.experiment_config("glia-routing")
    lm = cluster.resolve().latency
    coef = lm.coefficients()
    rng = np.random.default_rng(0)
    n = 1_000_000
    cols = [rng.integers(0, 8192, n).astype(np.int64) for _ in range(6)]
    small = [c[:20_000] for c in cols]
    jit = select(iteration_times, True)
    py = select(iteration_times, False)
    jit(coef, *small)  # compile or load from cache
    print("| kernel | variant | items/s |")
    print("|---|---|---|")
    print(f"| iteration_times | numba | {n / _best(lambda: jit(coef, *cols)):,.0f} |")
    print(f"| iteration_times | python | {20_000 / _best(lambda: py(coef, *small), 2):,.0f} |")

    phases = np.zeros(16, dtype=np.int64)  # no block boundaries: nothing stops the run early
    steps = 100_000
    args = (0.0, 0, 128, 128 * 300, 10, phases, steps, float("inf"), True)
    djit, dpy = select(decode_run, True), select(decode_run, False)
    djit(coef, *args)
    print(f"| decode_run | numba | {steps / _best(lambda: djit(coef, *args)):,.0f} |")
    short = (*args[:6], 5_000, *args[7:])
    print(f"| decode_run | python | {5_000 / _best(lambda: dpy(coef, *short), 2):,.0f} |")


if __name__ == "__main__":
    main()
