"""The ``glia`` command.

``glia simulate`` runs one router on a preset cluster and workload; ``glia baselines`` runs every
baseline router on the same setup, side by side. Results go to stdout (a table, or JSON with
``--json``); progress, logs and errors go to stderr. Any error Glia raises on purpose prints one
line, ``error: <what to fix>``, and exits with status 2.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, NoReturn

import anyio
import msgspec
import typer
from rich import box
from rich.console import Console
from rich.table import Table

import glia
from glia._batch import run_batch
from glia._cli_tasks import plot_task, task_experiments, task_records, task_table
from glia._errors import GliaError, InputError
from glia._logging import configure_logging, get_logger
from glia._tasks import TASKS, Task, resolve_task
from glia.bus import redact
from glia.experiment import DesignFailed, Experiment, design_source
from glia.policies import (
    AUTOSCALERS,
    BASELINES,
    SCHEDULERS,
    baseline_router,
    resolve_autoscaler,
    resolve_scheduler,
)
from glia.presets import PRESETS
from glia.sim import (
    CalibrationResult,
    ClusterConfig,
    Efficiency,
    SimResult,
    Summary,
    WorkloadConfig,
    build_trace,
    catalogue,
)

__all__ = ["app", "main"]

REFERENCE_ROUTER = "llq"
"""The router ``glia baselines`` compares every other one against (the paper's yardstick)."""

app = typer.Typer(
    name="glia",
    help=(
        "Glia: design and test routing policies for LLM-serving clusters in a fast simulator.\n\n"
        "Results go to stdout (a table, or JSON with --json); progress, logs and errors go to "
        "stderr."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)

# --- options shared by the commands -----------------------------------------------------------

PresetOpt = Annotated[
    str,
    typer.Option(
        "--preset",
        "-p",
        help=f"Named cluster + workload: {', '.join(PRESETS)}.",
        show_default=True,
    ),
]
TraceOpt = Annotated[
    str | None,
    typer.Option(
        "--trace",
        help=(
            "Request trace replacing the preset's: a CSV with num_prefill_tokens and "
            "num_decode_tokens columns (and optionally arrived_at, seconds), or a shipped trace "
            "name (sharegpt_first_turn, sharegpt, azure_conv). With arrived_at its arrivals are "
            "replayed; without, the preset's arrival process is kept. Lengths are used as given "
            "(no inflation), capped at the preset's max_tokens."
        ),
        show_default=False,
    ),
]
QpsOpt = Annotated[
    float | None,
    typer.Option(
        "--qps",
        help="Mean arrival rate (requests/s); rescales time when replaying a trace.",
        show_default=False,
    ),
]
DurationOpt = Annotated[
    float | None,
    typer.Option(
        "--duration",
        help="Seconds of arrivals to generate (or of a replayed trace to keep).",
        show_default=False,
    ),
]
ReplicasOpt = Annotated[
    int | None, typer.Option("--replicas", help="Number of replicas.", show_default=False)
]
GpuOpt = Annotated[
    str | None,
    typer.Option(
        "--gpu",
        help=(
            f"GPU kind: {', '.join(catalogue().gpus)}. KV capacity is then derived from the "
            "GPU's memory."
        ),
        show_default=False,
    ),
]
ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model",
        help=(
            f"Model served: {', '.join(catalogue().models)}. KV capacity is then derived from "
            "the GPU's memory."
        ),
        show_default=False,
    ),
]
TpOpt = Annotated[
    int | None,
    typer.Option(
        "--tp", help="Tensor-parallel degree: GPUs per replica (1, 2, 4 or 8).", show_default=False
    ),
]
SeedOpt = Annotated[
    int, typer.Option("--seed", min=0, help="Seed of the workload and of randomized routers.")
]
OutOpt = Annotated[
    Path | None,
    typer.Option(
        "--out",
        "-o",
        help="Directory to write results into (created if missing).",
        show_default=False,
        file_okay=False,
    ),
]
ProfileOpt = Annotated[
    Path | None,
    typer.Option(
        "--profile",
        help="Latency profile fitted by `glia calibrate` (JSON), replacing the GPU's defaults.",
        show_default=False,
        dir_okay=False,
    ),
]
NoJitOpt = Annotated[
    bool,
    typer.Option(
        "--no-jit", help="Run the simulator's kernels as plain Python (same results; slower)."
    ),
]
NatsOpt = Annotated[
    str | None,
    typer.Option(
        "--nats",
        help=(
            "Submit the experiments to the workers of this NATS server or cluster "
            "(nats://host:4222, comma-separated for several). Without it, a private server "
            "and local workers are started for the command."
        ),
        show_default=False,
        envvar="GLIA_NATS_URL",
    ),
]
CredsOpt = Annotated[
    Path | None,
    typer.Option(
        "--creds",
        help="NATS credentials file (nkey/JWT) for --nats.",
        show_default=False,
        envvar="GLIA_NATS_CREDS",
        dir_okay=False,
    ),
]
TlsCaOpt = Annotated[
    Path | None,
    typer.Option(
        "--tls-ca",
        help="CA certificate to verify the NATS server's TLS certificate with.",
        show_default=False,
        envvar="GLIA_NATS_TLS_CA",
        dir_okay=False,
    ),
]
InProcessOpt = Annotated[
    bool,
    typer.Option(
        "--in-process",
        help=(
            "Simulate in this process (baselines: a local process pool) instead of through a "
            "private NATS server and local workers: a little faster to start, for debugging."
        ),
    ),
]
JsonOpt = Annotated[
    bool,
    typer.Option("--json", help="Print the results as JSON on stdout, and nothing else there."),
]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"glia {glia.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Show the version and exit."
        ),
    ] = False,
) -> None:
    """Glia: design and test routing policies for LLM-serving clusters in a fast simulator."""


