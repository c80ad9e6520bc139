"""Numba kernels: the batched latency model and decode fast-forward.

Each kernel is compiled with ``nogil=True`` and cached on disk; :func:`select` returns either the
compiled kernel or the Python function it was compiled from (``GLIA_NO_JIT=1``), so debugging
runs the very same code. Kernels take the latency model as the coefficient vector of
:meth:`glia.sim.LatencyModel.coefficients` and know nothing of the simulator's objects.
"""

from ._decode import BETWEEN, IN_FLIGHT, NEEDS_MEMORY, DecodeRun, decode_run, decode_runner
from ._jit import jit_enabled, kernel, select
from ._latency import iteration_times, one_iteration_time

__all__ = [
    "BETWEEN",
    "IN_FLIGHT",
    "NEEDS_MEMORY",
    "DecodeRun",
    "decode_run",
    "decode_runner",
    "iteration_times",
    "jit_enabled",
    "kernel",
    "one_iteration_time",
    "select",
]
