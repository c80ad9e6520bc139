"""``glia transfer``: does the simulator rank policies as engines serving them do?"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import anyio
import msgspec
import typer
from rich.console import Console
from rich.table import Table

from glia._logging import configure_logging
from glia.engines import TransferReport
from glia.engines import transfer as run_transfer
from glia.engines._transfer import DEFAULT_BASELINES, DEFAULT_REPLICATES

from ._app import DurationOpt, JsonOpt, PresetOpt, SeedOpt, TrustOpt, _design_source, _user_errors
from ._setup import experiment_setup

__all__ = ["transfer"]


def transfer(
    design: Annotated[
        Path | None,
        typer.Option("--design", help="A design file (a Router subclass), run in its sandbox."),
    ] = None,
    router: Annotated[
        str | None, typer.Option("--router", help="A router by name (e.g. hra, llq).")
    ] = None,
    preset: PresetOpt = "glia-routing",
    duration: DurationOpt = None,
    speed: Annotated[
        float,
        typer.Option("--speed", help="Simulated seconds per wall second of the emulated engines."),
    ] = 10.0,
    metrics_interval: Annotated[
        float | None,
        typer.Option(
            "--metrics-interval",
            help=(
                "Seconds (simulated) between scrapes of each engine's metrics, in the simulator "
                "and the proxy alike (default: the preset's; 0 = exact views in the simulator, "
                "the proxy scraping every 0.05 wall seconds)."
            ),
            show_default=False,
        ),
    ] = None,
    replicates: Annotated[
        int,
        typer.Option(
            "--replicates",
            min=1,
            help=(
                "Simulations per policy, averaged: the trace as given and copies with arrivals "
                "moved by up to 1 simulated ms (a served run cannot replay exact timing, and "
                "some policies' outcomes hang on it)."
            ),
        ),
    ] = DEFAULT_REPLICATES,
    seed: SeedOpt = 0,
    json_output: JsonOpt = False,
    trust_design: TrustOpt = False,
) -> None:
    """Run a policy and the baselines (round-robin, LLQ, HRA) simulated and served; compare.

    Each policy runs in the simulator and through `glia serve` in front of `glia emulate`'s
    engines (the preset's replicas in scaled real time, --speed) measured by `glia bench`, on
    the same workload and seed. Prints each policy's simulated and measured mean and p99 E2E,
    their ratio, and whether the two rankings agree (Kendall's tau). The simulated figures
    average --replicates runs (the spread of their means beside the mean). Takes about
    --duration / --speed wall seconds per policy, plus the tail; a run the machine could not
    keep up with is flagged "behind" (lower --speed).
    """
    configure_logging(level=logging.WARNING)  # a line per request would drown the table
    with _user_errors():
        source = _design_source(design, router)
        cluster, workload = experiment_setup(
            preset, duration=duration, metrics_interval_s=metrics_interval
        )
        baselines = list(DEFAULT_BASELINES) if router is None else [router, *DEFAULT_BASELINES]
        name = design.stem if design is not None else "design"
        baselines = list(dict.fromkeys(baselines))
        count = len(baselines) + (source is not None)
        with Console(stderr=True).status(
            f"Simulating and serving {count} policies ...", spinner="dots"
        ):
            report = anyio.run(
                lambda: run_transfer(
                    cluster,
                    workload,
                    design=source,
                    design_name=name,
                    baselines=baselines,
                    seed=seed,
                    speed=speed,
                    trust_design=trust_design,
                    replicates=replicates,
                )
            )
    for p in report.policies:
        for failure in p.failures:
            typer.echo(f"note: {p.name}: {failure}", err=True)
        if p.behind:
            typer.echo(
                f"warning: {p.name}: the emulated engines fell {p.lag_s:.2f} simulated s behind "
                "real time, so its measured times are this machine's, not the model's: lower "
                "--speed",
                err=True,
            )
    if json_output:
        sys.stdout.write(msgspec.json.encode(_record(report)).decode() + "\n")
    else:
        Console().print(_table(report, preset))


def _record(report: TransferReport) -> dict[str, Any]:
    doc: dict[str, Any] = msgspec.to_builtins(report)
    for row, p in zip(doc["policies"], report.policies, strict=True):
        row |= {"mean_ratio": p.mean_ratio, "p99_ratio": p.p99_ratio, "behind": p.behind}
    return doc | {"same_ranking": report.same_ranking, "behind": report.behind}


def _table(report: TransferReport, preset: str) -> Table:
    table = Table(
        title=f"{preset}: simulated vs served (speed {report.speed:g}, seed {report.seed})",
        title_justify="left",
    )
    table.add_column("policy")
    for col in ("sim mean E2E (s)", "measured", "ratio", "sim p99 E2E (s)", "measured", "ratio",
                "completed"):  # fmt: skip
        table.add_column(col, justify="right")
    for p in report.policies:
        table.add_row(
            p.name + (" (behind)" if p.behind else ""),
            f"{p.sim_mean_e2e_s:.2f}" + (f" ± {p.sim_sd_e2e_s:.2f}" if p.replicates > 1 else ""),
            f"{p.real_mean_e2e_s:.2f}",
            f"{p.mean_ratio:.3f}",
            f"{p.sim_p99_e2e_s:.1f}",
            f"{p.real_p99_e2e_s:.1f}",
            f"{p.p99_ratio:.3f}",
            f"{p.completed:,}/{p.requests:,}",
        )
    agree = "the same" if report.same_ranking else "differently"
    table.caption = (
        f"Kendall's tau {report.kendall_tau:.2f}: the simulator and the served runs rank the "
        f"policies {agree} (by mean E2E)"
    )
    behind = [p.name for p in report.policies if p.behind]
    if behind:
        table.caption += (
            f"; {', '.join(behind)} fell behind real time (measured this machine, not the "
            "model): lower --speed"
        )
    return table