# --- errors -----------------------------------------------------------------------------------


def _fail(message: str) -> NoReturn:
    """Print ``error: message`` as one line on stderr and exit with status 2."""
    one_line = " ".join(part.strip() for part in message.splitlines() if part.strip())
    typer.echo(f"error: {one_line}", err=True)
    raise typer.Exit(2)


@contextmanager
def _user_errors() -> Iterator[None]:
    """Turn any :class:`GliaError` into a one-line message and exit status 2."""
    try:
        yield
    except DesignFailed as e:
        _fail(f"design {e.failure.one_line()}")
    except GliaError as e:
        _fail(str(e))


def _cannot_write(out: Path, e: OSError) -> NoReturn:
    reason = e.strerror or str(e)
    _fail(f"cannot write to {out}: {reason}; choose a writable --out directory")


def _prepare_out(out: Path | None) -> None:
    """Create the output directory before any simulation runs, so a bad one fails fast."""
    if out is None:
        return
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        _cannot_write(out, e)


# --- the experiment setup ---------------------------------------------------------------------


TaskOpt = Annotated[
    str | None,
    typer.Option(
        "--task",
        "-t",
        help=f"What to compare or design: {', '.join(TASKS)} [default: the preset's task].",
        show_default=False,
    ),
]


def _task_of(task: str | None, preset: str) -> Task:
    """The task given, else the preset's (routing for an unknown preset, which fails later)."""
    if task is not None:
        return resolve_task(task)
    return TASKS[PRESETS[preset].task if preset in PRESETS else "routing"]


def experiment_setup(
    preset: str,
    *,
    trace: str | None = None,
    qps: float | None = None,
    duration: float | None = None,
    replicas: int | None = None,
    gpu: str | None = None,
    model: str | None = None,
    tp: int | None = None,
    profile: Path | None = None,
) -> tuple[ClusterConfig, WorkloadConfig]:
    """The cluster and workload the command-line flags describe, on top of ``preset``
    (see :func:`glia.experiment_config` for what a trace or hardware override implies)."""
    return glia.experiment_config(
        preset,
        efficiency=load_profile(profile) if profile is not None else None,
        trace=trace,
        qps=qps,
        duration_s=duration,
        num_replicas=replicas,
        gpu=gpu,
        model=model,
        tp=tp,
    )


