"""Fit the latency model's efficiency factors and overheads to measured iteration times.

Measurements are a CSV with one row per measured engine iteration (e.g. from a vLLM benchmark
with per-step timing, or a TTFT at batch 1 and a TPOT at a known batch size)::

    batch_size,context_tokens,prefill_tokens,time_ms
    1,128,0,30.2          # one decode step of 1 sequence with 128 cached tokens
    32,512,0,41.8         # 32 sequences decoding, 512 cached tokens each
    0,0,8192,1498         # an 8,192-token prefill alone

The model is ``t = overhead + overhead_per_seq * seqs + max(F / (peak * compute_eff),
B / (bandwidth * mem_eff))``: for fixed efficiencies it is linear in the two overheads, so the
fit scans a grid of (compute_eff, mem_eff), solves the overheads by least squares at each point
(clipped at zero), and refines the grid around the best point.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import msgspec
import numpy as np
import numpy.typing as npt

from glia._errors import InputError, TraceError

from ._latency import Efficiency, GpuSpec, LatencyModel, ModelSpec

__all__ = ["CalibrationResult", "Measurement", "calibrate", "load_measurements"]

FloatArray = npt.NDArray[np.float64]


class Measurement(msgspec.Struct, frozen=True):
    """One measured iteration: ``batch_size`` decodes with ``context_tokens`` cached each, plus
    one prefill of ``prefill_tokens`` (0 for none), taking ``time_ms``."""

    batch_size: int
    context_tokens: int
    prefill_tokens: int
    time_ms: float


class CalibrationResult(msgspec.Struct, frozen=True, kw_only=True):
    """A fitted profile and how well it fits."""

    gpu: str
    model: str
    tp: int
    efficiency: Efficiency
    rmse_ms: float
    max_rel_error: float
    points: int
    predicted_ms: list[float]
    measured_ms: list[float]


def load_measurements(path: str | Path) -> list[Measurement]:
    """Read a measurements CSV (see the module docstring); errors name the file and row."""
    p = str(path)
    try:
        with open(p, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except OSError as e:
        raise TraceError(p, None, f"cannot read the file ({e.strerror})") from None
    need = ("batch_size", "context_tokens", "prefill_tokens", "time_ms")
    if not rows or any(c not in rows[0] for c in need):
        raise TraceError(p, 1, f"a measurements CSV needs the columns {', '.join(need)}")
    out = []
    for i, row in enumerate(rows, start=2):
        try:
            m = Measurement(
                int(row["batch_size"]),
                int(row["context_tokens"]),
                int(row["prefill_tokens"]),
                float(row["time_ms"]),
            )
        except (TypeError, ValueError):
            raise TraceError(p, i, f"cannot read {list(row.values())!r} as numbers") from None
        if m.batch_size < 0 or m.context_tokens < 0 or m.prefill_tokens < 0:
            raise TraceError(p, i, "token counts and batch size must be >= 0")
        if m.batch_size == 0 and m.prefill_tokens == 0:
            raise TraceError(p, i, "an iteration needs a decode batch or a prefill")
        if not (math.isfinite(m.time_ms) and m.time_ms > 0):
            raise TraceError(p, i, f"time_ms is {m.time_ms}: it must be a positive duration")
        out.append(m)
    return out


def _features(
    points: list[Measurement], gpu: GpuSpec, model: ModelSpec, tp: int
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray]:
    """Per point: compute seconds at efficiency 1, memory seconds at 1, seqs, comm, measured s."""
    unit = LatencyModel.build(gpu, model, tp, Efficiency(1.0, 1.0, 0.0, 0.0))
    b = np.array([m.batch_size for m in points], dtype=np.float64)
    k = np.array([m.context_tokens for m in points], dtype=np.float64)
    p = np.array([m.prefill_tokens for m in points], dtype=np.float64)
    tokens = b + p
    kv = b * k
    pairs = kv + p * (p + 1) / 2
    flops = unit.flops_per_token * tokens + unit.attn_flops_per_pair * pairs
    moved = unit.weight_bytes + unit.kv_bytes_per_token * (kv + tokens)
    comm = unit.allreduce_fixed_s + unit.allreduce_bytes_per_token * tokens / (
        unit.allreduce_bytes_per_s
    )
    seqs = b + (p > 0)
    measured = np.array([m.time_ms for m in points], dtype=np.float64) / 1e3
    return flops / unit.flops_per_s, moved / unit.bytes_per_s, seqs, comm, measured


def _fit_grid(
    ce: FloatArray, me: FloatArray, f: tuple[FloatArray, ...]
) -> tuple[float, float, float, float, float]:
    comp1, mem1, seqs, comm, y = f
    ce_g, me_g = np.meshgrid(ce, me, indexing="ij")
    roof = np.maximum(comp1[None, None, :] / ce_g[..., None], mem1[None, None, :] / me_g[..., None])
    r = y[None, None, :] - roof - comm[None, None, :]  # what the two overheads must explain
    # Least squares of r ~ a + b * seqs, per grid point; weights 1/y make errors relative.
    w = 1.0 / y**2
    sw, sx, sxx = w.sum(), (w * seqs).sum(), (w * seqs * seqs).sum()
    sy, sxy = (w * r).sum(axis=-1), (w * seqs * r).sum(axis=-1)
    det = sw * sxx - sx * sx
    if det > 1e-12 * max(sw * sxx, 1e-300):
        b = np.clip((sw * sxy - sx * sy) / det, 0.0, None)
    else:  # all points have the same sequence count: only the fixed overhead is identifiable
        b = np.zeros_like(sy)
    a = np.clip((sy - b * sx) / sw, 0.0, None)
    err = (w * (r - a[..., None] - b[..., None] * seqs) ** 2).sum(axis=-1)
    i, j = np.unravel_index(int(np.argmin(err)), err.shape)
    return float(ce[i]), float(me[j]), float(a[i, j]), float(b[i, j]), float(err[i, j])


def calibrate(
    points: list[Measurement], gpu_name: str, model_name: str, tp: int = 1
) -> CalibrationResult:
    """Fit efficiencies and overheads of ``gpu_name`` x ``model_name`` to ``points``."""
    from ._latency import catalogue

    if len(points) < 2:
        raise InputError(
            f"calibration needs at least 2 measurements, got {len(points)}: measure a batch-1 "
            "decode step, a large-batch decode step and a long prefill"
        )
    gpu_key, gpu = catalogue().gpu(gpu_name)
    model_key, model = catalogue().model(model_name)
    f = _features(points, gpu, model, tp)
    ce, me, *_ = _fit_grid(np.linspace(0.02, 1.0, 197), np.linspace(0.02, 1.0, 197), f)
    ce, me, a, b, _ = _fit_grid(
        np.linspace(max(ce - 0.01, 0.005), min(ce + 0.01, 1.0), 81),
        np.linspace(max(me - 0.01, 0.005), min(me + 0.01, 1.0), 81),
        f,
    )
    eff = Efficiency(ce, me, a * 1e3, b * 1e3)
    lm = LatencyModel.build(gpu, model, tp, eff)
    pred = np.array(
        [
            lm.iteration_time(
                m.prefill_tokens,
                m.batch_size,
                m.batch_size + (m.prefill_tokens > 0),
                m.batch_size * m.context_tokens,
                m.batch_size * m.context_tokens + m.prefill_tokens * (m.prefill_tokens + 1) // 2,
            )
            for m in points
        ]
    )
    y = f[4]
    return CalibrationResult(
        gpu=gpu_key,
        model=model_key,
        tp=tp,
        efficiency=eff,
        rmse_ms=float(np.sqrt(np.mean((pred - y) ** 2)) * 1e3),
        max_rel_error=float(np.max(np.abs(pred - y) / y)),
        points=len(points),
        predicted_ms=(pred * 1e3).round(4).tolist(),
        measured_ms=(y * 1e3).round(4).tolist(),
    )
