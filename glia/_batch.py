"""Experiments as plain data, and running many of them across local processes.

An :class:`Experiment` fully determines a simulation (router or design source, cluster,
workload, seed), so its :meth:`~Experiment.key` identifies the result: the cache key on the
bus, and the unit of work that sim workers run.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor

import msgspec

from glia._errors import DesignError, InputError
from glia.policies import baseline_router, resolve_autoscaler, resolve_scheduler
from glia.sandbox import BASES, DesignFailure, Limits, run_sandboxed
from glia.sim import ClusterConfig, SimResult, WorkloadConfig, build_trace, run_simulation

__all__ = ["DesignFailed", "Experiment", "run_batch", "run_experiment"]


class Experiment(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One simulation: a baseline ``router``, replica ``scheduler`` (default: none, vLLM's
    FCFS) and ``autoscaler`` (default: none, every replica serves) by name. A design's
    ``design_source`` takes the place of its ``task``'s policy (``routing``: the router,
    ``scheduling``: the scheduler, ``autoscaling``: the autoscaler)."""

    cluster: ClusterConfig
    workload: WorkloadConfig
    seed: int = 0
    router: str = "llq"
    design_source: str | None = None
    scheduler: str | None = None
    autoscaler: str | None = None
    task: str = "routing"

    def key(self) -> str:
        """Content hash of everything that determines the result (hex SHA-256)."""
        return hashlib.sha256(msgspec.msgpack.encode(self)).hexdigest()


class DesignFailed(DesignError):
    """A design could not be evaluated; ``failure`` says how (kind, message, traceback)."""

    def __init__(self, failure: DesignFailure) -> None:
        super().__init__(str(failure))
        self.failure = failure

    def __reduce__(self) -> tuple[type[DesignFailed], tuple[DesignFailure]]:
        return (type(self), (self.failure,))


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
    resolved = exp.cluster.resolve()
    trace = build_trace(exp.workload, exp.seed, max_context=resolved.max_context)
    return run_simulation(
        trace, exp.cluster, router, seed=exp.seed, workload=exp.workload, scheduler=scheduler,
        autoscaler=autoscaler,
    )  # fmt: skip


def run_batch(experiments: Iterable[Experiment], jobs: int | None = None) -> list[SimResult]:
    """Run experiments on ``jobs`` local processes (default: one per core); results in order.

    The first failing experiment's error is raised after the others finished or were cancelled.
    """
    todo = list(experiments)
    jobs = min(jobs or os.cpu_count() or 1, len(todo))
    if jobs <= 1:
        return [run_experiment(e) for e in todo]
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(run_experiment, todo))
