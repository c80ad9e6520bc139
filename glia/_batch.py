"""Running experiments: one (:func:`run_experiment`, the single executor every path uses), or
many across local processes (:func:`run_batch`). An :class:`~glia.experiment.Experiment`
fully determines a simulation, so its key identifies the result: the cache key on the bus, and
the unit of work that sim workers run.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor

from glia._errors import InputError
from glia._lifeline import adopt, end_pool, lifeline
from glia.experiment import DesignFailed, DesignFailure, Experiment, Limits
from glia.policies import baseline_router, resolve_autoscaler, resolve_scheduler
from glia.sandbox import BASES, run_sandboxed
from glia.sim import SimResult, simulate

__all__ = ["run_batch", "run_experiment"]


def run_experiment(exp: Experiment, limits: Limits | None = None) -> SimResult:
    """Run one experiment: a baseline in this process, a design's source in the sandbox.

    Raises :class:`DesignFailed` when a design cannot be evaluated.
    """
    if exp.task not in BASES:
        raise InputError(f"experiment task is {exp.task!r}: choose one of {', '.join(BASES)}")
    # Never a file path: design code reaches a worker only as design_source, and runs only in
    # the sandbox (resolve_router would execute a .py path here, in this process).
    router = baseline_router(exp.router)
    scheduler = resolve_scheduler(exp.scheduler) if exp.scheduler is not None else None
    autoscaler = resolve_autoscaler(exp.autoscaler) if exp.autoscaler is not None else None
    if exp.design_source is not None:
        out = run_sandboxed(
            exp.design_source, exp.cluster, exp.workload, exp.seed, limits, task=exp.task,
            router=exp.router, scheduler=exp.scheduler, autoscaler=exp.autoscaler,
        )  # fmt: skip
        if isinstance(out, DesignFailure):
            raise DesignFailed(out)
        return out
    return simulate(
        exp.cluster, exp.workload, exp.seed, router, scheduler=scheduler, autoscaler=autoscaler
    )


def run_batch(experiments: Iterable[Experiment], jobs: int | None = None) -> list[SimResult]:
    """Run experiments on ``jobs`` local processes (default: one per core); results in order.

    The first failing experiment's error is raised at once: the experiments not started are
    cancelled, the running ones stopped (their processes ended), as on an interrupt (Ctrl-C).
    """
    todo = list(experiments)
    jobs = min(jobs or os.cpu_count() or 1, len(todo))
    if jobs <= 1:
        return [run_experiment(e) for e in todo]
    # Processes that end with this one, even when it is killed outright.
    context = multiprocessing.get_context()
    line = lifeline(context.get_start_method())
    pool = ProcessPoolExecutor(jobs, context, initializer=adopt, initargs=(line,))
    try:
        results = list(pool.map(run_experiment, todo))
    except BaseException:
        end_pool(pool)  # the pool's own exit would wait for every running experiment
        raise
    pool.shutdown()
    return results
