"""Fast-forward a replica through a run of decode-only iterations.

While a replica runs only decodes and cannot admit anything new (no prompt in progress, and its
queue empty or blocked by memory or the batch cap), each iteration is the same batch one token
further on: the decoders' KV tokens grow by the batch size, and the decoders whose block fills
take a new block. Until the router sends it more work, its future is a function of time alone,
computed by :func:`decode_run` without per-iteration events.

Decoders are described in aggregate as the replica keeps them: ``n_dec`` sequences whose KV
tokens sum to ``kv_base + n_dec * it``, and ``phase_count[r]`` decoders that need a new block at
iterations ``it = r (mod block_size)``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from ._jit import jit_enabled, kernel

__all__ = ["BETWEEN", "IN_FLIGHT", "NEEDS_MEMORY", "DecodeRun", "decode_run", "decode_runner"]

IN_FLIGHT = 0
"""Status: iteration ``it`` started at ``start``, lasts ``duration``, its blocks taken."""
NEEDS_MEMORY = 1
"""Status: iteration ``it`` would start at ``start`` but needs more blocks than are free."""
BETWEEN = 2
"""Status: iteration ``it - 1`` ended exactly at the horizon; iteration ``it`` has not started."""

DecodeRun = Callable[
    [npt.NDArray[np.float64], float, int, int, int, int, npt.NDArray[np.int64], int, float, bool],
    tuple[int, int, float, float, int],
]
"""The signature of :func:`decode_run` (compiled or not)."""


@kernel
def decode_run(
    coef: npt.NDArray[np.float64],
    start: float,
    it: int,
    n_dec: int,
    kv_base: int,
    free: int,
    phase_count: npt.NDArray[np.int64],
    stop_it: int,
    horizon: float,
    inclusive: bool,
) -> tuple[int, int, float, float, int]:
    """Run decode-only iterations from iteration ``it`` (not yet started) at time ``start``.

    Stops at the first iteration that needs more blocks than are ``free`` (``NEEDS_MEMORY``,
    before it starts), at iteration ``stop_it`` (it completes a request; ``IN_FLIGHT``), or at
    ``horizon``: the iteration running at the horizon is returned ``IN_FLIGHT``. An iteration
    ending exactly at the horizon counts as finished when ``inclusive`` (then ``BETWEEN`` if the
    next would start there) and as in flight otherwise.

    Returns ``(status, it, start, duration, free)``; ``free`` is after the allocation of an
    in-flight iteration, before that of one not started.
    """
    bs = phase_count.shape[0]
    t = start
    while True:
        if inclusive and t >= horizon:
            return BETWEEN, it, t, 0.0, free
        need = phase_count[it % bs]
        if need > free:
            return NEEDS_MEMORY, it, t, 0.0, free
        free -= need
        kv = kv_base + n_dec * it
        # LatencyModel.iteration_time(0, 0, 0, n_dec, kv, n_dec), in the same operation order
        # (its prefill term is 0.0 here, and adding 0.0 changes no bit).
        linear = max(coef[0] * n_dec / coef[7], coef[1] / coef[8])
        logits = max(coef[2] * n_dec / coef[7], coef[3] / coef[8])
        gather = coef[4] * n_dec / coef[8]
        attended = kv + n_dec
        decode = max(coef[5] * attended / coef[9], coef[6] * attended / coef[10])
        comm = coef[16] + coef[14] * n_dec / coef[15]
        host = coef[11] + coef[12] * n_dec + coef[13] * n_dec
        dt = host + linear + logits + gather + decode + comm
        end = t + dt
        if it >= stop_it or end > horizon or (end == horizon and not inclusive):
            return IN_FLIGHT, it, t, dt, free
        t = end
        it += 1


SIGNATURE = (
    "(float64[::1], float64, int64, int64, int64, int64, int64[::1], int64, float64, boolean)"
)
"""The one signature the simulator calls :func:`decode_run` with."""


def decode_runner(jit: bool | None = None) -> DecodeRun:
    """:func:`decode_run` as the simulator calls it: compiled for :data:`SIGNATURE` and called
    through that compilation's entry point, without the dispatcher resolving the argument types
    at every call (the simulator makes tens of thousands of short calls); or its Python source
    when JIT is off (as :func:`~glia.kernels.select`). Same code, same results."""
    use = jit_enabled() if jit is None else jit
    if not use:
        py: DecodeRun = decode_run.py_func  # type: ignore[attr-defined]
        return py
    entry: DecodeRun = decode_run.compile(SIGNATURE)  # type: ignore[attr-defined]
    return entry
