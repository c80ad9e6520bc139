"""The programmatic Python API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from glia._batch import run_experiment
from glia._errors import InputError
from glia.experiment import Experiment, Limits, design_source, experiment_config
from glia.policies import (
    Autoscaler,
    ReplicaScheduler,
    RouterSpec,
    resolve_autoscaler,
    resolve_router,
    resolve_scheduler,
)
from glia.presets import preset as get_preset
from glia.sandbox import BASES
from glia.sim import ClusterConfig, SimResult, WorkloadConfig
from glia.sim import simulate as sim_simulate
from glia.tasks import DEFAULT_TASK

__all__ = ["experiment_config", "simulate"]


def simulate(
    router: RouterSpec = "llq",
    preset: str | None = "glia-routing",
    *,
    design: str | Path | None = None,
    seed: int = 0,
    cluster: ClusterConfig | None = None,
    workload: WorkloadConfig | None = None,
    limits: Limits | None = None,
    scheduler: str | ReplicaScheduler | None = None,
    autoscaler: str | Autoscaler | None = None,
    task: str | None = None,
    **overrides: Any,
) -> SimResult:
    """Simulate one router on a preset (or given) cluster and workload.

    ``router`` is a baseline name (see :data:`glia.policies.BASELINES`), a ``.py`` design file,
    a :class:`~glia.policies.Router` subclass or instance. ``design`` (a ``.py`` file or the
    source text itself) and ``.py`` routers run in the sandbox (see :mod:`glia.sandbox`, with
    ``limits``) and raise :class:`~glia.DesignFailed` when they cannot be evaluated; classes and
    instances are trusted and run in this process. Keyword ``overrides`` change single
    fields of the cluster or workload, e.g. ``simulate("hra", qps=9.0, num_replicas=8)``.
    ``scheduler`` (a baseline name such as ``"spf"``, or a
    :class:`~glia.policies.ReplicaScheduler`) orders and admits requests inside each replica;
    ``autoscaler`` (e.g. ``"hpa"``, or an :class:`~glia.policies.Autoscaler`) sets the number
    of replicas of an autoscaled cluster (see :class:`~glia.sim.Autoscale`). A ``design`` is
    the policy of ``task`` (default: the preset's task): a Router, ReplicaScheduler or
    Autoscaler subclass; the other places take the baselines given by name.
    The same arguments and seed always give the same result.
    """
    c, w = experiment_config(preset, cluster, workload, **overrides)
    if design is None and isinstance(router, str | Path) and str(router).endswith(".py"):
        design, router = Path(router), "llq"
    names = {"router": router, "scheduler": scheduler, "autoscaler": autoscaler}
    if design is not None:
        task = task or (get_preset(preset).task if preset is not None else DEFAULT_TASK.name)
        if task not in BASES:
            raise InputError(f"task is {task!r}: choose one of {', '.join(BASES)}")
        for key, value in names.items():
            if value is not None and not isinstance(value, str):
                raise InputError(
                    f"with a design, give the {key} by baseline name, not {value!r} (a design "
                    "runs in the sandbox, which cannot receive objects)"
                )
    if (
        isinstance(router, str)
        and (scheduler is None or isinstance(scheduler, str))
        and (autoscaler is None or isinstance(autoscaler, str))
    ):
        # Names (and a design's source): the experiment every other path runs too.
        exp = Experiment(
            cluster=c, workload=w, seed=seed, router=router, task=task or DEFAULT_TASK.name,
            scheduler=scheduler, autoscaler=autoscaler,
            design_source=design_source(design) if design is not None else None,
        )  # fmt: skip
        return run_experiment(exp, limits)
    # Policy objects: trusted, in this process.
    sched = resolve_scheduler(scheduler) if scheduler is not None else None
    scaler = resolve_autoscaler(autoscaler) if autoscaler is not None else None
    return sim_simulate(c, w, seed, resolve_router(router), scheduler=sched, autoscaler=scaler)
