"""Validation: the best design and every baseline on held-out seeds, on the run's workload and
on a second one, so the report shows whether a design generalises or only fits its search
seeds."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import numpy as np

from glia.experiment import experiment_config
from glia.presets import SECOND_WORKLOAD
from glia.presets import preset as get_preset
from glia.report import RunRecord, Validation
from glia.sim import ClusterConfig, WorkloadConfig
from glia.tasks import Slo, Task

from ._checkpoint import DesignConfig
from ._lab import Lab, Policy

__all__ = ["validate"]


async def validate(
    record: RunRecord,
    config: DesignConfig,
    run_dir: Path,
    lab: Lab,
    *,
    task: Task,
    setup: tuple[ClusterConfig, WorkloadConfig],
    slo: Slo | None,
    policy: Callable[..., Policy],
    checkpoint: Callable[[], Awaitable[None]],
) -> None:
    """Validate ``record``'s best design (once: a run with validations keeps them), appending
    a :class:`~glia.report.Validation` per workload and checkpointing after each."""
    best = record.best
    if best is None or record.validation:
        return
    cluster, workload = setup
    source = (run_dir / best.design_path).read_text(encoding="utf-8")
    policies = [policy("design", source), *map(policy, task.baselines)]
    second = config.second_workload or SECOND_WORKLOAD.get(config.preset)
    setups = [(config.preset, get_preset(config.preset).description, workload)]
    if second and second != config.preset:
        _, w = experiment_config(second, **config.settings)
        setups.append((second, get_preset(second).description, w))
    for name, desc, load in setups:
        outs = await lab.evaluate(
            policies, cluster, load, config.holdout_seeds,
            csv_dir=run_dir / "validation" / name, label=f"validate-{name}", csv_seeds=1,
        )  # fmt: skip
        record.validation.append(Validation(
            workload=name, description=desc, seeds=list(config.holdout_seeds),
            mean_e2e_s={o.policy: o.mean_e2e_s for o in outs if o.ok},
            p99_e2e_s={o.policy: o.mean_p99_e2e_s for o in outs if o.ok},
            p50_e2e_s={
                o.policy: float(np.mean([r.summary.p50_e2e_s for r in o.results]))
                for o in outs if o.ok
            },
            mean_slowdown={o.policy: o.mean_slowdown for o in outs if o.ok},
            cost={o.policy: o.cost(task, get_preset(name).slo or slo) for o in outs if o.ok},
            csv_paths={o.policy: o.csv_paths[0] for o in outs if o.ok and o.csv_paths},
            failure=outs[0].failure_line() or None,
        ))  # fmt: skip
        await checkpoint()
