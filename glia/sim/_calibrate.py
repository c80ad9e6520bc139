"""Fit every coefficient of the latency model to measured iteration times, and say how well.

The model (``glia.sim._latency``) has seven calibratable coefficients: the linear layers' compute
and weight-bandwidth efficiencies, attention's compute and KV-bandwidth efficiencies, and the
overheads per iteration, per sequence and per token. :func:`calibrate` fits them all to a file of
measured iterations (:func:`~glia.sim.read_iterations`) by bounded nonlinear least squares on
relative errors (scipy), starting from the catalogue's values so that a coefficient the data
cannot pin down (e.g. attention compute without any prefill) keeps its catalogue value.

It reports the median and worst error per kind of iteration (prefill, decode, mixed) and,
leaving each kind out in turn, how well a fit on the other kinds predicts it: a model that
generalises predicts mixed batches from prefills and decodes alone; one that merely interpolates
does not.
"""

from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path

import msgspec
import numpy as np
import numpy.typing as npt
from scipy.optimize import least_squares

from glia._errors import InputError
from glia.kernels import iteration_times, select

from ._iterations import KINDS, Iteration, shapes
from ._latency import Efficiency, GpuSpec, LatencyModel, ModelSpec, catalogue

__all__ = [
    "PROFILES",
    "CalibrationResult",
    "ErrorStats",
    "calibrate",
    "error_stats",
    "load_profile",
    "measured",
    "predict_ms",
]

FloatArray = npt.NDArray[np.float64]

PARAMETERS = (
    "compute_eff",
    "mem_eff",
    "attn_compute_eff",
    "kv_mem_eff",
    "overhead_ms",
    "overhead_per_seq_ms",
    "overhead_per_token_us",
)
_LOWER = np.array([1e-3, 1e-3, 1e-3, 1e-3, 0.0, 0.0, 0.0])
_UPPER = np.array([1.0, 1.0, 1.0, 1.0, 1e3, 1e2, 1e4])
MAX_MEDIAN_ERROR = 0.25
"""A fit whose median error is worse than this did not find the model in the data."""

PROFILES = {"h200-llama-3-8b": "h200-llama-3-8b.json"}
"""Profiles shipped with Glia (``--profile NAME``), made by ``glia calibrate`` from the
measurements named in each file."""


class ErrorStats(msgspec.Struct, frozen=True, kw_only=True):
    """Relative errors of predicted against measured times over some points."""

    points: int
    median_pct: float
    worst_pct: float
    worst_row: int
    """The file row of the worst point."""


class CalibrationResult(msgspec.Struct, frozen=True, kw_only=True):
    """A fitted profile and how well it fits: per kind, overall, and per kind held out."""

    gpu: str
    model: str
    tp: int
    efficiency: Efficiency
    points: int
    errors: dict[str, ErrorStats]
    """Per kind of iteration present, and ``all``."""
    held_out: dict[str, ErrorStats] = {}
    """Per kind: its points predicted by a fit on the other kinds alone (leave one kind out)."""
    precision: str | None = None
    kv_precision: str | None = None
    mode: str | None = None
    """The ``mode`` of the rows fitted (e.g. ``graph``), when the file has that column."""
    source: str = ""
    rmse_ms: float = 0.0
    max_rel_error: float = 0.0
    rows: list[int] = []
    predicted_ms: list[float] = []
    measured_ms: list[float] = []


class _ProfileFile(msgspec.Struct):
    efficiency: Efficiency


def load_profile(where: str | Path) -> Efficiency:
    """The efficiency of a profile: a file written by ``glia calibrate``, or a shipped name."""
    name = str(where)
    if name.lower() in PROFILES and not Path(name).exists():
        shipped = resources.files("glia").joinpath("data", "profiles", PROFILES[name.lower()])
        data: bytes = shipped.read_bytes()
    else:
        try:
            data = Path(name).read_bytes()
        except OSError as e:
            raise InputError(
                f"cannot read profile {name}: {e.strerror} (give a file written by "
                f"`glia calibrate`, or a shipped profile: {', '.join(PROFILES)})"
            ) from None
    try:
        eff = msgspec.json.decode(data, type=_ProfileFile).efficiency
    except msgspec.DecodeError as e:
        raise InputError(f"{name} is not a profile written by `glia calibrate`: {e}") from None
    eff.check()
    return eff


def measured(its: list[Iteration], mode: str | None = "graph") -> list[Iteration]:
    """The iterations with a measured time, of ``mode`` where rows have one (None: any)."""
    return [
        it
        for it in its
        if it.measured_ms is not None and (mode is None or not it.mode or it.mode == mode)
    ]


def predict_ms(its: list[Iteration], lm: LatencyModel) -> FloatArray:
    """The model's time in milliseconds for each iteration."""
    if not its:
        return np.zeros(0)
    out: FloatArray = select(iteration_times)(lm.coefficients(), *shapes(its)) * 1e3
    return out


