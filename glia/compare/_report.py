"""The comparison's report: ``report.md``, a self-contained ``report.html`` and two figures.

Built once as a list of blocks (see :mod:`glia.report._doc`) and written twice, like a design
run's report, so the Markdown and the HTML never disagree.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from glia.report._doc import Block, Heading, Image, Items, Para, Table, code, to_html, to_markdown
from glia.report._plots import _figure, _save, _tidy

from ._methods import Method
from ._records import CompareConfig, MethodSummary, RunResult

__all__ = ["write_compare_report"]

FIGURES = "figures"
_CURVES = "curves.png"
_SCORES = "scores.png"
_COLORS = ("#d62728", "#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#7f7f7f")


def _f(v: float | None, digits: int = 3) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def _i(v: int | None) -> str:
    return "not reached" if v is None else str(v)


def write_compare_report(
    root: Path,
    config: CompareConfig,
    methods: Sequence[Method],
    ms: Sequence[MethodSummary],
    rs: Sequence[RunResult],
    best: float | None,
) -> Path:
    """Write the report of the comparison in ``root``; returns the path of ``report.md``."""
    figs = root / FIGURES
    made = {_CURVES: _plot_curves(ms, config.budget, best, figs / _CURVES),
            _SCORES: _plot_scores(ms, rs, figs / _SCORES)}  # fmt: skip
    ref = next((r.reference for r in rs if r.reference), "llq").upper()
    blocks: list[Block] = [
        Heading(1, f"Comparison: {', '.join(m.name for m in methods)} on {config.preset}"),
        Para(
            (
                f"Task {config.task}, objective {config.objective}, model {config.model}; "
                f"{len(rs) // max(1, len(ms))} repeat(s) per method, each an independent design "
                f"run with a budget of {config.budget} simulations (failed designs spend it too), "
                f"{config.seeds} seed(s) per simulation; repeat k of every method uses the same "
                "search and held-out seeds.",
            )
        ),
        Para(
            (
                f"Score: the best design's objective on held-out seeds / {ref}'s on the same seeds "
                "(lower is better), with a bootstrap 90 % CI of the mean over repeats. T90/T95: "
                "simulations by which at least half the method's repeats had a best-so-far "
                "search cost within 1/0.9 (1/0.95) of the best any method reached in the same "
                "repeat (same seeds); 'not reached' when fewer than half did. Tokens, dollars "
                "and simulator CPU-seconds are "
                "totals over the repeats; latencies are the best designs' on held-out seeds "
                "(means over repeats).",
            )
        ),
        Heading(2, "Methods"),
        Items(tuple((code(m.name), f": {m.description}") for m in methods)),
        Heading(2, "Results"),
        Table(
            (
                "method",
                "runs",
                "score mean",
                "90% CI",
                "median",
                "T90",
                "T95",
                "valid rate",
                "sims",
                "tokens",
                "USD",
                "sim CPU-s",
                "mean E2E (s)",
                "p50 E2E (s)",
                "p99 E2E (s)",
                f"{ref} mean (s)",
                f"{ref} p99 (s)",
            ),
            tuple(
                (
                    code(s.name),
                    str(s.repeats),
                    _f(s.score_mean),
                    f"[{_f(s.ci90[0])}, {_f(s.ci90[1])}]" if s.ci90 else "-",
                    _f(s.score_median),
                    _i(s.t90_sims),
                    _i(s.t95_sims),
                    _f(s.valid_rate, 2),
                    str(s.simulations),
                    str(s.tokens),
                    _f(s.usd, 4),
                    _f(s.cpu_s, 1),
                    _f(s.mean_e2e_s, 2),
                    _f(s.p50_e2e_s, 2),
                    _f(s.p99_e2e_s, 1),
                    _f(s.reference_mean_e2e_s, 2),
                    _f(s.reference_p99_e2e_s, 1),
                )
                for s in ms
            ),
            numeric=(False, *([True] * 16)),
        ),
        *_verdicts(ms),
        *_paired(ms, rs),
    ]
    if made[_CURVES]:
        alt = f"Best-so-far search cost (x {ref}) per simulation: median over repeats, 90 % CI"
        blocks.append(Image(f"{FIGURES}/{_CURVES}", alt))
    if made[_SCORES]:
        blocks.append(Image(f"{FIGURES}/{_SCORES}", "Held-out score per repeat (dots) and mean "
                            "with its 90 % CI"))  # fmt: skip
    blocks += [
        Heading(2, "Runs"),
        Table(
            ("method", "repeat", "score", "sims", "valid", "status", "run"),
            tuple(
                (
                    code(r.method),
                    str(r.repeat),
                    _f(r.score),
                    str(r.simulations),
                    str(r.valid),
                    r.status,
                    code(f"{r.run_dir}/report.md"),
                )
                for r in rs
            ),
            numeric=(False, True, True, True, True),
        ),
    ]
    md = root / "report.md"
    md.write_text(to_markdown(blocks), encoding="utf-8", newline="\n")
    page = to_html(blocks, f"Comparison on {config.preset}", root)
    (root / "report.html").write_text(page, encoding="utf-8", newline="\n")
    return md


def _verdicts(summaries: Sequence[MethodSummary]) -> list[Block]:
    """Whether the first method's CI lies wholly below (better than) each other's."""
    if len(summaries) < 2 or summaries[0].ci90 is None:
        return []
    first = summaries[0]
    assert first.ci90 is not None
    lines = []
    for other in summaries[1:]:
        if other.ci90 is None:
            continue
        if first.ci90[1] < other.ci90[0]:
            verdict = "better, the 90 % CIs do not overlap"
        elif other.ci90[1] < first.ci90[0]:
            verdict = "worse, the 90 % CIs do not overlap"
        else:
            verdict = "not distinguishable: the 90 % CIs overlap"
        lines.append((code(first.name), " vs ", code(other.name), f": {verdict}"))
    return [Heading(2, "Verdicts"), Items(tuple(lines))] if lines else []


def _paired(ms: Sequence[MethodSummary], rs: Sequence[RunResult]) -> list[Block]:
    """The first method against each other one on the same seeds, repeat by repeat."""
    from ._compare import paired

    if len(ms) < 2:
        return []
    first = ms[0].name
    rows = []
    for m in ms[1:]:
        p = paired(rs, first, m.name)
        if p is None:
            continue
        mean, (lo, hi), better, n = p
        verdict = "better" if hi < 0 else "worse" if lo > 0 else "not distinguishable"
        rows.append((code(f"{first} - {m.name}"), _f(mean, 4), f"[{_f(lo, 4)}, {_f(hi, 4)}]",
                     f"{better} of {n}", verdict))  # fmt: skip
    if not rows:
        return []
    return [
        Heading(2, "Paired by repeat"),
        Para(
            (
                f"Repeat k of every method ran on the same seeds, so the score differences "
                f"{first} - other per repeat carry less workload noise than the CIs above: mean "
                "difference (negative: the first method is better), its bootstrap 90 % CI, and the "
                "repeats where the first method was strictly better.",
            )
        ),
        Table(
            ("pair", "mean difference", "90% CI", "first better", "verdict"),
            tuple(rows),
            numeric=(False, True, True, True, False),
        ),
    ]


def _plot_curves(ms: Sequence[MethodSummary], budget: int, best: float | None, path: Path) -> bool:
    shown = [m for m in ms if any(v is not None for v in m.curve_median)]
    if not shown:
        path.unlink(missing_ok=True)
        return False
    fig = _figure(8.0, 4.6)
    ax = fig.add_subplot()
    x = np.arange(1, budget + 1)
    for k, m in enumerate(shown):
        color = _COLORS[k % len(_COLORS)]
        med = np.array([np.nan if v is None else v for v in m.curve_median], dtype=float)
        lo = np.array([np.nan if v is None else v for v in m.curve_lo], dtype=float)
        hi = np.array([np.nan if v is None else v for v in m.curve_hi], dtype=float)
        ax.plot(x, med, color=color, label=m.name, drawstyle="steps-post")
        ax.fill_between(x, lo, hi, color=color, alpha=0.15, step="post")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("simulations")
    ax.set_ylabel("best-so-far search cost (x reference)")
    ax.legend(fontsize=8)
    _tidy(ax)
    _save(fig, path)
    return True


def _plot_scores(ms: Sequence[MethodSummary], runs: Sequence[RunResult], path: Path) -> bool:
    summaries = [m for m in ms if m.score_mean is not None]
    if not summaries:
        path.unlink(missing_ok=True)
        return False
    fig = _figure(max(5.0, 1.4 * len(summaries) + 2), 4.4)
    ax = fig.add_subplot()
    for k, m in enumerate(summaries):
        color = _COLORS[k % len(_COLORS)]
        ys = [r.score for r in runs if r.method == m.name and r.score is not None]
        jitter = np.linspace(-0.15, 0.15, len(ys)) if len(ys) > 1 else np.zeros(len(ys))
        ax.scatter(k + jitter, ys, color=color, alpha=0.5, s=14)
        assert m.score_mean is not None and m.ci90 is not None
        err = [[m.score_mean - m.ci90[0]], [m.ci90[1] - m.score_mean]]
        ax.errorbar([k + 0.3], [m.score_mean], yerr=err, fmt="o", color=color, capsize=4)
    ax.set_xticks(range(len(summaries)), [m.name for m in summaries])
    ax.set_ylabel("held-out cost (x reference), lower is better")
    _tidy(ax)
    _save(fig, path)
    return True
