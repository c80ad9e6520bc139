"""Tables and charts of simulation results for the terminal and ``--out``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rich import box
from rich.table import Table

from glia.sim import (
    SimResult,
)

from ._app import REFERENCE_ROUTER


def _cluster_line(result: SimResult) -> str:
    rc = result.cluster.resolve()
    parts: list[tuple[int, str]] = []  # (count, description) of each run of alike replicas
    for r in rc.replicas:
        gpus = r.gpu if r.tp == 1 else f"({r.tp} x {r.gpu}, tensor-parallel)"
        what = f"{gpus} serving {r.model} ({r.num_blocks:,} KV blocks each)"
        if parts and parts[-1][1] == what:
            parts[-1] = (parts[-1][0] + 1, what)
        else:
            parts.append((1, what))
    return " + ".join(f"{n} x {what}" for n, what in parts)


def _workload_line(result: SimResult) -> str:
    w = result.workload
    lengths = ""
    if w.isl is not None or w.osl is not None:
        lengths = f", {w.isl or 'trace'} in / {w.osl or 'trace'} out tokens"
    if w.concurrency is not None:
        think = f", {w.think_s:g} s think time" if w.think_s else ""
        clients = f"closed loop: {w.concurrency} concurrent clients{think}"
        return f"{w.trace}{lengths}, {clients}, {result.summary.num_requests} requests"
    if w.arrivals == "trace":
        arrivals = "replayed arrivals" + (f" rescaled to {w.qps:g} QPS" if w.qps else "")
        if w.duration_s is not None:
            arrivals += f", first {w.duration_s:g} s"
    else:
        arrivals = f"{w.arrivals} arrivals at {w.qps:g} QPS for {w.duration_s:g} s"
        if w.diurnal > 0:
            arrivals += f" (diurnal: x{1 - w.diurnal:g} to x{1 + w.diurnal:g} over a day)"
    return f"{w.trace}{lengths}, {arrivals}"


def _setup_line(result: SimResult) -> str:
    return f"{_cluster_line(result)}; {_workload_line(result)}"


def _summary_tables(result: SimResult, preset: str) -> tuple[Table, Table]:
    s = result.summary
    lat = Table(
        title=f"{result.router} on {preset} (seed {result.seed})",
        title_justify="left",
    )
    lat.add_column("metric")
    for col in ("mean", "p50", "p90", "p99"):
        lat.add_column(col, justify="right")

    def row(label: str, key: str, scale: float = 1.0, fmt: str = "{:.2f}") -> None:
        values = [getattr(s, f"{stat}_{key}") * scale for stat in ("mean", "p50", "p90", "p99")]
        lat.add_row(label, *(fmt.format(v) for v in values))

    row("E2E latency (s)", "e2e_s")
    row("TTFT (s)", "ttft_s", fmt="{:.3f}")
    row("TPOT (ms)", "tpot_s", scale=1000.0, fmt="{:.1f}")
    row("scheduling delay (s)", "sched_delay_s", fmt="{:.3f}")
    row("slowdown (x)", "slowdown")

    run = Table(show_header=False, box=None, padding=(0, 2))
    run.add_column(style="bold")
    run.add_column()
    share = s.requests_restarted / s.num_requests if s.num_requests else 0.0
    run.add_row("cluster", _cluster_line(result))
    run.add_row("workload", _workload_line(result))
    run.add_row("requests", f"{s.num_requests:,}")
    run.add_row("restarts", f"{s.restarts:,} ({s.requests_restarted:,} requests, {share:.1%})")
    run.add_row(
        "throughput",
        f"{s.throughput_rps:.2f} req/s, {s.throughput_tokens_s:,.0f} output tok/s, "
        f"{s.tokens_s_per_gpu:,.0f} output tok/s per GPU",
    )
    run.add_row("simulated duration", f"{s.sim_duration_s:,.1f} s")
    run.add_row("wall time", f"{s.wall_s:.2f} s")
    return lat, run


def _ratio(value: float, reference: float | None) -> float | None:
    if reference is None or reference <= 0:
        return None
    return value / reference


def _baselines_table(results: Sequence[SimResult], preset: str, seed: str) -> Table:
    ref = _reference_mean(results)
    table = Table(
        title=f"Baseline routers on {preset} ({seed}); latencies in seconds",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    table.add_column("\nrouter", no_wrap=True)
    for col in (
        "E2E\nmean",
        "E2E\np50",
        "E2E\np90",
        "E2E\np99",
        "TTFT\nmean",
        "\nrestarted",
        f"E2E vs\n{REFERENCE_ROUTER}",
    ):
        table.add_column(col, justify="right", no_wrap=True)
    for r in results:
        s = r.summary
        ratio = _ratio(s.mean_e2e_s, ref)
        share = s.requests_restarted / s.num_requests if s.num_requests else 0.0
        table.add_row(
            r.router,
            f"{s.mean_e2e_s:.2f}",
            f"{s.p50_e2e_s:.2f}",
            f"{s.p90_e2e_s:.2f}",
            f"{s.p99_e2e_s:.2f}",
            f"{s.mean_ttft_s:.3f}",
            f"{share:.1%}",
            "-" if ratio is None else f"{ratio:.2f}x",
            style="bold" if r.router == REFERENCE_ROUTER else None,
        )
    return table


def _reference_mean(results: Sequence[SimResult]) -> float | None:
    for r in results:
        if r.router == REFERENCE_ROUTER:
            return r.summary.mean_e2e_s
    return None


def plot_baselines(results: Sequence[SimResult], preset: str, seed: str, path: Path) -> None:
    """Save a bar chart of each router's mean end-to-end latency as a PNG at ``path``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    names = [r.router for r in results]
    means = [r.summary.mean_e2e_s for r in results]
    ref = _reference_mean(results)
    fig = Figure(figsize=(10, 5.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    colors = ["#7f7f7f" if n == REFERENCE_ROUTER else "#1f77b4" for n in names]
    bars = ax.bar(names, means, color=colors)
    labels = []
    for m in means:
        ratio = _ratio(m, ref)
        labels.append(f"{m:.1f}" if ratio is None else f"{m:.1f}\n{ratio:.2f}x")
    ax.bar_label(bars, labels=labels, padding=3, fontsize=9)
    ax.set_ylim(0, max(means, default=1.0) * 1.2 or 1.0)
    ax.set_xlabel("router")
    ax.set_ylabel("mean end-to-end latency (s)")
    ax.tick_params(axis="x", labelrotation=20)
    ax.spines[["top", "right"]].set_visible(False)
    fig.suptitle(f"Mean end-to-end latency per router: {preset}, {seed}", fontsize=12)
    ax.set_title(
        f"{_cluster_line(results[0])}\n{_workload_line(results[0])}, "
        f"{results[0].summary.num_requests:,} requests\n"
        f"bar labels: mean E2E in seconds and its ratio to {REFERENCE_ROUTER} (grey)",
        fontsize=9,
        color="#444444",
    )
    fig.savefig(path, dpi=120)
