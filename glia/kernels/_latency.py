"""Batched iteration-time kernel: the latency model over arrays of iterations in one call.

The formula is :meth:`glia.sim.LatencyModel.iteration_time`, written out over the coefficient
vector of :meth:`~glia.sim.LatencyModel.coefficients` in the same operation order, so both give
bit-identical times.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from ._jit import kernel

__all__ = ["iteration_times", "one_iteration_time"]


@kernel
def one_iteration_time(
    coef: npt.NDArray[np.float64],
    prefill_tokens: int,
    decode_tokens: int,
    num_seqs: int,
    kv_read_tokens: int,
    attn_pairs: int,
) -> float:
    """Seconds for one iteration (see :meth:`LatencyModel.iteration_time`)."""
    tokens = prefill_tokens + decode_tokens
    flops = coef[0] * tokens + coef[1] * attn_pairs
    moved = coef[2] + coef[3] * (kv_read_tokens + tokens)
    compute = max(flops / coef[4], moved / coef[5])
    comm = coef[10] + coef[8] * tokens / coef[9]
    return float(coef[6] + coef[7] * num_seqs + compute + comm)


@kernel
def iteration_times(
    coef: npt.NDArray[np.float64],
    prefill_tokens: npt.NDArray[np.int64],
    decode_tokens: npt.NDArray[np.int64],
    num_seqs: npt.NDArray[np.int64],
    kv_read_tokens: npt.NDArray[np.int64],
    attn_pairs: npt.NDArray[np.int64],
) -> npt.NDArray[np.float64]:
    """Seconds for each of many iterations, described by equal-length integer arrays."""
    n = prefill_tokens.shape[0]
    out = np.empty(n, dtype=np.float64)
    for i in range(n):
        # The formula of one_iteration_time, inlined so the no-JIT path calls no compiled code.
        tokens = prefill_tokens[i] + decode_tokens[i]
        flops = coef[0] * tokens + coef[1] * attn_pairs[i]
        moved = coef[2] + coef[3] * (kv_read_tokens[i] + tokens)
        compute = max(flops / coef[4], moved / coef[5])
        comm = coef[10] + coef[8] * tokens / coef[9]
        out[i] = coef[6] + coef[7] * num_seqs[i] + compute + comm
    return out
