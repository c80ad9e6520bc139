"""One simulation from its configuration: the workload's trace for the seed, then the run."""

from __future__ import annotations

from ._autoscaling import ScalingPolicy
from ._config import ClusterConfig, WorkloadConfig
from ._engine import RoutingPolicy, run_simulation
from ._metrics import SimResult
from ._scheduling import SchedulingPolicy
from ._workload import build_trace

__all__ = ["simulate"]


def simulate(
    cluster: ClusterConfig,
    workload: WorkloadConfig,
    seed: int,
    router: RoutingPolicy,
    *,
    scheduler: SchedulingPolicy | None = None,
    autoscaler: ScalingPolicy | None = None,
) -> SimResult:
    """Simulate ``workload`` (its requests for ``seed``, held to the model's context) on
    ``cluster`` under the given policies; see :func:`run_simulation`."""
    trace = build_trace(workload, seed, max_context=cluster.resolve().max_context)
    return run_simulation(
        trace, cluster, router, seed=seed, workload=workload, scheduler=scheduler,
        autoscaler=autoscaler,
    )  # fmt: skip