def load_profile(path: Path) -> Efficiency:
    """The efficiency factors of a profile written by ``glia calibrate``."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise InputError(f"cannot read profile {path}: {e.strerror}") from None
    try:
        return msgspec.json.decode(data, type=CalibrationResult).efficiency
    except msgspec.DecodeError as e:
        raise InputError(f"{path} is not a profile written by `glia calibrate`: {e}") from None


def _no_jit(flag: bool) -> None:
    if flag:
        os.environ["GLIA_NO_JIT"] = "1"  # read by the kernels at each call, also in children


def _validate(experiments: list[Experiment]) -> None:
    """Raise the error a worker would for a bad name, setting or design file, without
    simulating (a design is loaded and checked in the sandbox)."""
    from glia.sandbox import DesignFailure, check_design

    for exp in experiments:
        if exp.design_source is None:
            baseline_router(exp.router)
        elif isinstance(checked := check_design(exp.design_source), DesignFailure):
            raise DesignFailed(checked)
    for cluster, workload, seed in {(e.cluster, e.workload, e.seed) for e in experiments}:
        build_trace(workload, seed, max_context=cluster.resolve().max_context)


def _on_bus(
    url: str | None,
    creds: Path | None,
    tls_ca: Path | None,
    jobs: int | None,
    experiments: list[Experiment],
    labels: list[str],
) -> list[SimResult]:
    """Run experiments on the workers behind ``url`` or, with no URL, on a private server
    and local workers started for this command; results in order, tables fetched."""

    _validate(experiments)  # bad input fails here, before any server or worker starts

    async def go() -> list[SimResult]:
        if url is None:
            cluster = glia.local_cluster(workers=jobs)
        else:
            cluster = glia.connect(
                url, creds=str(creds) if creds else None, tls_ca=str(tls_ca) if tls_ca else None
            )
        failure: list[GliaError] = []
        async with cluster as client:
            try:
                return await client.run(experiments, labels=labels)
            except GliaError as e:  # raised below, outside the cluster's task group
                failure.append(e)
        raise failure[0]

    return anyio.run(go)


def _run(
    router: str,
    preset: str,
    seed: int,
    cluster: ClusterConfig,
    workload: WorkloadConfig,
    scheduler: str | None = None,
    autoscaler: str | None = None,
    task: str | None = None,
    design: Path | None = None,
) -> SimResult:
    result = glia.simulate(
        router, preset, seed=seed, cluster=cluster, workload=workload, scheduler=scheduler,
        autoscaler=autoscaler, task=task, design=design,
    )  # fmt: skip
    _log_finished(result, preset, seed)
    return result


def _mean_over_seeds(results: Sequence[SimResult]) -> SimResult:
    """One router's runs over several seeds as one result: each summary field is the mean over
    seeds (counts rounded); the request table is the first seed's."""
    if len(results) == 1:
        return results[0]
    fields: dict[str, float | int] = {}
    for name in Summary.__struct_fields__:
        values = [getattr(r.summary, name) for r in results]
        mean = sum(values) / len(values)
        fields[name] = round(mean) if isinstance(values[0], int) else mean
    first = results[0]
    return SimResult(
        summary=msgspec.convert(fields, Summary),
        requests=first.requests,
        router=first.router,
        cluster=first.cluster,
        workload=first.workload,
        seed=first.seed,
        scheduler=first.scheduler,
        autoscaler=first.autoscaler,
    )


def _log_finished(result: SimResult, preset: str, seed: int) -> None:
    s = result.summary
    get_logger("glia.cli").info(
        "simulation_finished",
        router=result.router,
        preset=preset,
        seed=seed,
        num_requests=s.num_requests,
        mean_e2e_s=round(s.mean_e2e_s, 6),
        wall_s=round(s.wall_s, 6),
    )


def _note_capped(runs: Sequence[SimResult]) -> None:
    """Say once on stderr how many requests the token cap shortened (every policy of a seed
    sees the same workload, so each seed counts once)."""
    per_seed = {(r.workload, r.seed): r for r in runs}
    capped = sum(r.summary.requests_capped for r in per_seed.values())
    if not capped:
        return
    total = sum(r.summary.num_requests for r in per_seed.values())
    first = runs[0]
    cap = first.workload.max_tokens or first.cluster.resolve().max_context
    seeds = f" over {len(per_seed)} seeds" if len(per_seed) > 1 else ""
    typer.echo(
        f"note: {capped:,} of {total:,} requests{seeds} had prompt + output over the "
        f"{cap:,}-token cap (the workload's max_tokens, else the model's context) and were "
        "shortened to fit it; requests_capped in the summary counts them",
        err=True,
    )


def _record(result: SimResult, preset: str) -> dict[str, object]:
    """``result.to_dict()`` with the preset it started from."""
    out = result.to_dict()
    return {"router": out.pop("router"), "preset": preset, **out}


