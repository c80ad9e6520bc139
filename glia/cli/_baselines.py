"""``glia baselines``: every baseline policy of a task on one setup, side by side."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from glia._batch import run_batch
from glia._errors import InputError
from glia._logging import configure_logging
from glia.bus import redact
from glia.presets import PRESETS
from glia.sim import (
    SimResult,
)
from glia.tasks import Task, resolve_task

from ._app import (
    REFERENCE_ROUTER,
    CredsOpt,
    DurationOpt,
    GpuOpt,
    InProcessOpt,
    JsonOpt,
    ModelOpt,
    NatsOpt,
    NoJitOpt,
    OutOpt,
    ProfileOpt,
    QpsOpt,
    ReplicasOpt,
    SeedOpt,
    TaskOpt,
    TlsCaOpt,
    TpOpt,
    TraceOpt,
    _cannot_write,
    _prepare_out,
    _print_json,
    _user_errors,
    _write_json,
)
from ._render import _baselines_table, _ratio, _reference_mean, _setup_line, plot_baselines
from ._setup import (
    _log_finished,
    _mean_over_seeds,
    _no_jit,
    _note_capped,
    _on_bus,
    _record,
    _task_of,
    experiment_setup,
)
from ._tasks import plot_task, task_experiments, task_records, task_table


def baselines(
    preset: Annotated[
        str | None,
        typer.Option(
            "--preset",
            "-p",
            help=f"Named cluster + workload: {', '.join(PRESETS)} [default: the task's, "
            "glia-routing for routing].",
            show_default=False,
        ),
    ] = None,
    task: TaskOpt = None,
    trace: TraceOpt = None,
    qps: QpsOpt = None,
    duration: DurationOpt = None,
    replicas: ReplicasOpt = None,
    gpu: GpuOpt = None,
    model: ModelOpt = None,
    tp: TpOpt = None,
    seed: SeedOpt = 0,
    seeds: Annotated[
        int,
        typer.Option(
            "--seeds",
            min=1,
            help=(
                "Run seeds SEED..SEED+N-1 and report each router's mean over them. Single "
                "seeds are noisy at the presets' load, so compare means, as the paper does."
            ),
        ),
    ] = 5,
    profile: ProfileOpt = None,
    nats: NatsOpt = None,
    creds: CredsOpt = None,
    tls_ca: TlsCaOpt = None,
    jobs: Annotated[
        int | None,
        typer.Option("--jobs", "-j", min=1, help="Local processes [default: one per core]."),
    ] = None,
    no_jit: NoJitOpt = False,
    in_process: InProcessOpt = False,
    out: OutOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Run every baseline policy of a task (routers by default) on the same setup and compare
    them side by side."""
    configure_logging()
    _no_jit(no_jit)
    err = Console(stderr=True)
    results: list[SimResult] = []
    with _user_errors():
        if preset is None:
            preset = resolve_task(task).preset if task is not None else "glia-routing"
        the_task = _task_of(task, preset)
        cluster, workload = experiment_setup(
            preset,
            trace=trace,
            qps=qps,
            duration=duration,
            replicas=replicas,
            gpu=gpu,
            model=model,
            tp=tp,
            profile=profile,
        )
        _prepare_out(out)
        seed_list = list(range(seed, seed + seeds))
        names = list(the_task.baselines)
        router = PRESETS[preset].router if preset in PRESETS else REFERENCE_ROUTER
        exps = task_experiments(the_task, router, cluster, workload, seed_list)
        labels = [f"{e.autoscaler or e.scheduler or e.router}/seed-{e.seed}" for e in exps]
        where = f"on the workers at {redact(nats)}" if nats else "on local workers"
        status = f"Simulating {len(names)} baselines x {seeds} seeds on {preset} {where} ..."
        with err.status(status, spinner="dots"):
            if in_process and nats is not None:
                raise InputError("give either --nats URL or --in-process, not both")
            if in_process:
                runs = run_batch(exps, jobs)
            else:
                runs = _on_bus(nats, creds, tls_ca, jobs, exps, labels)
        for r in runs:
            _log_finished(r, preset, r.seed)
        _note_capped(runs)
        per_router = [runs[i : i + seeds] for i in range(0, len(runs), seeds)]
        results = [_mean_over_seeds(rs) for rs in per_router]
        seed_label = f"seed {seed}" if seeds == 1 else f"mean of seeds {seed}-{seed + seeds - 1}"
    if not the_task.cost_is_latency:
        _task_baselines(the_task, preset, results, per_router, runs, seed_list, seed_label,
                        out, json_output)  # fmt: skip
        return
    ref = _reference_mean(results)
    records = []
    for r in results:
        rec = _record(r, preset)
        rec["mean_e2e_vs_llq"] = _ratio(r.summary.mean_e2e_s, ref)
        rec["seeds"] = seed_list
        records.append(rec)
    if json_output:
        _print_json(records)
    else:
        console = Console()
        console.print(_baselines_table(results, preset, seed_label))
        wall = sum(r.summary.wall_s for r in runs)
        console.print(
            f"{_setup_line(results[0])}; {results[0].summary.num_requests:,} requests; "
            f"{len(runs)} simulations in {wall:.1f} s",
            style="dim",
            highlight=False,
        )
    if out is not None:
        _write_baselines(
            out, records, per_router, "router",
            lambda path: plot_baselines(results, preset, seed_label, path),
        )  # fmt: skip


def _write_baselines(
    out: Path,
    records: list[dict[str, object]],
    per_policy: list[list[SimResult]],
    label: str,
    plot: Callable[[Path], None],
) -> None:
    """``baselines.json``, the bar chart and every run's table and summary under ``out``."""
    try:
        _write_json(out / "baselines.json", records)
        for rs in per_policy:
            for r in rs:
                r.write(out / r.policy if len(rs) == 1 else out / r.policy / f"seed-{r.seed}")
        plot(out / "baselines.png")
    except OSError as e:
        _cannot_write(out, e)
    Console(stderr=True).print(
        f"Wrote {out / 'baselines.json'}, {out / 'baselines.png'} and each {label}'s "
        f"requests.csv and summary.json under {out}/<{label}>/",
        highlight=False,
        soft_wrap=True,
    )


def _task_baselines(
    task: Task,
    preset: str,
    results: list[SimResult],
    per_policy: list[list[SimResult]],
    runs: list[SimResult],
    seeds: list[int],
    seed_label: str,
    out: Path | None,
    json_output: bool,
) -> None:
    """Report `glia baselines --task scheduling|autoscaling`."""
    slo = PRESETS[preset].slo if preset in PRESETS else None
    records = task_records(task, results, preset, seeds, slo)
    if json_output:
        _print_json(records)
    else:
        console = Console()
        console.print(task_table(task, results, preset, seed_label, slo))
        wall = sum(r.summary.wall_s for r in runs)
        slo_text = (
            f"; SLO p90 TTFT <= {slo.p90_ttft_s:g} s, p90 TPOT <= {slo.p90_tpot_s * 1000:g} ms"
            if slo is not None and task.uses_slo
            else ""
        )
        console.print(
            f"{_setup_line(results[0])}; {results[0].summary.num_requests:,} requests"
            f"{slo_text}; {len(runs)} simulations in {wall:.1f} s",
            style="dim",
            highlight=False,
        )
    if out is not None:
        _write_baselines(
            out, records, per_policy, task.slot,
            lambda path: plot_task(task, results, preset, seed_label, slo, path),
        )  # fmt: skip
