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
from glia.policies import resolve_router, resolve_scheduler
from glia.sandbox import DesignFailure, Limits, run_sandboxed
from glia.sim import ClusterConfig, SimResult, WorkloadConfig, build_trace, run_simulation

__all__ = ["DesignFailed", "Experiment", "run_batch", "run_experiment"]

_NO_SANDBOXED_SCHEDULER = (
    "a replica scheduler together with a design file is not supported yet (the sandbox replays "
    "routing decisions only): run the design without a scheduler, or a baseline router with one"
)


class Experiment(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One simulation: a baseline ``router`` by name, or a design's ``design_source``; with a
    baseline replica ``scheduler`` by name (default: none, vLLM's FCFS)."""

    cluster: ClusterConfig
    workload: WorkloadConfig
    seed: int = 0
    router: str = "llq"
    design_source: str | None = None
    scheduler: str | None = None

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
    if exp.design_source is not None:
        if exp.scheduler is not None:
            raise InputError(_NO_SANDBOXED_SCHEDULER)
        out = run_sandboxed(exp.design_source, exp.cluster, exp.workload, exp.seed, limits)
        if isinstance(out, DesignFailure):
            raise DesignFailed(out)
        return out
    router = resolve_router(exp.router)
    resolved = exp.cluster.resolve()
    trace = build_trace(exp.workload, exp.seed, max_context=resolved.max_context)
    scheduler = resolve_scheduler(exp.scheduler) if exp.scheduler is not None else None
    return run_simulation(
        trace, exp.cluster, router, seed=exp.seed, workload=exp.workload, scheduler=scheduler
    )


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
