"""Batched iteration-time kernel: the latency model over arrays of iterations in one call.

The formula is :meth:`glia.sim.LatencyModel.iteration_time`, written out over the coefficient
vector of :meth:`~glia.sim.LatencyModel.coefficients` in the same operation order, so both give
bit-identical times. The vector's layout (the model's field order):

====  ========================  ====  ========================
 0    linear_flops_per_token     9    attn_flops_per_s
 1    linear_bytes              10    kv_bytes_per_s
 2    logits_flops_per_seq      11    overhead_s
 3    logits_bytes              12    overhead_per_seq_s
 4    embed_bytes_per_token     13    overhead_per_token_s
 5    attn_flops_per_pair       14    allreduce_bytes_per_token
 6    kv_bytes_per_token        15    allreduce_bytes_per_s
 7    linear_flops_per_s        16    allreduce_fixed_s
 8    weight_bytes_per_s
====  ========================  ====  ========================
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
    prefill_ctx: int,
    prefill_pairs: int,
    decode_seqs: int,
    decode_ctx: int,
    seqs: int,
) -> float:
    """Seconds for one iteration (see :meth:`LatencyModel.iteration_time`)."""
    tokens = prefill_tokens + decode_seqs
    linear = max(coef[0] * tokens / coef[7], coef[1] / coef[8])
    logits = max(coef[2] * seqs / coef[7], coef[3] / coef[8])
    gather = coef[4] * tokens / coef[8]
    prefill = max(
        coef[5] * prefill_pairs / coef[9], coef[6] * (prefill_ctx + prefill_tokens) / coef[10]
    )
    attended = decode_ctx + decode_seqs
    decode = max(coef[5] * attended / coef[9], coef[6] * attended / coef[10])
    comm = coef[16] + coef[14] * tokens / coef[15]
    host = coef[11] + coef[12] * seqs + coef[13] * tokens
    return float(host + linear + logits + gather + prefill + decode + comm)


@kernel
def iteration_times(
    coef: npt.NDArray[np.float64],
    prefill_tokens: npt.NDArray[np.int64],
    prefill_ctx: npt.NDArray[np.int64],
    prefill_pairs: npt.NDArray[np.int64],
    decode_seqs: npt.NDArray[np.int64],
    decode_ctx: npt.NDArray[np.int64],
    seqs: npt.NDArray[np.int64],
) -> npt.NDArray[np.float64]:
    """Seconds for each of many iterations, described by equal-length integer arrays."""
    n = prefill_tokens.shape[0]
    out = np.empty(n, dtype=np.float64)
    for i in range(n):
        # The formula of one_iteration_time, inlined so the no-JIT path calls no compiled code.
        tokens = prefill_tokens[i] + decode_seqs[i]
        linear = max(coef[0] * tokens / coef[7], coef[1] / coef[8])
        logits = max(coef[2] * seqs[i] / coef[7], coef[3] / coef[8])
        gather = coef[4] * tokens / coef[8]
        prefill = max(
            coef[5] * prefill_pairs[i] / coef[9],
            coef[6] * (prefill_ctx[i] + prefill_tokens[i]) / coef[10],
        )
        attended = decode_ctx[i] + decode_seqs[i]
        decode = max(coef[5] * attended / coef[9], coef[6] * attended / coef[10])
        comm = coef[16] + coef[14] * tokens / coef[15]
        host = coef[11] + coef[12] * seqs[i] + coef[13] * tokens
        out[i] = host + linear + logits + gather + prefill + decode + comm
    return out
