"""`glia baselines --task scheduling|autoscaling`: every baseline policy of a task, compared on
the task's objective (see :mod:`glia.tasks`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rich import box
from rich.table import Table

from glia.experiment import Experiment
from glia.sim import ClusterConfig, SimResult, WorkloadConfig
from glia.tasks import Slo, Task, slo_excess

__all__ = ["plot_task", "task_experiments", "task_records", "task_table"]


def task_experiments(
    task: Task, router: str, cluster: ClusterConfig, workload: WorkloadConfig, seeds: list[int]
) -> list[Experiment]:
    """One experiment per baseline policy of ``task`` and seed, in that order; ``router``
    routes when the task's policy is not the router."""
    return [
        Experiment(
            cluster=cluster, workload=workload, seed=k, **({"router": router} | {task.slot: name})
        )
        for name in task.baselines
        for k in seeds
    ]


def task_records(
    task: Task, results: Sequence[SimResult], preset: str, seeds: list[int], slo: Slo | None
) -> list[dict[str, object]]:
    """JSON records: each result's summary with its policy, objective value and seeds."""
    out = []
    for r in results:
        rec: dict[str, object] = {task.slot: r.policy, "preset": preset, "seeds": seeds}
        rec |= r.to_dict()
        rec["cost"] = task.cost(r.summary, slo)
        if slo is not None:
            rec["slo_met"] = slo_excess(r.summary, slo) == 0.0
        out.append(rec)
    return out


def task_table(
    task: Task, results: Sequence[SimResult], preset: str, seed: str, slo: Slo | None
) -> Table:
    """The baselines of ``task`` side by side, best objective in bold."""
    table = Table(
        title=f"Baseline {task.slot}s on {preset} ({seed}); objective: {task.objective}",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    table.add_column(f"\n{task.slot}", no_wrap=True)
    if task.uses_slo:
        cols = ["GPU-\nhours", "replicas\nmean", "TTFT\np90 (s)", "TPOT\np90 (ms)", "\nSLO"]
    else:
        cols = ["E2E\nmean (s)", "E2E\np99 (s)", "TTFT\np99 (s)", "TPOT\np99 (ms)"]
    for col in [*cols, "\nobjective"]:
        table.add_column(col, justify="right", no_wrap=True)
    costs = [task.cost(r.summary, slo) for r in results]
    best = min(costs, default=0.0)
    for r, cost in zip(results, costs, strict=True):
        s = r.summary
        if task.uses_slo:
            met = "met" if slo is None or slo_excess(s, slo) == 0.0 else "missed"
            cells = [f"{s.gpu_hours:.2f}", f"{s.mean_replicas:.2f}", f"{s.p90_ttft_s:.2f}",
                     f"{s.p90_tpot_s * 1000:.1f}", met]  # fmt: skip
        else:
            cells = [f"{s.mean_e2e_s:.2f}", f"{s.p99_e2e_s:.1f}", f"{s.p99_ttft_s:.2f}",
                     f"{s.p99_tpot_s * 1000:.1f}"]  # fmt: skip
        table.add_row(r.policy, *cells, f"{cost:.2f}", style="bold" if cost == best else None)
    return table


def plot_task(
    task: Task, results: Sequence[SimResult], preset: str, seed: str, slo: Slo | None, path: Path
) -> None:
    """Save a bar chart of each baseline's objective value as a PNG at ``path``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    names = [r.policy for r in results]
    costs = [task.cost(r.summary, slo) for r in results]
    fig = Figure(figsize=(8, 5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    bars = ax.bar(names, costs, color="#1f77b4")
    ax.bar_label(bars, labels=[f"{c:.2f}" for c in costs], padding=3, fontsize=9)
    ax.set_ylim(0, max(costs, default=1.0) * 1.2 or 1.0)
    ax.set_xlabel(task.slot)
    ax.set_ylabel("objective (lower is better)")
    ax.spines[["top", "right"]].set_visible(False)
    fig.suptitle(f"Baseline {task.slot}s on {preset}, {seed}", fontsize=12)
    ax.set_title(task.objective, fontsize=9, color="#444444")
    fig.savefig(path, dpi=120)