def _print_json(value: object) -> None:
    sys.stdout.write(msgspec.json.format(msgspec.json.encode(value), indent=2).decode() + "\n")
    sys.stdout.flush()


def _write_json(path: Path, value: object) -> None:
    path.write_bytes(msgspec.json.format(msgspec.json.encode(value), indent=2) + b"\n")


# --- rendering --------------------------------------------------------------------------------


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
    if w.arrivals == "trace":
        arrivals = "replayed arrivals" + (f" rescaled to {w.qps:g} QPS" if w.qps else "")
        if w.duration_s is not None:
            arrivals += f", first {w.duration_s:g} s"
    else:
        arrivals = f"{w.arrivals} arrivals at {w.qps:g} QPS for {w.duration_s:g} s"
        if w.diurnal > 0:
            arrivals += f" (diurnal: x{1 - w.diurnal:g} to x{1 + w.diurnal:g} over a day)"
    return f"{w.trace}, {arrivals}"


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
        "throughput", f"{s.throughput_rps:.2f} req/s, {s.throughput_tokens_s:,.0f} output tok/s"
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


# --- commands ---------------------------------------------------------------------------------


@app.command()
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
    replicas: ReplicasOpt = None,
    gpu: GpuOpt = None,
    model: ModelOpt = None,
    tp: TpOpt = None,
    seed: SeedOpt = 0,
    profile: ProfileOpt = None,
    nats: NatsOpt = None,
    creds: CredsOpt = None,
    tls_ca: TlsCaOpt = None,
    no_jit: NoJitOpt = False,
    in_process: InProcessOpt = False,
    out: OutOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Simulate one router on a preset cluster and workload; print its latency summary."""
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
        if design is not None and the_task.name != "routing":
            given = scheduler if the_task.name == "scheduling" else autoscaler
            if given is not None:
                raise InputError(
                    f"give either --{the_task.base_label} NAME or --design FILE for the "
                    f"{the_task.name} task, not both: the design is the {the_task.base_label}"
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
        )
        _prepare_out(out)
        if in_process and nats is not None:
            raise InputError("give either --nats URL or --in-process, not both")
        with err.status(f"Simulating {design or router} on {preset} ...", spinner="dots"):
            try:
                if in_process:
                    result = _run(
                        router, preset, seed, cluster, workload, scheduler, autoscaler,
                        the_task.name, design,
                    )  # fmt: skip
                else:
                    exp = Experiment(
                        cluster=cluster, workload=workload, seed=seed, router=router,
                        scheduler=scheduler, autoscaler=autoscaler, task=the_task.name,
                    )  # fmt: skip
                    if design is not None:
                        source = design_source(design)
                        exp = msgspec.structs.replace(exp, design_source=source)
                    (result,) = _on_bus(nats, creds, tls_ca, 1, [exp], [label])
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


@app.command()
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
        if the_task.name == "routing":
            names = list(BASELINES)
            exps = [
                Experiment(cluster=cluster, workload=workload, seed=k, router=n)
                for n in names
                for k in seed_list
            ]
        else:
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
    if the_task.name != "routing":
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
            if slo is not None and task.name == "autoscaling"
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
            out, records, per_policy, task.base_label,
            lambda path: plot_task(task, results, preset, seed_label, slo, path),
        )  # fmt: skip


@app.command()
def check(
    design: Annotated[Path, typer.Argument(help="The design's .py file.", dir_okay=False)],
    task: Annotated[
        str,
        typer.Option("--task", "-t", help=f"The task the design is for: {', '.join(TASKS)}."),
    ] = "routing",
) -> None:
    """Validate a design fast (syntax, rules, imports, one policy subclass) without simulating."""
    from glia.sandbox import DesignFailure, check_design

    with _user_errors():
        the_task = resolve_task(task)
        source = design_source(design)
        out = check_design(source, task=the_task.name)
    if isinstance(out, DesignFailure):
        _fail(f"{design}: {out.one_line()}")
    typer.echo(f"ok: {design} defines the {the_task.base_label} {out}")


def main() -> None:
    """Entry point of the ``glia`` console script and of ``python -m glia``."""
    app(prog_name="glia")


# The other commands register themselves on `app` when imported (they import it from here).
from glia import _cli_cluster, _cli_design  # noqa: E402, F401
