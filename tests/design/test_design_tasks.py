"""Design runs of the scheduling and autoscaling tasks with the offline designer, end to end on
a real NATS server and workers (workloads cut short to keep the tests quick)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import get_args

import pytest

from glia._client import Client
from glia._design import DesignRun, design_async
from glia.policies._task_mechanisms import (
    ScalerMechanisms,
    SchedulerMechanisms,
    Victim,
    compose_autoscaler,
    compose_scheduler,
)
from glia.runtime import local_cluster
from glia.sandbox import check_design
from glia.tasks import TASKS


@asynccontextmanager
async def cluster(tmp_path: Path) -> AsyncIterator[Client]:
    async with local_cluster(workers=2, store_dir=str(tmp_path / "nats")) as c:
        yield c


async def run_task(tmp_path: Path, task: str, settings: dict[str, object]) -> DesignRun:
    async with cluster(tmp_path) as c:
        return await design_async(
            task=task, budget=3, out=tmp_path / "runs", search_seeds=(0,),
            holdout_seeds=(100,), settings=settings, client=c,
        )  # fmt: skip


def check_run(run: DesignRun, task: str, example: str) -> None:
    rec = run.record
    assert rec.status == "finished" and rec.task == task and len(rec.trials) == 3
    assert rec.preset == TASKS[task].preset
    assert set(rec.baseline_costs) == set(TASKS[task].baselines)
    assert all(t.cost is not None and t.score == pytest.approx(20 / t.cost) for t in rec.trials)
    best = rec.best
    assert best is not None and best.cost is not None
    # The run's best is the design the researcher saved as best.py.
    chosen = (run.run_dir / "ctx-0" / "best.py").read_text()
    assert (run.run_dir / best.design_path).read_text() == chosen
    # Every trial is a real design of the task's kind, accepted by the sandbox.
    for t in rec.trials:
        source = (run.run_dir / t.design_path).read_text()
        assert check_design(source, task=task) == f"Design{t.index}"
    assert (run.run_dir / "ctx-0" / example).is_file()
    assert [v.workload for v in rec.validation][:1] == [rec.preset]
    assert set(rec.validation[0].cost) == {"design", *TASKS[task].baselines}
    summary = run.summary()
    assert summary["task"] == task and summary["best_cost"] == rec.validation[0].cost["design"]
    assert summary["baseline_costs"] == {
        k: v for k, v in rec.validation[0].cost.items() if k != "design"
    }
    report = (run.run_dir / "report.md").read_text()
    assert "objective (cost) on the search seeds" in report


@pytest.mark.anyio
async def test_the_offline_designer_designs_a_replica_scheduler(tmp_path: Path) -> None:
    run = await run_task(tmp_path, "scheduling", {"duration_s": 60.0})
    check_run(run, "scheduling", "example_scheduler.py")
    # The first trial is vLLM's FCFS, the same policy as the fcfs baseline: the same cost.
    first = run.record.trials[0]
    assert first.cost == pytest.approx(run.record.baseline_costs["fcfs"], rel=1e-12)
    assert first.summary is not None
    assert first.cost == pytest.approx(
        first.summary.mean_e2e_s + 0.1 * first.summary.p99_e2e_s, rel=1e-12
    )


@pytest.mark.anyio
async def test_the_offline_designer_designs_an_autoscaler(tmp_path: Path) -> None:
    run = await run_task(tmp_path, "autoscaling", {"duration_s": 1200.0})
    check_run(run, "autoscaling", "example_autoscaler.py")
    rec = run.record
    assert [v.workload for v in rec.validation] == ["diurnal", "azure-autoscale"]
    # Autoscaling answers carry the SLO margin the offline designer weighs.
    tool = [e.text for e in rec.log if e.role == "tool"]
    assert len(tool) == 3
    for t in rec.trials:
        assert t.summary is not None and t.summary.gpu_hours > 0
        assert t.summary.scale_events > 0


CATALOGUE = [
    *(("scheduling", compose_scheduler(SchedulerMechanisms(victim=v, token_budget=tb)))
      for v, tb in zip(get_args(Victim), (0, 512, 2048), strict=True)),
    *(("scheduling", compose_scheduler(SchedulerMechanisms(
        order="shortest-prompt", aging=a, starve_s=st, backfill=True)))
      for a, st in ((0.0, 120.0), (25.0, 0.0))),
    *(("autoscaling", compose_autoscaler(ScalerMechanisms(trend=t))) for t in (False, True)),
]  # fmt: skip


@pytest.mark.parametrize(("task", "source"), CATALOGUE)
def test_every_catalogue_choice_composes_a_valid_design(task: str, source: str) -> None:
    assert check_design(source, task=task) == "Candidate"
