"""The report's figures: PNGs drawn with matplotlib's object API (no pyplot, no global state).

Every function draws one figure from plain data and returns whether it wrote the file (there may
be nothing to draw, e.g. a run that stopped before validation). Output is byte-for-byte stable:
the Agg backend is deterministic and the PNG carries no software or date metadata.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from ._records import RunRecord, Trial, Validation

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "SCORE_SCALE",
    "CdfPanel",
    "best_baseline",
    "plot_latency_cdfs",
    "plot_scores",
    "plot_validation",
    "trial_score",
]

FloatArray = npt.NDArray[np.float64]

SCORE_SCALE = 20.0
"""A trial's score is ``SCORE_SCALE / mean_e2e_s`` (higher is better), as the researchers see it."""

_DESIGN = "design"
_LLQ = "llq"
_DESIGN_COLOR = "#d62728"
_LLQ_COLOR = "#7f7f7f"
_OTHER_COLOR = "#1f77b4"
_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf")
"""Colours of the other policies' CDFs: tab10 without the design's red and LLQ's grey."""
_DPI = 110
_PNG_METADATA: dict[str, str | None] = {"Software": None}
"""Drop the matplotlib version from the PNG, so a library upgrade alone changes no figure."""


def trial_score(t: Trial) -> float | None:
    """The trial's score, computed from its mean E2E when an older record lacks it."""
    if t.score is not None:
        return t.score
    return SCORE_SCALE / t.mean_e2e_s if t.mean_e2e_s else None


def _figure(width: float, height: float) -> Figure:
    # imported here: matplotlib takes half a second to import, and the coordinator and the CLI
    # import this package long before (if ever) they draw anything
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)  # attaches the Agg canvas: savefig needs one, pyplot is never involved
    return fig


def _save(fig: Figure, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=_DPI, format="png", metadata=_PNG_METADATA)


def _tidy(ax: Axes) -> None:
    ax.spines[["top", "right"]].set_visible(False)


def plot_validation(validations: Sequence[Validation], path: Path) -> bool:
    """Bar chart of each policy's mean E2E on held-out seeds, one panel per workload.

    The best design (policy ``"design"``) is red, LLQ grey; bars are labelled with their mean
    and its ratio to the design's. Returns False (and writes nothing) when no workload has data.
    """
    shown = [v for v in validations if v.mean_e2e_s]
    if not shown:
        return False
    fig = _figure(max(6.0, 5.5 * len(shown)), 4.8)
    axes = fig.subplots(1, len(shown), squeeze=False)[0]
    for ax, v in zip(axes, shown, strict=True):
        names = list(v.mean_e2e_s)
        means = [v.mean_e2e_s[n] for n in names]
        colors = [
            _DESIGN_COLOR if n == _DESIGN else _LLQ_COLOR if n == _LLQ else _OTHER_COLOR
            for n in names
        ]
        bars = ax.bar(names, means, color=colors)
        design = v.mean_e2e_s.get(_DESIGN)
        labels = [f"{m:.1f}" if not design else f"{m:.1f}\n{m / design:.2f}x" for m in means]
        ax.bar_label(bars, labels=labels, padding=2, fontsize=8)
        ax.set_ylim(0, max(means) * 1.22 or 1.0)
        ax.set_ylabel("mean end-to-end latency (s)")
        ax.tick_params(axis="x", labelrotation=35, labelsize=8)
        ax.set_title(f"{v.workload}: {len(v.seeds)} held-out seed(s)", fontsize=10)
        _tidy(ax)
    fig.suptitle(
        "Best design (red) vs baselines; labels: mean E2E (s), ratio to design", fontsize=11
    )
    _save(fig, path)
    return True


def best_baseline(means: Mapping[str, float], exclude: str = "") -> str | None:
    """The policy with the lowest mean E2E (ties: by name), ``exclude`` aside."""
    names = [n for n in means if n != exclude]
    return min(names, key=lambda n: (means[n], n)) if names else None


