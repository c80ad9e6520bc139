"""``glia simulate`` and ``glia check``: one policy on one setup, and a design checked fast."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import msgspec
import typer
from rich.console import Console

from glia._errors import InputError
from glia._logging import configure_logging
from glia.experiment import DesignFailed, Experiment, Limits, design_source
from glia.policies import (
    AUTOSCALERS,
    BASELINES,
    SCHEDULERS,
    resolve_autoscaler,
    resolve_scheduler,
)
from glia.presets import PRESETS
from glia.tasks import DEFAULT_TASK, TASKS, resolve_task

from ._app import (
    REFERENCE_ROUTER,
    ConcurrencyOpt,
    CredsOpt,
    DurationOpt,
    GpuOpt,
    InProcessOpt,
    IslOpt,
    JsonOpt,
    KvPrecisionOpt,
    ModelOpt,
    NatsOpt,
    NoJitOpt,
    NumRequestsOpt,
    OslOpt,
    OutOpt,
    PrecisionOpt,
    PresetOpt,
    ProfileOpt,
    QpsOpt,
    ReplicasOpt,
    SeedOpt,
    TaskOpt,
    TlsCaOpt,
    TpOpt,
    TraceOpt,
    TrustOpt,
    _cannot_write,
    _fail,
    _prepare_out,
    _print_json,
    _user_errors,
)
from ._render import _summary_tables
from ._setup import (
    _log_finished,
    _no_jit,
    _note_capped,
    _on_bus,
    _record,
    _run,
    _task_of,
    experiment_setup,
)


def simulate(
    preset: PresetOpt = "glia-routing",
    router: Annotated[
        str | None,
        typer.Option(
            "--router",
            "-r",
            help=f"Baseline router: {', '.join(BASELINES)}. [default: {REFERENCE_ROUTER}]",
            show_default=False,
        ),
    ] = None,
    design: Annotated[
        Path | None,
        typer.Option(
            "--design",
            "-d",
            help=(
                "A .py file defining the policy of the preset's task (a glia.policies.Router, "
                "ReplicaScheduler or Autoscaler subclass; see --task); it runs in the sandbox "
                "(see `glia check`)."
            ),
            show_default=False,
            dir_okay=False,
        ),
    ] = None,
    scheduler: Annotated[
        str | None,
        typer.Option(
            "--scheduler",
            help=f"Replica scheduler inside every replica: {', '.join(SCHEDULERS)} "
            "(default: none, vLLM's first come first served).",
            show_default=False,
        ),
    ] = None,
    autoscaler: Annotated[
        str | None,
        typer.Option(
            "--autoscaler",
            help=f"Autoscaler of an autoscaled preset: {', '.join(AUTOSCALERS)} (default: "
            "none, every replica of the pool serves).",
            show_default=False,
        ),
    ] = None,
    task: TaskOpt = None,
    trace: TraceOpt = None,
    qps: QpsOpt = None,
    duration: DurationOpt = None,
    concurrency: ConcurrencyOpt = None,
    isl: IslOpt = None,
    osl: OslOpt = None,
    num_requests: NumRequestsOpt = None,
    replicas: ReplicasOpt = None,
    gpu: GpuOpt = None,
    model: ModelOpt = None,
    tp: TpOpt = None,
    precision: PrecisionOpt = None,
    kv_precision: KvPrecisionOpt = None,
    metrics_interval: Annotated[
        float | None,
        typer.Option(
            "--metrics-interval",
            help=(
                "Seconds between scrapes of each replica's metrics: the router sees queue, "
                "running count and KV usage as of the last scrape, as in front of real engines "
                "(cluster metrics_interval_s; default: the preset's, 0 = exact)."
            ),
            show_default=False,
        ),
    ] = None,
    seed: SeedOpt = 0,
    profile: ProfileOpt = None,
    nats: NatsOpt = None,
    creds: CredsOpt = None,
    tls_ca: TlsCaOpt = None,
    no_jit: NoJitOpt = False,
    in_process: InProcessOpt = False,
    trust_design: TrustOpt = False,
    out: OutOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Simulate one router on a preset cluster and workload; print its latency summary.

    With --concurrency N the workload is closed-loop, as benchmark tools run it: N clients each
    send their next request when their last one completes; with --isl/--osl every request has
    those lengths. TTFT, TPOT and output throughput per GPU are then comparable with
    `vllm bench serve --max-concurrency N --random-input-len ISL --random-output-len OSL`.
    """
    configure_logging()
    _no_jit(no_jit)
    err = Console(stderr=True)
    with _user_errors():
        if router is not None and design is not None:
            raise InputError(
                "give either --router NAME or --design FILE, not both: a run simulates one router"
            )
        the_task = _task_of(task, preset)
        # The baseline router (with a design of another task; ignored with a routing design).
        router = router or (PRESETS[preset].router if preset in PRESETS else REFERENCE_ROUTER)
        label = design.stem if design is not None else router
        # Unknown names fail before anything starts.
        if scheduler is not None:
            resolve_scheduler(scheduler)
        if autoscaler is not None:
            resolve_autoscaler(autoscaler)
        if design is not None:
            given = {"scheduler": scheduler, "autoscaler": autoscaler}.get(the_task.slot)
            if given is not None:
                raise InputError(
                    f"give either --{the_task.slot} NAME or --design FILE for the "
                    f"{the_task.name} task, not both: the design is the {the_task.slot}"
                )
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
            concurrency=concurrency,
            isl=isl,
            osl=osl,
            max_requests=num_requests,
            precision=precision,
            kv_precision=kv_precision,
            metrics_interval_s=metrics_interval,
        )
        _prepare_out(out)
        limits = Limits(trusted=True) if trust_design else None
        if in_process and nats is not None:
            raise InputError("give either --nats URL or --in-process, not both")
        with err.status(f"Simulating {design or router} on {preset} ...", spinner="dots"):
            try:
                if in_process:
                    result = _run(
                        router, preset, seed, cluster, workload, scheduler, autoscaler,
                        the_task.name, design, limits,
                    )  # fmt: skip
                else:
                    exp = Experiment(
                        cluster=cluster, workload=workload, seed=seed, router=router,
                        scheduler=scheduler, autoscaler=autoscaler, task=the_task.name,
                    )  # fmt: skip
                    if design is not None:
                        source = design_source(design)
                        exp = msgspec.structs.replace(exp, design_source=source)
                    (result,) = _on_bus(nats, creds, tls_ca, 1, [exp], [label], limits)
                    _log_finished(result, preset, seed)
            except DesignFailed as e:
                _fail(f"{design}: {e.failure.one_line()}")
    _note_capped([result])
    if json_output:
        _print_json(_record(result, preset))
    else:
        console = Console()
        for table in _summary_tables(result, preset):
            console.print(table)
    if out is not None:
        try:
            table_path, summary_path = result.write(out)
        except OSError as e:
            _cannot_write(out, e)
        err.print(f"Wrote {table_path} and {summary_path}", highlight=False, soft_wrap=True)


def check(
    design: Annotated[Path, typer.Argument(help="The design's .py file.", dir_okay=False)],
    task: Annotated[
        str,
        typer.Option("--task", "-t", help=f"The task the design is for: {', '.join(TASKS)}."),
    ] = DEFAULT_TASK.name,
    trust_design: TrustOpt = False,
) -> None:
    """Validate a design fast (syntax, rules, imports, one policy subclass) without simulating."""
    from glia.sandbox import DesignFailure, check_design

    with _user_errors():
        the_task = resolve_task(task)
        source = design_source(design)
        limits = Limits(wall_s=20.0, trusted=True) if trust_design else None
        out = check_design(source, limits, task=the_task.name)
    if isinstance(out, DesignFailure):
        _fail(f"{design}: {out.one_line()}")
    typer.echo(f"ok: {design} defines the {the_task.slot} {out}")
