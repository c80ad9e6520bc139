"""What the commands share: building the experiment setup from options, running experiments
(on the bus or in this process) and shaping their results."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import anyio
import msgspec
import typer

import glia
from glia._errors import GliaError
from glia._logging import get_logger
from glia.experiment import DesignFailed, Experiment, Limits
from glia.policies import (
    baseline_router,
)
from glia.presets import PRESETS
from glia.sim import (
    ClusterConfig,
    SimResult,
    Summary,
    WorkloadConfig,
    build_trace,
    load_profile,
)
from glia.tasks import DEFAULT_TASK, Task, resolve_task


def _task_of(task: str | None, preset: str) -> Task:
    """The task given, else the preset's (routing for an unknown preset, which fails later)."""
    if task is not None:
        return resolve_task(task)
    return resolve_task(PRESETS[preset].task) if preset in PRESETS else DEFAULT_TASK


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
    profile: str | None = None,
    concurrency: int | None = None,
    isl: int | None = None,
    osl: int | None = None,
    max_requests: int | None = None,
    precision: str | None = None,
    kv_precision: str | None = None,
    metrics_interval_s: float | None = None,
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
        concurrency=concurrency,
        isl=isl,
        osl=osl,
        max_requests=max_requests,
        precision=precision,
        kv_precision=kv_precision,
        metrics_interval_s=metrics_interval_s,
    )


def _no_jit(flag: bool) -> None:
    if flag:
        os.environ["GLIA_NO_JIT"] = "1"  # read by the kernels at each call, also in children


def _validate(experiments: list[Experiment], limits: Limits | None = None) -> None:
    """Raise the error a worker would for a bad name, setting or design file, without
    simulating (a design is loaded and checked in the sandbox, as its task's policy)."""
    from glia.sandbox import DesignFailure, check_design

    for exp in experiments:
        if exp.design_source is None:
            baseline_router(exp.router)
        elif isinstance(
            checked := check_design(exp.design_source, limits, task=exp.task), DesignFailure
        ):
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
    limits: Limits | None = None,
) -> list[SimResult]:
    """Run experiments on the workers behind ``url`` or, with no URL, on a private server
    and local workers started for this command (designs run under ``limits``); results in
    order, tables fetched."""

    _validate(experiments, limits)  # bad input fails here, before any server or worker starts

    async def go() -> list[SimResult]:
        if url is None:
            cluster = glia.local_cluster(workers=jobs, limits=limits)
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
    limits: Limits | None = None,
) -> SimResult:
    result = glia.simulate(
        router, preset, seed=seed, cluster=cluster, workload=workload, scheduler=scheduler,
        autoscaler=autoscaler, task=task, design=design, limits=limits,
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