def plot_scores(record: RunRecord, path: Path) -> bool:
    """Score (``20 / mean E2E``) of every trial in run order, per context, with the running best.

    Failed trials are crosses on the x axis. The running best only counts trials on the search
    seeds, as the coordinator does when it picks the best design. Dashed lines are the scores of
    LLQ and of the best baseline. Returns False when there are no trials.
    """
    trials = sorted(record.trials, key=lambda t: t.index)
    if not trials:
        return False
    fig = _figure(8.0, 4.6)
    ax = fig.add_subplot()
    for k, ctx in enumerate(sorted({t.context for t in trials})):
        mine = [(t.index, s) for t in trials if t.context == ctx and (s := trial_score(t))]
        if mine:
            xs, ys = zip(*mine, strict=True)
            ax.plot(xs, ys, marker="o", linestyle="-", linewidth=0.8, alpha=0.85,
                    color=_PALETTE[k % len(_PALETTE)], label=f"context {ctx}")  # fmt: skip
    failed = [t.index for t in trials if trial_score(t) is None]
    if failed:
        # clip_on=False: the crosses sit on the axis line itself and must not be cut in half
        ax.plot(failed, [0.0] * len(failed), linestyle="none", marker="x", color="black",
                markersize=8, clip_on=False, label="failed")  # fmt: skip
    xs_best: list[int] = []
    ys_best: list[float] = []
    best = 0.0
    for t in trials:
        s = trial_score(t)
        if s is not None and t.seeds == record.search_seeds and s > best:
            best = s
        if best > 0:
            xs_best.append(t.index)
            ys_best.append(best)
    if xs_best:
        ax.step(xs_best, ys_best, where="post", color=_DESIGN_COLOR, linewidth=2.0,
                label="running best")  # fmt: skip
    refs: dict[str, float] = {}
    if record.baselines.get(_LLQ):
        refs[_LLQ] = record.baselines[_LLQ]
    top = best_baseline(record.baselines)
    if top is not None and record.baselines[top] > 0:
        refs[top] = record.baselines[top]
    for name, mean in refs.items():
        llq = name == _LLQ
        ax.axhline(SCORE_SCALE / mean, color=_LLQ_COLOR if llq else "black",
                   linestyle="--" if llq else ":", linewidth=1.2,
                   label=f"{name} (baseline) {SCORE_SCALE / mean:.2f}")  # fmt: skip
    ax.set_xlim(0.5, trials[-1].index + 0.5)
    ax.set_ylim(bottom=0.0)
    ax.set_xticks(range(1, trials[-1].index + 1, max(1, trials[-1].index // 15)))
    ax.set_xlabel("simulation (trial index)")
    ax.set_ylabel(f"score = {SCORE_SCALE:g} / mean E2E (s)")
    ax.set_title("Score over simulations (higher is better)", fontsize=11)
    ax.legend(fontsize=8, loc="best")
    _tidy(ax)
    _save(fig, path)
    return True


@dataclass(frozen=True)
class CdfPanel:
    """One workload's latency samples: policy -> end-to-end times (s) of one seed's requests."""

    workload: str
    samples: Mapping[str, FloatArray]


def plot_latency_cdfs(panels: Sequence[CdfPanel], path: Path) -> bool:
    """Empirical CDFs of per-request E2E latency per policy, log-x, one panel per workload.

    Returns False when no panel has any positive sample (a log axis cannot show the rest).
    """
    shown = [
        (p.workload, {n: a[a > 0] for n, a in p.samples.items() if np.any(a > 0)}) for p in panels
    ]
    shown = [(w, s) for w, s in shown if s]
    if not shown:
        return False
    fig = _figure(max(6.0, 5.5 * len(shown)), 4.6)
    axes = fig.subplots(1, len(shown), squeeze=False)[0]
    for ax, (workload, samples) in zip(axes, shown, strict=True):
        others = 0
        for name, a in samples.items():
            x = np.sort(a)
            y = np.arange(1, len(x) + 1, dtype=np.float64) / len(x)
            color = _PALETTE[others % len(_PALETTE)]
            style: dict[str, object] = {"linewidth": 1.0, "alpha": 0.85, "color": color}
            if name == _DESIGN:
                style = {"linewidth": 2.2, "color": _DESIGN_COLOR, "zorder": 3}
            elif name == _LLQ:
                style = {"linewidth": 1.6, "color": _LLQ_COLOR, "linestyle": "--"}
            else:
                others += 1
            ax.step(x, y, where="post", label=name, **style)
        ax.set_xscale("log")
        ax.set_ylim(0.0, 1.0)
        ax.set_xlabel("end-to-end latency (s, log scale)")
        ax.set_ylabel("fraction of requests")
        ax.set_title(f"{workload}: first held-out seed", fontsize=10)
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
        _tidy(ax)
    fig.suptitle("Latency CDF per policy", fontsize=11)
    _save(fig, path)
    return True