def error_stats(its: list[Iteration], predicted: FloatArray) -> dict[str, ErrorStats]:
    """Median and worst relative error per kind present, and over ``all``."""
    y = np.array([it.measured_ms for it in its], dtype=np.float64)
    err = np.abs(predicted - y) / y
    kinds = np.array([it.kind for it in its])
    out = {}
    for k in (*KINDS, "all"):
        m = np.ones(len(its), bool) if k == "all" else kinds == k
        if m.any():
            e = err[m]
            worst = int(np.argmax(e))
            out[k] = ErrorStats(
                points=int(m.sum()),
                median_pct=round(float(np.median(e)) * 100, 3),
                worst_pct=round(float(e[worst]) * 100, 3),
                worst_row=[it.row for it, keep in zip(its, m, strict=True) if keep][worst],
            )
    return out


def calibrate(
    points: list[Iteration],
    gpu_name: str,
    model_name: str,
    tp: int = 1,
    precision: str | None = None,
    kv_precision: str | None = None,
) -> CalibrationResult:
    """Fit every coefficient of ``gpu_name`` x ``model_name`` to the measured ``points``."""
    gpu_key, gpu = catalogue().gpu(gpu_name)
    model_key, model = catalogue().model(model_name)
    LatencyModel.build(gpu, model, tp, None, precision, kv_precision)  # checks tp and precisions
    pts = [p for p in points if p.measured_ms is not None]
    need = len(PARAMETERS)
    if len(pts) < need:
        raise InputError(
            f"calibration fits {need} coefficients and needs at least {need} measured "
            f"iterations, got {len(pts)}: measure decode batches of several sizes and contexts, "
            "prefills of several lengths and a few mixed batches"
        )
    fit = functools.partial(_fit, gpu=gpu, model=model, tp=tp, dtypes=(precision, kv_precision))
    eff = fit(pts)
    lm = LatencyModel.build(gpu, model, tp, eff, precision, kv_precision)
    pred = predict_ms(pts, lm)
    errors = error_stats(pts, pred)
    if errors["all"].median_pct > 100 * MAX_MEDIAN_ERROR:
        raise InputError(
            f"the fit did not converge: its median error is {errors['all'].median_pct:.0f}% "
            f"on {len(pts)} points. Check that times are in milliseconds and that the "
            f"measurements come from {gpu_key} serving {model_key} at tp={tp}"
        )
    held_out = {}
    for kind in KINDS:
        rest = [p for p in pts if p.kind != kind]
        out = [p for p in pts if p.kind == kind]
        if out and len(rest) >= need:
            other = LatencyModel.build(gpu, model, tp, fit(rest), precision, kv_precision)
            held_out[kind] = error_stats(out, predict_ms(out, other))["all"]
    y = np.array([p.measured_ms for p in pts], dtype=np.float64)
    modes = {p.mode for p in pts}
    return CalibrationResult(
        gpu=gpu_key,
        model=model_key,
        tp=tp,
        precision=precision,
        kv_precision=kv_precision,
        efficiency=eff,
        points=len(pts),
        errors=errors,
        held_out=held_out,
        mode=modes.pop() if len(modes) == 1 and "" not in modes else None,
        rmse_ms=round(float(np.sqrt(np.mean((pred - y) ** 2))), 5),
        max_rel_error=round(float(np.max(np.abs(pred - y) / y)), 6),
        rows=[p.row for p in pts],
        predicted_ms=pred.round(4).tolist(),
        measured_ms=y.round(4).tolist(),
    )


def _fit(
    pts: list[Iteration],
    *,
    gpu: GpuSpec,
    model: ModelSpec,
    tp: int,
    dtypes: tuple[str | None, str | None],
) -> Efficiency:
    cols = shapes(pts)
    y = np.array([p.measured_ms for p in pts], dtype=np.float64) * 1e-3
    times = select(iteration_times)

    def efficiency(x: FloatArray) -> Efficiency:
        values = dict(zip(PARAMETERS, (float(v) for v in x), strict=True))
        return Efficiency(**values)

    def residuals(x: FloatArray) -> FloatArray:
        lm = LatencyModel.build(gpu, model, tp, efficiency(x), *dtypes)
        r: FloatArray = times(lm.coefficients(), *cols) / y - 1.0
        return r

    base = gpu.efficiency()
    start = np.array(
        [
            base.compute_eff,
            base.mem_eff,
            base.attn_compute,
            base.kv_mem,
            base.overhead_ms,
            base.overhead_per_seq_ms,
            base.overhead_per_token_us,
        ]
    )
    # The rooflines' max() makes the surface piecewise smooth: start from the catalogue's
    # values and from two spread-out points, and keep the best local optimum.
    starts = [start, np.array([0.3, 0.5, 0.3, 0.5, 1.0, 0.01, 0.0]), _spread(start)]
    best_cost, best_x = np.inf, start
    for x0 in starts:
        x0 = np.clip(x0, _LOWER + 1e-9, _UPPER - 1e-9)
        res = least_squares(residuals, x0, bounds=(_LOWER, _UPPER), max_nfev=4000)
        if res.cost < best_cost:
            best_cost, best_x = res.cost, res.x
    if not np.isfinite(best_cost):
        raise InputError("the fit did not converge: the model gave no finite time for the points")
    return efficiency(best_x.round(6))


def _spread(start: FloatArray) -> FloatArray:
    x = start.copy()
    x[:4] = np.clip(x[:4] * 1.4, 0.05, 0.95)
    x[4:] = x[4:] * 0.5
    return x
