"""The lab: how design runs get their experiments done, on whatever workers share the bus.

A researcher's ``run_simulation`` and the coordinator's baselines and validation all become
:class:`~glia.Experiment` s submitted under the design run's id, so ``glia monitor --run`` shows
them, results are cached by content (a resumed run never simulates anything twice) and any
number of ``glia worker`` processes on any number of machines share the work.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import anyio
import msgspec
import numpy as np

from glia._client import Client
from glia.bus import ExperimentFailure, ExperimentResult, ResultMessage
from glia.experiment import Experiment
from glia.sandbox import SLOTS
from glia.sim import ClusterConfig, Summary, WorkloadConfig
from glia.tasks import DEFAULT_TASK, Slo, Task, pooled_mean_e2e_s

__all__ = ["Lab", "Outcome", "Policy"]


@dataclass(frozen=True)
class Policy:
    """What to evaluate: a baseline policy of ``task`` by name, or a design's source; the
    other tasks' places take ``router`` (and no scheduler or autoscaler)."""

    name: str
    source: str | None = None
    task: str = DEFAULT_TASK.name
    router: str = "llq"

    def experiment(self, cluster: ClusterConfig, workload: WorkloadConfig, seed: int) -> Experiment:
        base = Experiment(cluster=cluster, workload=workload, seed=seed, router=self.router)
        if self.source is not None:
            return msgspec.structs.replace(base, design_source=self.source, task=self.task)
        return msgspec.structs.replace(base, **{SLOTS[self.task]: self.name})


@dataclass(frozen=True)
class Outcome:
    """A policy on a set of seeds: pooled metrics, or why it failed."""

    policy: str
    seeds: tuple[int, ...]
    results: tuple[ExperimentResult, ...] = ()
    failure: ExperimentFailure | None = None
    csv_paths: tuple[str, ...] = ()
    """Per-request CSVs fetched into the run directory (relative to it), one per seed."""

    @property
    def ok(self) -> bool:
        return self.failure is None

    @property
    def mean_e2e_s(self) -> float:
        """Mean E2E over every request of every seed (seeds weighted by their requests)."""
        return pooled_mean_e2e_s([r.summary for r in self.results])

    @property
    def per_seed_e2e_s(self) -> list[float]:
        return [r.summary.mean_e2e_s for r in self.results]

    @property
    def mean_p99_e2e_s(self) -> float:
        return float(np.mean([r.summary.p99_e2e_s for r in self.results]))

    @property
    def mean_slowdown(self) -> float:
        """Mean slowdown over every request of every seed (seeds weighted by their requests)."""
        n = sum(r.summary.num_requests for r in self.results)
        total: float = sum(r.summary.mean_slowdown * r.summary.num_requests for r in self.results)
        return total / n

    def cost(self, task: Task, slo: Slo | None) -> float:
        """The task's objective over the seeds (see :meth:`glia.tasks.Task.pooled_cost`)."""
        return task.pooled_cost([r.summary for r in self.results], slo)

    def per_seed_cost(self, task: Task, slo: Slo | None) -> list[float]:
        return [task.cost(r.summary, slo) for r in self.results]

    @property
    def summary(self) -> Summary | None:
        return self.results[0].summary if self.results else None

    def failure_line(self) -> str:
        """The failure on one line (design failures name the design's line)."""
        f = self.failure
        if f is None:
            return ""
        return f.design.one_line() if f.design is not None else f"{f.kind}: {f.message}"


class Lab:
    """Evaluates policies for design run ``run_id`` through ``client``; per-request CSVs are
    stored under ``run_dir``."""

    def __init__(
        self,
        client: Client,
        run_id: str,
        run_dir: Path,
        *,
        timeout_s: float = 3600.0,
        hide_seeds: bool = False,
    ) -> None:
        self.client = client
        self.run_id = run_id
        self.run_dir = run_dir
        self.timeout_s = timeout_s
        self.hide_seeds = hide_seeds
        """Name CSVs by the seed's position, not its value (the run's seeds are secret)."""

    async def evaluate(
        self,
        policies: Sequence[Policy],
        cluster: ClusterConfig,
        workload: WorkloadConfig,
        seeds: Sequence[int],
        *,
        csv_dir: Path,
        label: str,
        csv_seeds: int | None = None,
    ) -> list[Outcome]:
        """Every policy on every seed, all submitted at once (so every worker helps).

        The per-request CSVs of the first ``csv_seeds`` seeds (default: all) are written to
        ``csv_dir`` as ``<policy>-seed<k>.csv``.
        """
        exps = [p.experiment(cluster, workload, s) for p in policies for s in seeds]
        labels = [f"{label}:{p.name}:seed{s}" for p in policies for s in seeds]
        run = await self.client.submit(exps, run_id=self.run_id, labels=labels)
        got = await self.client.gather(run, timeout=self.timeout_s)
        k = len(seeds)
        return [
            await self._outcome(p, tuple(seeds), got[i * k : (i + 1) * k], csv_dir, csv_seeds)
            for i, p in enumerate(policies)
        ]

    async def _outcome(
        self,
        policy: Policy,
        seeds: tuple[int, ...],
        got: list[ResultMessage],
        csv_dir: Path,
        csv_seeds: int | None,
    ) -> Outcome:
        failure = next((m for m in got if isinstance(m, ExperimentFailure)), None)
        if failure is not None:
            return Outcome(policy.name, seeds, failure=failure)
        results = tuple(m for m in got if isinstance(m, ExperimentResult))
        csv_dir.mkdir(parents=True, exist_ok=True)
        paths = []
        for k, (seed, r) in enumerate(list(zip(seeds, results, strict=True))[:csv_seeds]):
            if r.artifact is None:
                continue
            data = await self.client.requests(r.artifact)
            path = csv_dir / (
                f"{policy.name}-run{k + 1}.csv"
                if self.hide_seeds
                else f"{policy.name}-seed{seed}.csv"
            )
            await anyio.to_thread.run_sync(path.write_bytes, data)
            paths.append(str(path.relative_to(self.run_dir)))
        return Outcome(policy.name, seeds, results, None, tuple(paths))
